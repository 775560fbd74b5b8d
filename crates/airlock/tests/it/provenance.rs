//! Provenance through the binary: `[provenance] trusted_roots` in the config file, read and
//! checked at start; a publish carrying a bundle from that Sigstore instance is verified,
//! stored and served where `npm audit signatures` looks (`dist.attestations.url`).
//!
//! npm's client-side check of `--provenance-file` needs the Sigstore TUF CDN (protocol §3.1),
//! which cannot be reached here, so the PUT is sent directly with npm's exact body: the
//! testkit's `PublishBody` plus the `.sigstore` attachment as npm adds it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use airlock_testkit::sigstore::{
    Breakage, BundleOptions, CiIdentity, SLSA_PROVENANCE_V1, TestSigstore,
    npm_provenance_attachment,
};
use airlock_testkit::{PublishBody, ServerOptions};
use serde_json::Value;

use crate::common::*;

fn body_with_provenance(server_url: &str, body: &PublishBody, bundle: &Value) -> Value {
    let mut json = body.to_json(server_url);
    let (key, attachment) = npm_provenance_attachment(&body.name, &body.version, bundle);
    json["_attachments"][key] = attachment;
    json
}

#[test]
fn a_configured_trusted_root_verifies_and_serves_provenance() {
    let sigstore = TestSigstore::new();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("trusted_root.json");
    sigstore.write_trusted_root(&root).unwrap();
    let server = server_with(ServerOptions::new().config(&format!(
        "[provenance]\ntrusted_roots = [{:?}]\n",
        root.display().to_string()
    )));
    let token = server.user_with_token("alice");
    let identity = CiIdentity::github("acme/e2e", 1, 2, "release.yml");

    // A broken bundle is refused with npm's `{"error"}` and nothing is stored.
    let body = PublishBody::new("@acme/e2e-prov", "1.0.0");
    let broken = sigstore.npm_provenance_bundle(
        &body.name,
        &body.version,
        &body.tarball,
        &identity,
        &BundleOptions::broken(Breakage::CorruptedInclusionProof),
    );
    let r = server
        .http("PUT", &body.path())
        .bearer(&token)
        .json(&body_with_provenance(server.url(), &body, &broken))
        .send();
    let error = assert_error(&r, 400);
    assert!(error.contains("transparency log entry"), "{error}");
    assert_not_stored(&server, "@acme/e2e-prov");

    let bundle = sigstore.npm_provenance_bundle(
        &body.name,
        &body.version,
        &body.tarball,
        &identity,
        &BundleOptions::default(),
    );
    let r = server
        .http("PUT", &body.path())
        .bearer(&token)
        .json(&body_with_provenance(server.url(), &body, &bundle))
        .send();
    r.assert_status(201);

    // npm takes the path of `dist.attestations.url` and asks the registry for it.
    let doc = packument_json(&server, "@acme/e2e-prov");
    let attestations = &doc["versions"]["1.0.0"]["dist"]["attestations"];
    assert_eq!(
        attestations["provenance"]["predicateType"],
        SLSA_PROVENANCE_V1
    );
    let path = path_of(&server, attestations["url"].as_str().unwrap());
    assert_eq!(path, "/-/npm/v1/attestations/@acme%2fe2e-prov@1.0.0");
    let r = server.http("GET", &path).send();
    r.assert_status(200);
    let served = r.json();
    assert_eq!(
        served["attestations"][0]["predicateType"],
        SLSA_PROVENANCE_V1
    );
    assert_eq!(served["attestations"][0]["bundle"], bundle);

    // Downgrade protection is on by default.
    let next = PublishBody::new("@acme/e2e-prov", "1.1.0");
    let r = publish_raw(&server, Some(&token), &next);
    let error = assert_error(&r, 403);
    assert!(error.contains("--allow-missing-provenance"), "{error}");
}

#[test]
fn an_unusable_trusted_root_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("airlock.toml");
    let missing = dir.path().join("no-such-root.json");
    std::fs::write(
        &config,
        format!(
            "[provenance]\ntrusted_roots = [{:?}]\n",
            missing.display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("AIRLOCK_CONFIG")
        .env_remove("AIRLOCK_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("airlock started with an unreadable trusted root");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(1), "a user error: {stderr}");
    assert!(
        stderr.contains("provenance.trusted_roots") && stderr.contains("no-such-root.json"),
        "{stderr}"
    );
}
