//! The sigstore-conformance `bundle-verify` cases (vendored in `testdata/sigstore`), run through
//! the library: every case with the artifact's bytes and with its `sha256:` digest. The binary's
//! `verify-bundle` runs the same cases in `crates/airlock/tests/it/conformance.rs`.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};

use airlock_trust::sigstore::{Artifact, PublicKey, SignerPolicy, TrustedRoots};
use serde_json::Value;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sigstore/conformance")
}

fn run_case(dir: &Path, case: &Value, by_digest: bool) -> Result<(), String> {
    let inputs = &case["inputs"];
    let path = |key: &str| dir.join(inputs[key].as_str().unwrap());
    let roots = TrustedRoots::from_file(&path("trusted_root")).map_err(|e| chain(&e))?;
    let policy = match inputs["key"].as_str() {
        Some(key) => SignerPolicy::PublicKey(
            PublicKey::from_pem(&std::fs::read_to_string(dir.join(key)).unwrap())
                .map_err(|e| chain(&e))?,
        ),
        None => SignerPolicy::Identity {
            identity: inputs["identity"].as_str().unwrap().to_owned(),
            issuer: inputs["issuer"].as_str().unwrap().to_owned(),
        },
    };
    let bundle = std::fs::read(path("bundle")).unwrap();
    let bytes = std::fs::read(path("artifact")).unwrap();
    let artifact = if by_digest {
        Artifact::parse_digest(inputs["artifact_digest"].as_str().unwrap())
            .unwrap()
            .unwrap()
    } else {
        Artifact::Bytes(&bytes)
    };
    roots
        .verify(&bundle, artifact, &policy)
        .map(|_| ())
        .map_err(|e| chain(&e))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[test]
fn every_conformance_case_gives_the_expected_outcome() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 70, "the vendored suite has 70 cases");
    let mut wrong = Vec::new();
    let mut passed = 0;
    for dir in &dirs {
        let case: Value =
            serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
        let expect_valid = case["expect"] == "valid";
        for by_digest in [false, true] {
            let outcome = run_case(dir, &case, by_digest);
            if outcome.is_ok() == expect_valid {
                passed += 1;
            } else {
                wrong.push(format!(
                    "{:<55} {:<6} expected {:<7} got {}",
                    dir.file_name().unwrap().to_string_lossy(),
                    if by_digest { "digest" } else { "path" },
                    if expect_valid { "valid" } else { "invalid" },
                    outcome.err().unwrap_or_else(|| "valid".to_owned()),
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{passed}/{} runs agree; these do not:\n{}",
        dirs.len() * 2,
        wrong.join("\n")
    );
}
