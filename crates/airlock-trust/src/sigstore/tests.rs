//! The wrapper over real bundles from the vendored sigstore-conformance cases
//! (`testdata/sigstore`), each one changed in one way to reach one specific refusal.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a failed unwrap is a failed test"
)]

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::Digest as _;

use super::*;

const BEACON: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const GITHUB: &str = "https://token.actions.githubusercontent.com";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sigstore")
}

fn case_file(case: &str, file: &str) -> Vec<u8> {
    std::fs::read(testdata().join("conformance").join(case).join(file)).unwrap()
}

fn beacon() -> SignerPolicy {
    SignerPolicy::Identity {
        identity: BEACON.to_owned(),
        issuer: GITHUB.to_owned(),
    }
}

fn a_txt() -> Vec<u8> {
    case_file("happy-path-v0.3", "artifact")
}

fn verify(
    bundle: &[u8],
    artifact: &[u8],
    policy: &SignerPolicy,
) -> Result<VerifiedBundle, SigstoreError> {
    TrustedRoots::public_good()
        .unwrap()
        .verify(bundle, Artifact::Bytes(artifact), policy)
}

/// `case`'s bundle with `change` applied to its JSON.
fn changed(case: &str, change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut bundle: Value =
        serde_json::from_slice(&case_file(case, "bundle.sigstore.json")).unwrap();
    change(&mut bundle);
    serde_json::to_vec(&bundle).unwrap()
}

/// Flips one bit of the base64 bytes at `value`.
fn flip(value: &mut Value) {
    let mut bytes = STANDARD.decode(value.as_str().unwrap()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    *value = Value::String(STANDARD.encode(bytes));
}

#[test]
fn the_embedded_roots_are_the_vendored_snapshots() {
    let vendored =
        |name: &str| std::fs::read_to_string(testdata().join("trust").join(name)).unwrap();
    assert_eq!(
        PUBLIC_GOOD_TRUSTED_ROOT,
        vendored("public-good.trusted_root.json")
    );
    assert_eq!(STAGING_TRUSTED_ROOT, vendored("staging.trusted_root.json"));
    TrustedRoots::public_good().unwrap();
    TrustedRoots::staging().unwrap();
}

#[test]
fn a_verified_certificate_bundle_reports_the_signer_and_the_log_entry() {
    let verified = verify(
        &case_file("happy-path-v0.3", "bundle.sigstore.json"),
        &a_txt(),
        &beacon(),
    )
    .unwrap();
    assert_eq!(verified.trusted_root(), "the embedded public-good root");
    assert_eq!(
        verified.media_type(),
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    let cert = verified.certificate().unwrap();
    assert_eq!(cert.san, BEACON);
    assert_eq!(cert.issuer.as_deref(), Some(GITHUB));
    assert_eq!(
        cert.source_repository_uri.as_deref(),
        Some("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon")
    );
    assert_eq!(cert.build_config_uri.as_deref(), Some(BEACON));
    assert_eq!(cert.runner_environment.as_deref(), Some("github-hosted"));
    assert!(cert.source_repository_id.is_some() && cert.source_repository_owner_id.is_some());
    let [entry] = verified.log_entries() else {
        panic!("one log entry expected: {:?}", verified.log_entries());
    };
    assert_eq!(entry.log_index, 79_571_823);
    let integrated = verified.integrated_time().unwrap();
    assert_eq!(entry.integrated_time, Some(integrated));
    assert_eq!(integrated.unix_timestamp(), 1_710_869_186);
    assert!(verified.signing_times().contains(&integrated));
    assert!(verified.statement().is_none());
}

#[test]
fn every_bundle_version_and_media_type_spelling_verifies() {
    for case in [
        "happy-path-v0.1",
        "happy-path-v0.2",
        "happy-path-v0.3",
        "happy-path-v0.3-new-mediaType",
    ] {
        let artifact = case_file(case, "artifact");
        verify(
            &case_file(case, "bundle.sigstore.json"),
            &artifact,
            &beacon(),
        )
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    }
}

#[test]
fn a_dsse_bundle_reports_its_in_toto_statement() {
    let bundle = case_file("happy-path-intoto-in-dsse-v3", "bundle.sigstore.json");
    let verified = verify(&bundle, &a_txt(), &beacon()).unwrap();
    let statement = verified.statement().unwrap();
    assert_eq!(statement.statement_type, "https://in-toto.io/Statement/v1");
    assert_eq!(statement.predicate_type, "https://slsa.dev/provenance/v1");
    let [subject] = statement.subjects.as_slice() else {
        panic!("one subject expected");
    };
    assert_eq!(subject.name, "a.txt");
    assert_eq!(
        subject.digests.get("sha256").map(String::as_str),
        Some("a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf")
    );
    // Not npm provenance: the subject is no package URL.
    assert!(matches!(
        verified.check_npm_subject("a", "1.0.0", &[0; 64]),
        Err(SigstoreError::NpmSubjectName { .. })
    ));
    // The digest form of the same artifact verifies too; a sha512 of it names no subject.
    let roots = TrustedRoots::public_good().unwrap();
    let digest = Artifact::parse_digest(
        "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf",
    )
    .unwrap()
    .unwrap();
    roots.verify(&bundle, digest, &beacon()).unwrap();
    let sha512: [u8; 64] = sha2::Sha512::digest(a_txt()).into();
    assert!(matches!(
        roots.verify(&bundle, Artifact::Sha512(sha512), &beacon()),
        Err(SigstoreError::ArtifactMismatch { .. })
    ));
}

#[test]
fn a_tampered_signature_is_a_signature_error() {
    let bundle = changed("happy-path-v0.3", |b| {
        flip(&mut b["messageSignature"]["signature"])
    });
    let err = verify(&bundle, &a_txt(), &beacon()).unwrap_err();
    assert!(matches!(err, SigstoreError::Signature { .. }), "{err:?}");
}

#[test]
fn a_tampered_dsse_payload_is_refused() {
    let bundle = changed("happy-path-intoto-in-dsse-v3", |b| {
        let payload = b["dsseEnvelope"]["payload"].as_str().unwrap();
        let statement = String::from_utf8(STANDARD.decode(payload).unwrap()).unwrap();
        let forged = statement.replace("a.txt", "b.txt");
        b["dsseEnvelope"]["payload"] = Value::String(STANDARD.encode(forged));
    });
    let err = verify(&bundle, &a_txt(), &beacon()).unwrap_err();
    assert!(matches!(err, SigstoreError::Signature { .. }), "{err:?}");
}

#[test]
fn other_bytes_are_an_artifact_mismatch() {
    let bundle = case_file("happy-path-v0.3", "bundle.sigstore.json");
    let err = verify(&bundle, b"not the signed bytes", &beacon()).unwrap_err();
    assert!(
        matches!(err, SigstoreError::ArtifactMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn a_broken_inclusion_proof_is_a_transparency_log_error() {
    let bundle = changed("happy-path-v0.3", |b| {
        flip(&mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][0]);
    });
    let err = verify(&bundle, &a_txt(), &beacon()).unwrap_err();
    assert!(
        matches!(err, SigstoreError::TransparencyLog { .. }),
        "{err:?}"
    );
}

#[test]
fn a_changed_integrated_time_breaks_the_signed_entry_timestamp() {
    let bundle = changed("happy-path-v0.1", |b| {
        b["verificationMaterial"]["tlogEntries"][0]["integratedTime"] =
            Value::String("1689177397".into());
    });
    let err = verify(&bundle, &a_txt(), &beacon()).unwrap_err();
    assert!(
        matches!(err, SigstoreError::TransparencyLog { .. }),
        "{err:?}"
    );
}

#[test]
fn another_signer_is_named_in_the_refusal() {
    let bundle = case_file("happy-path-v0.3", "bundle.sigstore.json");
    let policy = SignerPolicy::Identity {
        identity: "https://github.com/octo/repo/.github/workflows/release.yml@refs/heads/main"
            .into(),
        issuer: GITHUB.into(),
    };
    let err = verify(&bundle, &a_txt(), &policy).unwrap_err();
    let SigstoreError::IdentityMismatch { expected, found } = &err else {
        panic!("{err:?}");
    };
    assert!(expected.contains("octo/repo") && found == BEACON, "{err}");
    let policy = SignerPolicy::Identity {
        identity: BEACON.into(),
        issuer: "https://accounts.google.com".into(),
    };
    let err = verify(&bundle, &a_txt(), &policy).unwrap_err();
    assert!(
        matches!(&err, SigstoreError::IssuerMismatch { found, .. } if found == GITHUB),
        "{err:?}"
    );
    // Any certificate: the caller authorizes the claims itself.
    let verified = verify(&bundle, &a_txt(), &SignerPolicy::AnyCertificate).unwrap();
    assert_eq!(verified.certificate().unwrap().san, BEACON);
}

#[test]
fn a_bundle_from_an_untrusted_instance_names_its_log() {
    let bundle = case_file("happy-path-v0.3", "bundle.sigstore.json");
    let err = TrustedRoots::staging()
        .unwrap()
        .verify(&bundle, Artifact::Bytes(&a_txt()), &beacon())
        .unwrap_err();
    assert!(matches!(err, SigstoreError::UnknownLog { .. }), "{err:?}");
    assert!(err.to_string().contains("pass the trusted root"), "{err}");
}

#[test]
fn extra_roots_verify_private_deployments_next_to_public_good() {
    let case = "intoto-with-custom-trust-root";
    let custom = testdata()
        .join("conformance")
        .join(case)
        .join("trusted_root.json");
    let bundle = case_file(case, "bundle.sigstore.json");
    let artifact = case_file(case, "artifact");
    let err = TrustedRoots::public_good()
        .unwrap()
        .verify(&bundle, Artifact::Bytes(&artifact), &beacon())
        .unwrap_err();
    assert!(matches!(err, SigstoreError::UnknownLog { .. }), "{err:?}");
    let roots = TrustedRoots::public_good()
        .unwrap()
        .with_file(&custom)
        .unwrap();
    assert_eq!(roots.names().count(), 2);
    let verified = roots
        .verify(&bundle, Artifact::Bytes(&artifact), &beacon())
        .unwrap();
    assert_eq!(verified.trusted_root(), custom.display().to_string());
    // The public-good bundles still verify with the extra root loaded.
    roots
        .verify(
            &case_file("happy-path-v0.3", "bundle.sigstore.json"),
            Artifact::Bytes(&a_txt()),
            &beacon(),
        )
        .unwrap();
}

#[test]
fn the_policy_kind_must_match_the_bundle_kind() {
    let key_bundle = case_file("managed-key-happy-path", "bundle.sigstore.json");
    let key = PublicKey::from_pem(
        &String::from_utf8(case_file("managed-key-happy-path", "key.pub")).unwrap(),
    )
    .unwrap();
    let artifact = case_file("managed-key-happy-path", "artifact");
    let verified = verify(
        &key_bundle,
        &artifact,
        &SignerPolicy::PublicKey(key.clone()),
    )
    .unwrap();
    assert_eq!(verified.signer(), &Signer::PublicKey);
    assert!(matches!(
        verify(&key_bundle, &artifact, &beacon()),
        Err(SigstoreError::KeyWhereCertificateExpected)
    ));
    let cert_bundle = case_file("happy-path-v0.3", "bundle.sigstore.json");
    assert!(matches!(
        verify(&cert_bundle, &a_txt(), &SignerPolicy::PublicKey(key)),
        Err(SigstoreError::CertificateWhereKeyExpected)
    ));
}

#[test]
fn malformed_input_is_refused_before_any_crypto() {
    let no_media_type = changed("happy-path-v0.3", |b| {
        b.as_object_mut().unwrap().remove("mediaType");
    });
    assert!(matches!(
        verify(&no_media_type, &a_txt(), &beacon()),
        Err(SigstoreError::BundleMediaTypeMissing)
    ));
    assert!(matches!(
        verify(b"{not json", &a_txt(), &beacon()),
        Err(SigstoreError::BundleMalformed { .. })
    ));
    assert!(matches!(
        Artifact::parse_digest("sha256:abc"),
        Some(Err(SigstoreError::DigestInvalid {
            algorithm: "sha256",
            expected: 64
        }))
    ));
    assert!(Artifact::parse_digest("md5:abc").is_none());
    assert!(matches!(
        PublicKey::from_pem("not a key"),
        Err(SigstoreError::PublicKeyInvalid { .. })
    ));
    assert!(matches!(
        TrustedRoots::from_json("broken", "{}"),
        Err(SigstoreError::TrustedRootInvalid { .. })
    ));
}

#[test]
fn a_2023_v0_1_bundle_with_the_full_chain_and_no_checkpoint_verifies_by_its_set() {
    // Made by sigstore-js in May 2023, as npm provenance then was: the chain includes Fulcio's
    // root (never trusted from the bundle, only from the trusted root) and the inclusion proof
    // predates checkpoints. sigstore-js and sigstore-python accept it by its SET, and so do we;
    // the conformance case built from it is refused because the suite expects another identity.
    let case = "bundle-with-root-cert_fail";
    let policy = SignerPolicy::Identity {
        identity: "a@tny.town".into(),
        issuer: "https://github.com/login/oauth".into(),
    };
    let verified = verify(
        &case_file(case, "bundle.sigstore.json"),
        &case_file(case, "artifact"),
        &policy,
    )
    .unwrap();
    assert_eq!(
        verified.integrated_time().unwrap().unix_timestamp(),
        1_683_317_662
    );
    assert!(matches!(
        verify(
            &case_file(case, "bundle.sigstore.json"),
            &case_file(case, "artifact"),
            &beacon()
        ),
        Err(SigstoreError::IdentityMismatch { .. })
    ));
    // A v0.2 bundle must carry a verifiable inclusion proof: no such leniency.
    let err = verify(
        &case_file("invalid-inclusion-proof_fail", "bundle.sigstore.json"),
        &a_txt(),
        &beacon(),
    )
    .unwrap_err();
    assert!(
        matches!(err, SigstoreError::BundleInvalid { .. }),
        "{err:?}"
    );
}
