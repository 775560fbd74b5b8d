//! The test Sigstore instance (`airlock_testkit::sigstore`) makes real bundles: sigstore-js
//! (`@sigstore/verify`, an independent implementation, installed into `.tools/` on demand)
//! verifies the good ones against our test trusted root and rejects each broken variant for the
//! reason it was broken.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use airlock_testkit::sigstore::{
    Breakage, BundleOptions, BundleVersion, CiIdentity, FULCIO_OID_ARC, GITHUB_ACTIONS_ISSUER,
    JsCase, JsVerdict, TestSigstore, npm_purl, verify_with_sigstore_js,
};
use airlock_testkit::{npm_tarball, unix_now};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

const NAME: &str = "@octo-org/demo";
const VERSION: &str = "1.2.3";

fn identity() -> CiIdentity {
    CiIdentity::github("octo-org/demo", 123_456, 654_321, "publish.yml")
}

fn tarball() -> Vec<u8> {
    npm_tarball(
        &json!({"name": NAME, "version": VERSION}),
        &[("index.js", b"module.exports = 1;\n")],
    )
}

fn sha512_hex(bytes: &[u8]) -> String {
    hex::encode(Sha512::digest(bytes))
}

fn oid(arc: u32) -> String {
    format!("{FULCIO_OID_ARC}.{arc}")
}

/// A case with npm's checks: the identity policy (SAN, issuer, numeric repository id) and the
/// statement subject for `NAME@VERSION` and these tarball bytes.
fn npm_case(name: &str, bundle: Value, expected: &CiIdentity, tarball: &[u8]) -> JsCase {
    JsCase {
        identity: Some((expected.san_uri(), expected.issuer.clone())),
        oids: vec![(oid(15), expected.fulcio_extension(15).unwrap())],
        subject: Some((npm_purl(NAME, VERSION), sha512_hex(tarball))),
        ..JsCase::new(name, bundle)
    }
}

fn verdict<'a>(verdicts: &'a [JsVerdict], name: &str) -> &'a JsVerdict {
    verdicts.iter().find(|v| v.name == name).unwrap()
}

/// The DER UTF8String the hex holds.
fn utf8_value(hex_der: &str) -> String {
    let der = hex::decode(hex_der).unwrap();
    assert_eq!(der[0], 0x0c, "UTF8String tag in {hex_der}");
    let (len, start) = if der[1] < 0x80 {
        (usize::from(der[1]), 2)
    } else {
        let n = usize::from(der[1] & 0x7f);
        (
            der[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
            2 + n,
        )
    };
    assert_eq!(der.len(), start + len);
    String::from_utf8(der[start..].to_vec()).unwrap()
}

#[test]
fn bundle_has_npm_provenance_shape() {
    let sigstore = TestSigstore::new();
    let tarball = tarball();
    let bundle = sigstore.npm_provenance_bundle(
        NAME,
        VERSION,
        &tarball,
        &identity(),
        &BundleOptions::default(),
    );
    assert_eq!(
        bundle["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );

    let envelope = &bundle["dsseEnvelope"];
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    let payload = B64.decode(envelope["payload"].as_str().unwrap()).unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(
        statement["subject"],
        json!([{"name": "pkg:npm/%40octo-org/demo@1.2.3", "digest": {"sha512": sha512_hex(&tarball)}}])
    );
    let workflow = &statement["predicate"]["buildDefinition"]["externalParameters"]["workflow"];
    assert_eq!(workflow["repository"], "https://github.com/octo-org/demo");
    assert_eq!(workflow["path"], ".github/workflows/publish.yml");

    let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
    assert_eq!(
        entry["kindVersion"],
        json!({"kind": "dsse", "version": "0.0.1"})
    );
    assert_eq!(
        entry["logId"]["keyId"],
        json!(B64.encode(sigstore.rekor_log_id()))
    );
    // Integers as strings, and always present (sigstore-python rejects a proof without them).
    let proof = &entry["inclusionProof"];
    assert!(entry["logIndex"].is_string() && proof["logIndex"].is_string());
    assert!(proof["treeSize"].is_string());
    assert!(!proof["hashes"].as_array().unwrap().is_empty());
    assert!(entry["inclusionPromise"]["signedEntryTimestamp"].is_string());
    let checkpoint = proof["checkpoint"]["envelope"].as_str().unwrap();
    let lines: Vec<&str> = checkpoint.split('\n').collect();
    assert!(
        lines[0].starts_with("rekor.airlock.test - "),
        "{checkpoint}"
    );
    assert_eq!(lines[1], proof["treeSize"].as_str().unwrap());
    assert_eq!(lines[2], proof["rootHash"].as_str().unwrap());
    assert_eq!(lines[3], "");
    assert!(
        lines[4].starts_with("\u{2014} rekor.airlock.test "),
        "{checkpoint}"
    );

    // The Rekor dsse body: hashes computed the way Rekor does.
    let body: Value = serde_json::from_slice(
        &B64.decode(entry["canonicalizedBody"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["kind"], "dsse");
    assert_eq!(
        body["spec"]["payloadHash"]["value"],
        hex::encode(Sha256::digest(&payload))
    );
    let envelope_canonical = format!(
        r#"{{"payload":"{}","payloadType":"application/vnd.in-toto+json","signatures":[{{"sig":"{}"}}]}}"#,
        envelope["payload"].as_str().unwrap(),
        envelope["signatures"][0]["sig"].as_str().unwrap()
    );
    assert_eq!(
        body["spec"]["envelopeHash"]["value"],
        hex::encode(Sha256::digest(envelope_canonical.as_bytes()))
    );
    assert_eq!(
        body["spec"]["signatures"][0]["signature"],
        envelope["signatures"][0]["sig"]
    );
    let verifier_pem = String::from_utf8(
        B64.decode(body["spec"]["signatures"][0]["verifier"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(verifier_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));

    // The trusted root names the log by its key's hash.
    let root = sigstore.trusted_root_json();
    assert_eq!(root["tlogs"][0]["logId"]["keyId"], entry["logId"]["keyId"]);
    assert_eq!(
        root["tlogs"][0]["logId"]["keyId"],
        json!(B64.encode(Sha256::digest(sigstore.rekor_public_key_der())))
    );
    assert_eq!(
        root["certificateAuthorities"][0]["certChain"]["certificates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trusted_root.json");
    sigstore.write_trusted_root(&path).unwrap();
    let written: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(written, root);

    // The log is shared: a second bundle lands further down the same tree.
    let second = sigstore.npm_provenance_bundle(
        NAME,
        VERSION,
        &tarball,
        &identity(),
        &BundleOptions::default(),
    );
    let index = |b: &Value| {
        b["verificationMaterial"]["tlogEntries"][0]["logIndex"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(index(&second) > index(&bundle));
}

#[test]
fn sigstore_js_verifies_good_bundles() {
    let sigstore = TestSigstore::new();
    let tarball = tarball();
    let id = identity();
    let mut cases = Vec::new();
    for (label, version) in [
        ("v0.1", BundleVersion::V0_1),
        ("v0.2", BundleVersion::V0_2),
        ("v0.3", BundleVersion::V0_3),
        ("v0.3-alt-media-type", BundleVersion::V0_3AltMediaType),
    ] {
        let bundle = sigstore.npm_provenance_bundle(
            NAME,
            VERSION,
            &tarball,
            &id,
            &BundleOptions::version(version),
        );
        cases.push(npm_case(label, bundle, &id, &tarball));
    }
    // Signed two days ago: verification uses the log's time, not now.
    let old = BundleOptions {
        signed_at: Some(unix_now() - 2 * 24 * 3600),
        ..BundleOptions::default()
    };
    let bundle = sigstore.npm_provenance_bundle(NAME, VERSION, &tarball, &id, &old);
    cases.push(npm_case("two-days-old", bundle, &id, &tarball));
    // A reusable workflow: the SAN is the called workflow.
    let mut reusable = id.clone();
    reusable.job_workflow_ref =
        Some("octo-org/shared/.github/workflows/npm.yml@refs/tags/v1".into());
    let bundle = sigstore.npm_provenance_bundle(
        NAME,
        VERSION,
        &tarball,
        &reusable,
        &BundleOptions::default(),
    );
    cases.push(npm_case("reusable-workflow", bundle, &reusable, &tarball));

    let verdicts = verify_with_sigstore_js(&sigstore.trusted_root_json(), &cases);
    for v in &verdicts {
        assert!(v.verified, "sigstore-js rejected {}: {:?}", v.name, v.error);
        assert_eq!(v.subject, Some(Ok(())), "{}", v.name);
    }

    // The certificate carries Fulcio's extensions as sigstore-js reads them.
    let v03 = verdict(&verdicts, "v0.3").identity.clone().unwrap();
    assert_eq!(v03["san"], json!(id.san_uri()));
    assert_eq!(v03["issuer"], GITHUB_ACTIONS_ISSUER);
    let ext = |arc: u32| utf8_value(v03["oids"][oid(arc)].as_str().unwrap());
    assert_eq!(ext(8), GITHUB_ACTIONS_ISSUER);
    assert_eq!(
        ext(9),
        "https://github.com/octo-org/demo/.github/workflows/publish.yml@refs/heads/main"
    );
    assert_eq!(ext(11), "github-hosted");
    assert_eq!(ext(12), "https://github.com/octo-org/demo");
    assert_eq!(ext(13), id.sha);
    assert_eq!(ext(14), "refs/heads/main");
    assert_eq!(ext(15), "123456");
    assert_eq!(ext(17), "654321");
    assert_eq!(ext(18), id.build_config_uri());
    assert!(
        v03["oids"]["1.3.6.1.4.1.11129.2.4.2"].is_string(),
        "embedded SCT"
    );
    let reusable_ids = verdict(&verdicts, "reusable-workflow")
        .identity
        .clone()
        .unwrap();
    assert_eq!(
        utf8_value(reusable_ids["oids"][oid(18)].as_str().unwrap()),
        id.build_config_uri()
    );

    // A root that issues leaves directly verifies too.
    let direct = TestSigstore::without_intermediate();
    let bundle =
        direct.npm_provenance_bundle(NAME, VERSION, &tarball, &id, &BundleOptions::default());
    let verdicts = verify_with_sigstore_js(
        &direct.trusted_root_json(),
        &[npm_case("no-intermediate", bundle, &id, &tarball)],
    );
    assert!(verdicts[0].verified, "{:?}", verdicts[0].error);
}

#[test]
fn sigstore_js_rejects_each_broken_bundle() {
    let sigstore = TestSigstore::new();
    let tarball = tarball();
    let id = identity();
    let make = |breakage: Breakage| {
        sigstore.npm_provenance_bundle(
            NAME,
            VERSION,
            &tarball,
            &id,
            &BundleOptions::broken(breakage),
        )
    };
    // (case, bundle, what sigstore-js's verifier must say: None = verifies, the subject check fails)
    let mut cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "other-package",
            make(Breakage::OtherPackageName("@octo-org/other".into())),
            None,
        ),
        ("other-tarball", make(Breakage::OtherTarball), None),
        (
            "bad-signature",
            make(Breakage::BadSignature),
            Some("SIGNATURE_ERROR"),
        ),
        (
            "tampered-payload",
            make(Breakage::TamperedPayload),
            Some("TLOG_BODY_ERROR"),
        ),
        (
            "expired-certificate",
            make(Breakage::ExpiredCertificate),
            Some("CERTIFICATE_ERROR"),
        ),
        (
            "certificate-not-yet-valid",
            make(Breakage::CertificateNotYetValid),
            Some("CERTIFICATE_ERROR"),
        ),
        (
            "corrupted-inclusion-proof",
            make(Breakage::CorruptedInclusionProof),
            Some("TLOG_INCLUSION_PROOF_ERROR"),
        ),
        (
            "wrong-checkpoint-signature",
            make(Breakage::WrongCheckpointSignature),
            Some("invalid checkpoint signature"),
        ),
        (
            "untrusted-ca",
            make(Breakage::UntrustedCa),
            Some("CERTIFICATE_ERROR"),
        ),
        (
            "unknown-ct-log",
            make(Breakage::UnknownCtLog),
            Some("SCT verification failed"),
        ),
        (
            "wrong-set",
            make(Breakage::WrongSignedEntryTimestamp),
            Some("TLOG_INCLUSION_PROMISE_ERROR"),
        ),
    ];
    // Another identity signs a perfectly good bundle: the identity policy refuses it.
    let mut other_repo = id.clone();
    other_repo.repository = "mallory/demo".into();
    let mut other_workflow = id.clone();
    other_workflow.workflow_path = ".github/workflows/evil.yml".into();
    let mut other_repo_id = id.clone();
    other_repo_id.repository_id = 999_999; // same name, re-created repository
    for (label, who) in [
        ("other-repository", &other_repo),
        ("other-workflow", &other_workflow),
        ("other-repository-id", &other_repo_id),
    ] {
        let bundle =
            sigstore.npm_provenance_bundle(NAME, VERSION, &tarball, who, &BundleOptions::default());
        cases.push((label, bundle, Some("UNTRUSTED_SIGNER_ERROR")));
    }
    // A good bundle from another Sigstore instance (same names, other keys).
    let stranger = TestSigstore::new();
    let bundle =
        stranger.npm_provenance_bundle(NAME, VERSION, &tarball, &id, &BundleOptions::default());
    cases.push(("other-instance", bundle, Some("_ERROR")));
    // A v0.1 bundle (SET only counts there) with a broken checkpoint is still refused.
    let broken_v01 = sigstore.npm_provenance_bundle(
        NAME,
        VERSION,
        &tarball,
        &id,
        &BundleOptions {
            version: BundleVersion::V0_1,
            breakage: Some(Breakage::WrongCheckpointSignature),
            ..BundleOptions::default()
        },
    );
    cases.push((
        "v0.1-wrong-checkpoint-signature",
        broken_v01,
        Some("invalid checkpoint signature"),
    ));

    let js_cases: Vec<JsCase> = cases
        .iter()
        .map(|(name, bundle, _)| npm_case(name, bundle.clone(), &id, &tarball))
        .collect();
    let verdicts = verify_with_sigstore_js(&sigstore.trusted_root_json(), &js_cases);
    for (name, _, expected_error) in &cases {
        let v = verdict(&verdicts, name);
        eprintln!(
            "{name}: verified={} error={:?} subject={:?}",
            v.verified, v.error, v.subject
        );
        match expected_error {
            None => {
                assert!(v.verified, "{name}: signatures are fine, got {:?}", v.error);
                let subject = v.subject.clone().unwrap();
                assert!(subject.is_err(), "{name}: npm's subject check must fail");
            }
            Some(code) => {
                assert!(!v.verified, "{name}: sigstore-js accepted a broken bundle");
                let error = v.error.clone().unwrap();
                assert!(error.contains(code), "{name}: expected {code}, got {error}");
            }
        }
    }
}

/// Our own verifier (`airlock_trust::sigstore`, wrapping the `sigstore-verify` crate) on the same
/// bundles: it must agree with sigstore-js on every good and every broken one.
mod airlock_trust_verifier {
    use airlock_trust::sigstore::{Artifact, SignerPolicy, TrustedRoots};

    use super::*;

    fn digest(tarball: &[u8]) -> [u8; 64] {
        Sha512::digest(tarball).into()
    }

    fn policy(who: &CiIdentity) -> SignerPolicy {
        SignerPolicy::Identity {
            identity: who.san_uri(),
            issuer: who.issuer.clone(),
        }
    }

    #[test]
    fn verifies_good_bundles() {
        let sigstore = TestSigstore::new();
        let roots =
            TrustedRoots::from_json("airlock-test", &sigstore.trusted_root_json().to_string())
                .unwrap();
        let tarball = tarball();
        let id = identity();
        for version in [
            BundleVersion::V0_1,
            BundleVersion::V0_2,
            BundleVersion::V0_3,
            BundleVersion::V0_3AltMediaType,
        ] {
            let bundle = sigstore.npm_provenance_bundle(
                NAME,
                VERSION,
                &tarball,
                &id,
                &BundleOptions::version(version),
            );
            let bytes = serde_json::to_vec(&bundle).unwrap();
            let verified = roots
                .verify(&bytes, Artifact::Sha512(digest(&tarball)), &policy(&id))
                .unwrap_or_else(|e| panic!("{version:?} rejected: {}", chain(&e)));
            verified
                .check_npm_subject(NAME, VERSION, &digest(&tarball))
                .unwrap();
            let cert = verified.certificate().unwrap();
            assert_eq!(cert.san, id.san_uri());
            assert_eq!(cert.source_repository_id.as_deref(), Some("123456"));
            assert_eq!(cert.source_repository_owner_id.as_deref(), Some("654321"));
            assert_eq!(
                cert.source_repository_uri.as_deref(),
                Some("https://github.com/octo-org/demo")
            );
            assert_eq!(
                cert.build_config_uri.as_deref(),
                Some(id.build_config_uri().as_str())
            );
            let entry = &verified.log_entries()[0];
            assert_eq!(entry.log_id, hex::encode(sigstore.rekor_log_id()));
        }
    }

    #[test]
    fn rejects_each_broken_bundle() {
        let sigstore = TestSigstore::new();
        let roots =
            TrustedRoots::from_json("airlock-test", &sigstore.trusted_root_json().to_string())
                .unwrap();
        let tarball = tarball();
        let id = identity();
        for breakage in [
            Breakage::OtherTarball,
            Breakage::BadSignature,
            Breakage::TamperedPayload,
            Breakage::ExpiredCertificate,
            Breakage::CertificateNotYetValid,
            Breakage::CorruptedInclusionProof,
            Breakage::WrongCheckpointSignature,
            Breakage::UntrustedCa,
            Breakage::UnknownCtLog,
            Breakage::WrongSignedEntryTimestamp,
        ] {
            for version in [BundleVersion::V0_1, BundleVersion::V0_3] {
                let options = BundleOptions {
                    version,
                    breakage: Some(breakage.clone()),
                    ..BundleOptions::default()
                };
                let bundle = sigstore.npm_provenance_bundle(NAME, VERSION, &tarball, &id, &options);
                let bytes = serde_json::to_vec(&bundle).unwrap();
                let result = roots.verify(&bytes, Artifact::Sha512(digest(&tarball)), &policy(&id));
                let Err(e) = result else {
                    panic!("{breakage:?} in {version:?} verified");
                };
                eprintln!("{breakage:?} {version:?}: {}", chain(&e));
            }
        }

        // Valid signatures over a statement for another package: the subject check refuses it.
        let bundle = sigstore.npm_provenance_bundle(
            NAME,
            VERSION,
            &tarball,
            &id,
            &BundleOptions::broken(Breakage::OtherPackageName("@octo-org/other".into())),
        );
        let verified = roots
            .verify(
                &serde_json::to_vec(&bundle).unwrap(),
                Artifact::Sha512(digest(&tarball)),
                &policy(&id),
            )
            .unwrap();
        assert!(
            verified
                .check_npm_subject(NAME, VERSION, &digest(&tarball))
                .is_err()
        );

        // Another identity: the SAN policy refuses another repository or workflow; a re-created
        // repository (same name, new numeric id) shows in the certificate's claims.
        let mut other_repo = id.clone();
        other_repo.repository = "mallory/demo".into();
        let mut other_workflow = id.clone();
        other_workflow.workflow_path = ".github/workflows/evil.yml".into();
        for who in [&other_repo, &other_workflow] {
            let bundle = sigstore.npm_provenance_bundle(
                NAME,
                VERSION,
                &tarball,
                who,
                &BundleOptions::default(),
            );
            let result = roots.verify(
                &serde_json::to_vec(&bundle).unwrap(),
                Artifact::Sha512(digest(&tarball)),
                &policy(&id),
            );
            assert!(
                result.is_err(),
                "{} accepted for {}",
                who.san_uri(),
                id.san_uri()
            );
        }
        let mut other_repo_id = id.clone();
        other_repo_id.repository_id = 999_999;
        let bundle = sigstore.npm_provenance_bundle(
            NAME,
            VERSION,
            &tarball,
            &other_repo_id,
            &BundleOptions::default(),
        );
        let verified = roots
            .verify(
                &serde_json::to_vec(&bundle).unwrap(),
                Artifact::Sha512(digest(&tarball)),
                &SignerPolicy::AnyCertificate,
            )
            .unwrap();
        assert_eq!(
            verified
                .certificate()
                .unwrap()
                .source_repository_id
                .as_deref(),
            Some("999999")
        );

        // A good bundle from another instance does not verify against ours.
        let stranger = TestSigstore::new();
        let bundle =
            stranger.npm_provenance_bundle(NAME, VERSION, &tarball, &id, &BundleOptions::default());
        let result = roots.verify(
            &serde_json::to_vec(&bundle).unwrap(),
            Artifact::Sha512(digest(&tarball)),
            &policy(&id),
        );
        assert!(result.is_err(), "a bundle from another instance verified");
    }

    fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            s.push_str(&format!(": {c}"));
            cur = c.source();
        }
        s
    }
}
