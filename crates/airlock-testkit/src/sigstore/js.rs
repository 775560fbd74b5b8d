//! sigstore-js as an independent verifier: runs `js/sigstore-verify.mjs` (Node 22 and
//! `@sigstore/verify`, installed on demand into `.tools/`) over a batch of bundles.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{command, tools};

const VERIFY_TIMEOUT: Duration = Duration::from_secs(120);

/// One bundle to check, with what to expect of it.
#[derive(Debug, Clone)]
pub struct JsCase {
    pub name: String,
    pub bundle: Value,
    /// `(san, issuer)`: the certificate identity policy (`subjectAlternativeName`, issuer).
    pub identity: Option<(String, String)>,
    /// Certificate extensions that must be present with exactly this value: `(OID, DER value)`,
    /// e.g. `("1.3.6.1.4.1.57264.1.15", <UTF8String "123">)` for the numeric repository id.
    pub oids: Vec<(String, Vec<u8>)>,
    /// `(purl, sha512 hex)`: npm's subject check on the statement.
    pub subject: Option<(String, String)>,
}

impl JsCase {
    /// A case with no policy and no subject check: only the bundle's own verification.
    pub fn new(name: &str, bundle: Value) -> JsCase {
        JsCase {
            name: name.to_owned(),
            bundle,
            identity: None,
            oids: Vec::new(),
            subject: None,
        }
    }
}

/// What sigstore-js said about one [`JsCase`].
#[derive(Debug, Clone)]
pub struct JsVerdict {
    pub name: String,
    /// `Verifier.verify` (with the identity policy, if any) succeeded.
    pub verified: bool,
    /// `NAME CODE: message` of the verification error.
    pub error: Option<String>,
    /// The signer identity on success: `{san, issuer, oids: {"1.3.6…": "<hex>"}}`.
    pub identity: Option<Value>,
    /// npm's subject check, when asked: `Ok(())` or why it failed.
    pub subject: Option<Result<(), String>>,
}

/// Verifies each case with sigstore-js against `trusted_root` (trusted_root.json). Panics when
/// Node or the script fails to run: a verdict is only ever sigstore-js's own.
pub fn verify_with_sigstore_js(trusted_root: &Value, cases: &[JsCase]) -> Vec<JsVerdict> {
    let node = tools::ensure_sigstore_js();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("js/sigstore-verify.mjs");
    let request = json!({
        "trustedRoot": trusted_root,
        "cases": cases.iter().map(|c| json!({
            "name": c.name,
            "bundle": c.bundle,
            "san": c.identity.as_ref().map(|i| &i.0),
            "issuer": c.identity.as_ref().map(|i| &i.1),
            "oids": c.oids.iter().map(|(oid, value)| json!({
                "oid": oid,
                "value": hex::encode(value),
            })).collect::<Vec<_>>(),
            "purl": c.subject.as_ref().map(|s| &s.0),
            "sha512": c.subject.as_ref().map(|s| &s.1),
        })).collect::<Vec<_>>(),
    });
    let mut cmd = Command::new(&node);
    cmd.arg(&script)
        .arg("--tools-prefix")
        .arg(tools::sigstore_js_prefix());
    let out = command::run(cmd, Some(request.to_string().as_bytes()), VERIFY_TIMEOUT);
    assert!(out.success(), "sigstore-js verifier script failed: {out:?}");
    let answer: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("sigstore-js answered no JSON ({e}): {out:?}"));
    let results = answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("sigstore-js answered no results: {out:?}"));
    assert_eq!(results.len(), cases.len(), "one verdict per case: {out:?}");
    results
        .iter()
        .map(|r| JsVerdict {
            name: r["name"].as_str().unwrap_or_default().to_owned(),
            verified: r["verified"] == json!(true),
            error: r["error"].as_object().map(|e| {
                format!(
                    "{} {}: {}",
                    e["name"].as_str().unwrap_or_default(),
                    e["code"].as_str().unwrap_or("-"),
                    e["message"].as_str().unwrap_or_default()
                )
            }),
            identity: r.get("identity").filter(|v| !v.is_null()).cloned(),
            subject: r.get("subject").filter(|v| !v.is_null()).map(|s| {
                if s["ok"] == json!(true) {
                    Ok(())
                } else {
                    Err(s["message"].as_str().unwrap_or_default().to_owned())
                }
            }),
        })
        .collect()
}
