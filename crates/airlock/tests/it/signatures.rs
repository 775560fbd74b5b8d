//! Registry signatures, verified by node exactly as npm verifies them, across `airlock keys
//! rotate` on a running server, a restart, and a lost keyring.
//!
//! `npm audit signatures` itself cannot run here: before it asks any registry for anything it
//! fetches Sigstore's TUF root from `tuf-repo-cdn.sigstore.dev` and dies offline (protocol §6).
//! So the test runs pacote's check itself (`lib/registry.js`, `#verifySignatures`, npm 11) with
//! node's crypto: a listed key for the keyid, `time[version]` before the key's `expires`, and
//! `crypto.createVerify('SHA256')` over `${name}@${version}:${integrity}` with the PEM-wrapped
//! `key` of `/-/npm/v1/keys`.

use std::path::Path;
use std::process::Command;

use airlock_testkit::{PackageDir, Server};
use serde_json::{Value, json};

use crate::common::*;

/// pacote's signature check, over every version of each packument, plus the same check with
/// a tampered integrity (which must fail). Prints one JSON line per signature.
const VERIFY_JS: &str = r#"
const crypto = require('node:crypto');
const fs = require('node:fs');
const { keys, packuments } = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const verify = (message, key, sig) => crypto.createVerify('SHA256')
  .update(message)
  .verify('-----BEGIN PUBLIC KEY-----\n' + key.key + '\n-----END PUBLIC KEY-----', sig, 'base64');
const results = [];
for (const doc of packuments) {
  for (const [version, manifest] of Object.entries(doc.versions)) {
    const { integrity, signatures } = manifest.dist;
    if (!signatures) { results.push({ name: doc.name, version, code: 'EMISSINGSIGNATURES' }); continue; }
    for (const { keyid, sig } of signatures) {
      const key = keys.keys.find((k) => k.keyid === keyid);
      let code;
      if (!key) {
        code = 'EMISSINGSIGNATUREKEY';
      } else {
        const publishedTime = Date.parse(doc.time?.[version] || '2015-01-01T00:00:00.000Z');
        if (key.expires && !(publishedTime < Date.parse(key.expires))) {
          code = 'EEXPIREDSIGNATUREKEY';
        } else {
          code = verify(`${doc.name}@${version}:${integrity}`, key, sig) ? 'VERIFIED' : 'EINTEGRITYSIGNATURE';
        }
      }
      // The same hash with its last digit changed.
      const tampered = integrity.replace(/(.)(=*)$/, (_, c, pad) => (c === 'A' ? 'B' : 'A') + pad);
      const tamperedVerifies = key ? verify(`${doc.name}@${version}:${tampered}`, key, sig) : false;
      results.push({ name: doc.name, version, keyid, code, tamperedVerifies });
    }
  }
}
console.log(JSON.stringify(results));
"#;

/// Runs [`VERIFY_JS`] with the system node over the server's keys and the packuments of
/// `names`; returns `(name@version, keyid, code)` per signature, and checks that no tampered
/// integrity verified.
#[track_caller]
fn node_verify(server: &Server, names: &[&str], work: &Path) -> Vec<(String, String, String)> {
    let keys = server.get("/-/npm/v1/keys");
    keys.assert_status(200);
    let input = json!({
        "keys": keys.json(),
        "packuments": names.iter().map(|n| packument_json(server, n)).collect::<Vec<_>>(),
    });
    let script = work.join("verify-signatures.js");
    let data = work.join("verify-input.json");
    std::fs::write(&script, VERIFY_JS).unwrap();
    std::fs::write(&data, serde_json::to_vec(&input).unwrap()).unwrap();
    let out = Command::new("node")
        .arg(&script)
        .arg(&data)
        .output()
        .unwrap_or_else(|e| panic!("node (20 or newer) must be on PATH for this test: {e}"));
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .iter()
        .map(|r| {
            assert_eq!(
                r["tamperedVerifies"], false,
                "a tampered integrity verified: {r}"
            );
            (
                format!(
                    "{}@{}",
                    r["name"].as_str().unwrap(),
                    r["version"].as_str().unwrap()
                ),
                r["keyid"].as_str().unwrap_or_default().to_owned(),
                r["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn listed_keys(server: &Server) -> Vec<(String, Value)> {
    let keys = server.get("/-/npm/v1/keys");
    keys.assert_status(200);
    keys.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert_eq!(k["keytype"], "ecdsa-sha2-nistp256");
            assert_eq!(k["scheme"], "ecdsa-sha2-nistp256");
            (
                k["keyid"].as_str().unwrap().to_owned(),
                k["expires"].clone(),
            )
        })
        .collect()
}

fn verified(entries: &[(&str, &str)]) -> Vec<(String, String, String)> {
    entries
        .iter()
        .map(|(spec, keyid)| {
            (
                (*spec).to_owned(),
                (*keyid).to_owned(),
                "VERIFIED".to_owned(),
            )
        })
        .collect()
}

#[test]
fn npm_published_versions_verify_as_pacote_checks_them_across_a_rotation() {
    let mut w = world();
    let work = tempfile::tempdir().unwrap();
    let mut plain = PackageDir::new("sig-demo", "1.0.0");
    w.npm.npm_in(plain.path(), &["publish"]).assert_ok();
    let scoped = PackageDir::new("@acme/sig-demo", "1.0.0");
    w.npm.npm_in(scoped.path(), &["publish"]).assert_ok();

    let keys = listed_keys(&w.server);
    assert_eq!(keys.len(), 1);
    let first = keys[0].0.as_str();
    assert_eq!(keys[0].1, Value::Null);
    let names = ["sig-demo", "@acme/sig-demo"];
    assert_eq!(
        node_verify(&w.server, &names, work.path()),
        verified(&[("sig-demo@1.0.0", first), ("@acme/sig-demo@1.0.0", first)])
    );
    let list = w.server.admin(&["keys", "list"], None);
    list.assert_ok();
    assert_eq!(list.stdout.lines().count(), 1, "{list:?}");
    assert!(
        list.stdout.starts_with(&format!("{first}\t"))
            && list.stdout.trim_end().ends_with("\tcurrent"),
        "{list:?}"
    );

    // Rotate while the server runs: the next publish signs with the new key, no restart.
    let rotate = w.server.admin(&["keys", "rotate"], None);
    rotate.assert_ok();
    plain.set_version("1.1.0");
    w.npm.npm_in(plain.path(), &["publish"]).assert_ok();

    let keys = listed_keys(&w.server);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let second = keys[0].0.clone();
    assert_ne!(second, first);
    assert_eq!(keys[0].1, Value::Null);
    assert_eq!(keys[1].0, first);
    let expired_at = keys[1]
        .1
        .as_str()
        .expect("the old key has an expiry")
        .to_owned();
    let time = &packument_json(&w.server, "sig-demo")["time"];
    assert!(time["1.0.0"].as_str().unwrap() < expired_at.as_str());
    assert!(time["1.1.0"].as_str().unwrap() > expired_at.as_str());
    assert!(
        rotate.stdout.contains(&second) && rotate.stdout.contains(&format!("expired {expired_at}")),
        "{rotate:?}"
    );
    let after_rotation = verified(&[
        ("sig-demo@1.0.0", first),
        ("sig-demo@1.1.0", &second),
        ("@acme/sig-demo@1.0.0", first),
    ]);
    assert_eq!(node_verify(&w.server, &names, work.path()), after_rotation);

    // A restart keeps every signature as it is: they are all still valid.
    w.server.restart().unwrap();
    assert_eq!(node_verify(&w.server, &names, work.path()), after_rotation);
    assert_eq!(listed_keys(&w.server).len(), 2);
}

#[test]
fn a_lost_keyring_gets_a_new_key_and_every_version_is_signed_again_at_start() {
    let mut w = world();
    let work = tempfile::tempdir().unwrap();
    let pkg = PackageDir::new("rekeyed", "1.0.0");
    w.npm.npm_in(pkg.path(), &["publish"]).assert_ok();
    let old = listed_keys(&w.server)[0].0.clone();
    w.server.terminate().unwrap();

    std::fs::remove_file(w.server.data_dir().join("registry-keys.json")).unwrap();
    w.server.restart().unwrap();
    let keys = listed_keys(&w.server);
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0].0, old);
    assert_eq!(
        node_verify(&w.server, &["rekeyed"], work.path()),
        verified(&[("rekeyed@1.0.0", &keys[0].0)])
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(w.server.data_dir().join("registry-keys.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the private key is the owner's alone");
    }
}

#[test]
fn keys_list_on_a_fresh_data_dir_says_how_a_key_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["keys", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("`airlock serve` creates one on its first start")
    );
}
