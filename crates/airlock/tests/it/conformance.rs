//! `airlock verify-bundle` over the sigstore-conformance `bundle-verify` cases vendored in
//! `testdata/sigstore` (see its README), run the way the upstream suite runs a client: each case
//! twice, once with the artifact's path and once with its `sha256:` digest, and always with
//! `--trusted-root` (no network). Exit 0 must mean `expect: valid`; anything else `invalid`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::bin;

/// Cases the verifier is known to get wrong, with why. Empty: all 70 cases pass both ways. A case
/// listed here that starts to give the expected outcome fails the test, so the list stays true.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sigstore")
}

struct Run {
    case: String,
    form: &'static str,
    expect_valid: bool,
    exit: Option<i32>,
    stderr: String,
}

fn run(dir: &Path, case: &Value, by_digest: bool) -> Run {
    let inputs = &case["inputs"];
    let input = |key: &str| {
        inputs[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} in {dir:?}"))
    };
    let mut command = Command::new(bin());
    command
        .current_dir(dir)
        .arg("verify-bundle")
        .args(["--bundle", input("bundle")]);
    match inputs["key"].as_str() {
        Some(key) => command.args(["--key", key]),
        None => command
            .args(["--certificate-identity", input("identity")])
            .args(["--certificate-oidc-issuer", input("issuer")]),
    };
    command.args(["--trusted-root", input("trusted_root")]);
    command.arg(if by_digest {
        input("artifact_digest")
    } else {
        input("artifact")
    });
    let output = command.output().unwrap();
    Run {
        case: dir.file_name().unwrap().to_string_lossy().into_owned(),
        form: if by_digest { "digest" } else { "path" },
        expect_valid: case["expect"] == "valid",
        exit: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn verify_bundle_passes_the_sigstore_conformance_cases() {
    let root = suite();
    let index: Value =
        serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    let ids: Vec<&str> = index["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| case["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 70, "the vendored suite has 70 cases");
    for (known, _) in KNOWN_FAILURES {
        assert!(
            ids.iter().any(|id| id.ends_with(known)),
            "unknown case {known}"
        );
    }

    let mut runs = Vec::new();
    for id in &ids {
        let dir = root.join(id);
        let case: Value =
            serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
        assert_eq!(case["expect"] == "valid", !id.ends_with("_fail"), "{id}");
        for by_digest in [false, true] {
            runs.push(run(&dir, &case, by_digest));
        }
    }

    let mut problems = Vec::new();
    let mut agree = 0;
    for r in &runs {
        // The protocol: 0 verified, 1 refused; anything else (2 = unexpected, a signal, a clap
        // usage error) is a bug in the verifier even where the case expects a refusal.
        let verified = r.exit == Some(0);
        let agrees = verified == r.expect_valid && matches!(r.exit, Some(0 | 1));
        let known = KNOWN_FAILURES.iter().any(|(case, _)| *case == r.case);
        if agrees {
            agree += 1;
        }
        if agrees == known {
            let first_line = r.stderr.lines().next().unwrap_or("");
            problems.push(format!(
                "{:<52} {:<6} expected {:<7} exit {:<4} {}{}",
                r.case,
                r.form,
                if r.expect_valid { "valid" } else { "invalid" },
                r.exit.map_or_else(|| "none".to_owned(), |c| c.to_string()),
                if known {
                    "(listed as a known failure, but passes) "
                } else {
                    ""
                },
                first_line,
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "verify-bundle agrees with the suite on {agree}/{} runs ({} cases x path and digest); \
         these disagree with the expectation or with KNOWN_FAILURES:\n{}",
        runs.len(),
        ids.len(),
        problems.join("\n")
    );
}

#[test]
fn verify_bundle_uses_the_embedded_roots_and_explains_refusals() {
    let case = suite().join("conformance/happy-path-v0.3");
    let beacon = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
    let verify = |extra: &[&str], identity: &str| {
        Command::new(bin())
            .current_dir(&case)
            .arg("verify-bundle")
            .args(extra)
            .args(["--bundle", "bundle.sigstore.json"])
            .args(["--certificate-identity", identity])
            .args([
                "--certificate-oidc-issuer",
                "https://token.actions.githubusercontent.com",
            ])
            .arg("artifact")
            .output()
            .unwrap()
    };

    // No --trusted-root: the embedded public-good root.
    let out = verify(&[], beacon);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!("verified: signed by {beacon}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("logged: index 79571823 at 2024-03-19T17:26:26Z"),
        "{stdout}"
    );

    // --staging: the embedded staging root, which does not list the production log.
    let out = verify(&["--staging"], beacon);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(
            "error: the bundle was logged in a transparency log that no trusted root lists"
        ),
        "{stderr}"
    );

    // A refusal names what was expected and what was found.
    let out = verify(
        &[],
        "https://github.com/octo/repo/.github/workflows/release.yml@refs/heads/main",
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: the bundle was not signed by the expected identity: expected \
             https://github.com/octo/repo/.github/workflows/release.yml@refs/heads/main, found {beacon}"
        )
    );

    // A verifier failure's detail follows as `caused by:`.
    let out = Command::new(bin())
        .current_dir(suite().join("conformance/signature-mismatch_fail"))
        .args(["verify-bundle", "--bundle", "bundle.sigstore.json"])
        .args(["--certificate-identity", beacon])
        .args([
            "--certificate-oidc-issuer",
            "https://token.actions.githubusercontent.com",
        ])
        .arg("artifact")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[0],
        "error: the signature does not verify with the signer's key"
    );
    assert!(
        lines[1].starts_with("  caused by: invalid signature"),
        "{stderr}"
    );
}
