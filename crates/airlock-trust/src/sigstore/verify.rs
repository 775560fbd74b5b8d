use std::collections::BTreeMap;

use serde::Deserialize;
use sigstore_verify::types::bundle::VerificationMaterialContent;
use sigstore_verify::types::{
    ArtifactDigest, Bundle, DerPublicKey, DigestBytes, HashAlgorithm, MediaType, SignatureContent,
};
use sigstore_verify::{
    CertificateError, PublicKeyVerificationPolicy, TransparencyLogError, VerificationPolicy,
    VerificationResult,
};
use time::OffsetDateTime;

use super::SigstoreError;
use super::roots::{LoadedRoot, TrustedRoots};

const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// What was signed: the artifact's bytes, or a digest of them.
///
/// For a DSSE bundle the digest is compared with the in-toto statement's subjects (npm provenance
/// names the tarball's sha512); for a plain message signature it must be the sha256 the log
/// entry records.
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    Bytes(&'a [u8]),
    Sha256([u8; 32]),
    Sha512([u8; 64]),
}

impl Artifact<'_> {
    /// Parses `sha256:<64 hex>` or `sha512:<128 hex>`; `None` when `text` has neither prefix.
    pub fn parse_digest(text: &str) -> Option<Result<Artifact<'static>, SigstoreError>> {
        if let Some(hex) = text.strip_prefix("sha256:") {
            return Some(decode::<32>(hex, "sha256").map(Artifact::Sha256));
        }
        if let Some(hex) = text.strip_prefix("sha512:") {
            return Some(decode::<64>(hex, "sha512").map(Artifact::Sha512));
        }
        None
    }
}

fn digest_artifact(
    algorithm: HashAlgorithm,
    digest: &[u8],
) -> Result<sigstore_verify::types::Artifact<'static>, SigstoreError> {
    // The array types fix the lengths, so this cannot fail; map it anyway rather than panic.
    ArtifactDigest::new(algorithm, DigestBytes::new(digest.to_vec()))
        .map(sigstore_verify::types::Artifact::Digest)
        .map_err(|_| SigstoreError::DigestInvalid {
            algorithm: if algorithm == HashAlgorithm::Sha2256 {
                "sha256"
            } else {
                "sha512"
            },
            expected: digest.len() * 2,
        })
}

fn decode<const N: usize>(hex: &str, algorithm: &'static str) -> Result<[u8; N], SigstoreError> {
    let invalid = || SigstoreError::DigestInvalid {
        algorithm,
        expected: N * 2,
    };
    let bytes = hex::decode(hex).map_err(|_| invalid())?;
    bytes.try_into().map_err(|_| invalid())
}

/// A public key for bundles signed with a managed key instead of a Fulcio certificate.
#[derive(Debug, Clone)]
pub struct PublicKey(DerPublicKey);

impl PublicKey {
    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &str) -> Result<Self, SigstoreError> {
        DerPublicKey::from_pem(pem)
            .map(Self)
            .map_err(|source| SigstoreError::PublicKeyInvalid { source })
    }
}

/// Who must have signed the bundle.
#[derive(Debug, Clone)]
pub enum SignerPolicy {
    /// A Fulcio certificate whose SAN is exactly `identity`, issued for the OIDC `issuer`.
    Identity { identity: String, issuer: String },
    /// Any certificate a trusted Fulcio CA issued. The caller must then authorize the signer
    /// itself from [`VerifiedBundle::certificate`] (for example against a package's trusted
    /// publisher, whose workflow SAN carries a ref that is not known in advance).
    AnyCertificate,
    /// A managed key: the bundle carries no certificate.
    PublicKey(PublicKey),
}

/// The Fulcio certificate a bundle was signed with: its SAN and the claims Fulcio copied from
/// the CI's identity token (OIDs `1.3.6.1.4.1.57264.1.*`). Only a verifier makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateIdentity {
    /// The SAN: an email, or for CI a URI such as the workflow file `...@refs/tags/v1`.
    pub san: String,
    /// `.1.1`/`.1.8`: the OIDC issuer the certificate was requested with.
    pub issuer: Option<String>,
    /// `.1.12`, e.g. `https://github.com/owner/repo`.
    pub source_repository_uri: Option<String>,
    /// `.1.15`: the provider's immutable id of the repository (survives renames).
    pub source_repository_id: Option<String>,
    /// `.1.16`, e.g. `https://github.com/owner`.
    pub source_repository_owner_uri: Option<String>,
    /// `.1.17`: the provider's immutable id of the owner.
    pub source_repository_owner_id: Option<String>,
    /// `.1.14`, e.g. `refs/tags/v1.0.0`.
    pub source_repository_ref: Option<String>,
    /// `.1.13`: the commit built.
    pub source_repository_digest: Option<String>,
    /// `.1.18`: the build configuration (workflow file with ref) that ran.
    pub build_config_uri: Option<String>,
    /// `.1.9`: the build configuration that requested the signature (the SAN's source).
    pub build_signer_uri: Option<String>,
    /// `.1.11`: `github-hosted` or `self-hosted`.
    pub runner_environment: Option<String>,
    /// `.1.20`: the event that triggered the build, e.g. `push`.
    pub build_trigger: Option<String>,
    /// `.1.21`: the CI run, e.g. a GitHub Actions run URL.
    pub run_invocation_uri: Option<String>,
}

/// One subject of an in-toto statement: a name and its digests by algorithm (`sha512`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct StatementSubject {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "digest")]
    pub digests: BTreeMap<String, String>,
}

/// The in-toto statement a DSSE bundle signed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct InTotoStatement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    #[serde(rename = "subject")]
    pub subjects: Vec<StatementSubject>,
    #[serde(default)]
    pub predicate: serde_json::Value,
}

/// Where the bundle's transparency log entry sits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogEntry {
    /// Hex of the log's key id (SHA-256 of its public key).
    pub log_id: String,
    pub log_index: u64,
    /// `None` for Rekor v2 entries, which rely on RFC 3161 timestamps instead.
    pub integrated_time: Option<OffsetDateTime>,
}

/// How the bundle was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    Certificate(Box<CertificateIdentity>),
    PublicKey,
}

/// A bundle that verified, and what that established. Only [`TrustedRoots::verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    trusted_root: String,
    media_type: &'static str,
    signer: Signer,
    log_entries: Vec<LogEntry>,
    integrated_time: Option<OffsetDateTime>,
    signing_times: Vec<OffsetDateTime>,
    statement: Option<InTotoStatement>,
}

impl VerifiedBundle {
    /// The name of the trusted root the bundle verified against.
    pub fn trusted_root(&self) -> &str {
        &self.trusted_root
    }

    /// The bundle's media type, e.g. `application/vnd.dev.sigstore.bundle.v0.3+json`.
    pub fn media_type(&self) -> &'static str {
        self.media_type
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The certificate's identity and Fulcio claims; `None` for a managed-key bundle.
    pub fn certificate(&self) -> Option<&CertificateIdentity> {
        match &self.signer {
            Signer::Certificate(identity) => Some(identity),
            Signer::PublicKey => None,
        }
    }

    pub fn log_entries(&self) -> &[LogEntry] {
        &self.log_entries
    }

    /// The authenticated Rekor v1 integrated time (covered by the checkpoint or SET).
    pub fn integrated_time(&self) -> Option<OffsetDateTime> {
        self.integrated_time
    }

    /// Every authenticated signing time the certificate was checked at (integrated times and
    /// RFC 3161 timestamps).
    pub fn signing_times(&self) -> &[OffsetDateTime] {
        &self.signing_times
    }

    /// The signed in-toto statement, for DSSE bundles.
    pub fn statement(&self) -> Option<&InTotoStatement> {
        self.statement.as_ref()
    }

    /// Checks what npm checks before publishing provenance: the statement has exactly one
    /// subject, named `pkg:npm/<name>@<version>` (the scope's `@` escaped as `%40`), whose
    /// `sha512` is the tarball's.
    pub fn check_npm_subject(
        &self,
        name: &str,
        version: &str,
        tarball_sha512: &[u8; 64],
    ) -> Result<&InTotoStatement, SigstoreError> {
        let statement = self
            .statement
            .as_ref()
            .ok_or(SigstoreError::NotAStatement)?;
        let expected = npm_purl(name, version);
        let [subject] = statement.subjects.as_slice() else {
            return Err(SigstoreError::NpmSubjectCount {
                count: statement.subjects.len(),
                expected,
            });
        };
        if subject.name != expected {
            return Err(SigstoreError::NpmSubjectName {
                expected,
                found: subject.name.clone(),
            });
        }
        let matches = subject
            .digests
            .get("sha512")
            .is_some_and(|hex| hex.eq_ignore_ascii_case(&hex::encode(tarball_sha512)));
        if !matches {
            return Err(SigstoreError::NpmSubjectDigest { name: expected });
        }
        Ok(statement)
    }
}

/// The package URL npm puts in provenance subjects (npm-package-arg `toPurl`).
pub fn npm_purl(name: &str, version: &str) -> String {
    let name = match name.strip_prefix('@') {
        Some(rest) => format!("%40{rest}"),
        None => name.to_owned(),
    };
    format!("pkg:npm/{name}@{version}")
}

impl TrustedRoots {
    /// Verifies a Sigstore bundle (JSON, v0.1 to v0.3) over `artifact` for `policy`, offline:
    /// the certificate chains to a Fulcio CA of the root valid at the signing time and has a
    /// valid SCT; the log entry has a signed checkpoint with an inclusion proof (or a SET for
    /// old bundles) and describes this signature; the signature (DSSE or message) verifies; the
    /// artifact matches the signed digest or a statement subject.
    pub fn verify(
        &self,
        bundle_json: &[u8],
        artifact: Artifact<'_>,
        policy: &SignerPolicy,
    ) -> Result<VerifiedBundle, SigstoreError> {
        let bundle = parse_bundle(bundle_json)?;
        let signed_with_key = matches!(
            bundle.verification_material.content,
            VerificationMaterialContent::PublicKey(_)
        );
        match (signed_with_key, policy) {
            (true, SignerPolicy::PublicKey(_))
            | (false, SignerPolicy::Identity { .. } | SignerPolicy::AnyCertificate) => {}
            (true, _) => return Err(SigstoreError::KeyWhereCertificateExpected),
            (false, SignerPolicy::PublicKey(_)) => {
                return Err(SigstoreError::CertificateWhereKeyExpected);
            }
        }
        let candidates = self.candidates(&bundle)?;
        let mut first_error = None;
        for root in candidates {
            match verify_with(root, &bundle, artifact, policy) {
                Ok(verified) => return Ok(verified),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(SigstoreError::UnknownLog {
            log_id: String::from("(none)"),
        }))
    }

    /// The roots that list the bundle's transparency log; every root when it has no entry.
    fn candidates(&self, bundle: &Bundle) -> Result<Vec<&LoadedRoot>, SigstoreError> {
        let entries = &bundle.verification_material.tlog_entries;
        if entries.is_empty() {
            return Ok(self.roots().iter().collect());
        }
        let matching: Vec<&LoadedRoot> = self
            .roots()
            .iter()
            .filter(|root| {
                entries.iter().all(|entry| {
                    root.log_ids
                        .iter()
                        .any(|id| id.as_slice() == entry.log_id.key_id.as_bytes())
                })
            })
            .collect();
        if matching.is_empty() {
            let log_id = entries
                .iter()
                .map(|entry| hex::encode(entry.log_id.key_id.as_bytes()))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(SigstoreError::UnknownLog { log_id });
        }
        Ok(matching)
    }
}

fn parse_bundle(json: &[u8]) -> Result<Bundle, SigstoreError> {
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|source| SigstoreError::BundleMalformed { source })?;
    if value.get("mediaType").is_none() {
        return Err(SigstoreError::BundleMediaTypeMissing);
    }
    let mut bundle: Bundle = serde_json::from_value(value)
        .map_err(|source| SigstoreError::BundleMalformed { source })?;
    if bundle.media_type() == MediaType::Bundle0_1 {
        // A v0.1 bundle proves its logging with the SET; some carry an inclusion proof from
        // before Rekor returned checkpoints, which nothing could verify. Like sigstore-python
        // and sigstore-js, ignore such a proof and rely on the SET (still required below).
        for entry in &mut bundle.verification_material.tlog_entries {
            let unverifiable = entry
                .inclusion_proof
                .as_ref()
                .is_some_and(|proof| proof.checkpoint.is_empty());
            if unverifiable && entry.inclusion_promise.is_some() {
                entry.inclusion_proof = None;
            }
        }
    }
    Ok(bundle)
}

fn verify_with(
    root: &LoadedRoot,
    bundle: &Bundle,
    artifact: Artifact<'_>,
    policy: &SignerPolicy,
) -> Result<VerifiedBundle, SigstoreError> {
    let sig_artifact = match artifact {
        Artifact::Bytes(bytes) => sigstore_verify::types::Artifact::Blob(bytes),
        Artifact::Sha256(digest) => digest_artifact(HashAlgorithm::Sha2256, &digest)?,
        Artifact::Sha512(digest) => digest_artifact(HashAlgorithm::Sha2512, &digest)?,
    };
    let result = match policy {
        SignerPolicy::Identity { identity, issuer } => root.verifier.verify(
            sig_artifact,
            bundle,
            &VerificationPolicy::new(identity.as_str(), issuer.as_str()),
        ),
        SignerPolicy::AnyCertificate => {
            root.verifier
                .verify(sig_artifact, bundle, &VerificationPolicy::any_identity())
        }
        SignerPolicy::PublicKey(PublicKey(key)) => root.verifier.verify(
            sig_artifact,
            bundle,
            &PublicKeyVerificationPolicy::new(key.clone()),
        ),
    }
    .map_err(classify)?;
    describe(root, bundle, &result)
}

fn describe(
    root: &LoadedRoot,
    bundle: &Bundle,
    result: &VerificationResult,
) -> Result<VerifiedBundle, SigstoreError> {
    let signer = match result.certificate() {
        Some(cert) => {
            let claims = &cert.ci_claims;
            Signer::Certificate(Box::new(CertificateIdentity {
                san: cert
                    .identity
                    .as_ref()
                    .map(|san| san.as_str().to_owned())
                    .unwrap_or_default(),
                issuer: cert.issuer.clone(),
                source_repository_uri: claims.source_repository_uri.clone(),
                source_repository_id: claims.source_repository_identifier.clone(),
                source_repository_owner_uri: claims.source_repository_owner_uri.clone(),
                source_repository_owner_id: claims.source_repository_owner_identifier.clone(),
                source_repository_ref: claims.source_repository_ref.clone(),
                source_repository_digest: claims.source_repository_digest.clone(),
                build_config_uri: claims.build_config_uri.clone(),
                build_signer_uri: claims.build_signer_uri.clone(),
                runner_environment: claims.runner_environment.clone(),
                build_trigger: claims.build_trigger.clone(),
                run_invocation_uri: claims.run_invocation_uri.clone(),
            }))
        }
        None => Signer::PublicKey,
    };
    let log_entries = bundle
        .verification_material
        .tlog_entries
        .iter()
        .map(|entry| {
            Ok(LogEntry {
                log_id: hex::encode(entry.log_id.key_id.as_bytes()),
                log_index: entry.log_index.get(),
                integrated_time: entry
                    .integrated_time
                    .map(|t| to_time(t.as_second()))
                    .transpose()?,
            })
        })
        .collect::<Result<Vec<_>, SigstoreError>>()?;
    let statement = match &bundle.content {
        SignatureContent::DsseEnvelope(envelope)
            if envelope.payload_type == IN_TOTO_PAYLOAD_TYPE =>
        {
            Some(
                serde_json::from_slice::<InTotoStatement>(envelope.payload.as_bytes())
                    .map_err(|source| SigstoreError::StatementMalformed { source })?,
            )
        }
        _ => None,
    };
    Ok(VerifiedBundle {
        trusted_root: root.name.clone(),
        media_type: bundle.media_type().as_str(),
        signer,
        log_entries,
        integrated_time: result
            .integrated_time()
            .map(|t| to_time(t.as_second()))
            .transpose()?,
        signing_times: result
            .verified_timestamps()
            .iter()
            .map(|t| to_time(t.as_second()))
            .collect::<Result<_, _>>()?,
        statement,
    })
}

fn to_time(seconds: i64) -> Result<OffsetDateTime, SigstoreError> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| SigstoreError::TimeOutOfRange { seconds })
}

/// Sorts the verifier's refusal into what the user needs to fix.
fn classify(source: sigstore_verify::Error) -> SigstoreError {
    use sigstore_verify::Error as E;
    match &source {
        E::IdentityMismatch { expected, actual } => SigstoreError::IdentityMismatch {
            expected: expected.to_string(),
            found: actual
                .as_ref()
                .map_or_else(|| "no identity".to_owned(), |san| san.as_str().to_owned()),
        },
        E::IssuerMismatch { expected, actual } => SigstoreError::IssuerMismatch {
            expected: expected.clone(),
            found: actual.clone().unwrap_or_else(|| "no issuer".to_owned()),
        },
        E::SignatureInvalid(_) => SigstoreError::Signature { source },
        E::ArtifactMismatch(_) => SigstoreError::ArtifactMismatch { source },
        E::UnsupportedArtifact(_) => SigstoreError::ArtifactForm { source },
        E::Certificate(CertificateError::Sct(_)) => SigstoreError::Sct { source },
        E::Certificate(_) => SigstoreError::Certificate { source },
        E::TransparencyLog(TransparencyLogError::EntryMismatch(_)) => {
            SigstoreError::LogEntryMismatch { source }
        }
        E::TransparencyLog(_) => SigstoreError::TransparencyLog { source },
        E::Timestamp(_) => SigstoreError::Timestamp { source },
        E::InvalidBundle(_) | E::Bundle(_) => SigstoreError::BundleInvalid { source },
        E::UnsupportedBundle(_) => SigstoreError::BundleUnsupported { source },
        _ => SigstoreError::Rejected { source },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;

    fn provenance(subjects: serde_json::Value) -> VerifiedBundle {
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": subjects,
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {},
        });
        VerifiedBundle {
            trusted_root: "test".to_owned(),
            media_type: "application/vnd.dev.sigstore.bundle.v0.3+json",
            signer: Signer::PublicKey,
            log_entries: Vec::new(),
            integrated_time: None,
            signing_times: Vec::new(),
            statement: Some(serde_json::from_value(statement).unwrap()),
        }
    }

    const TARBALL_SHA512: [u8; 64] = [7; 64];

    fn subject(name: &str, sha512: &[u8]) -> serde_json::Value {
        serde_json::json!({"name": name, "digest": {"sha512": hex::encode(sha512)}})
    }

    #[test]
    fn npm_package_urls_escape_the_scope() {
        assert_eq!(npm_purl("left-pad", "1.3.0"), "pkg:npm/left-pad@1.3.0");
        assert_eq!(
            npm_purl("@scope/pkg", "1.0.0-rc.1"),
            "pkg:npm/%40scope/pkg@1.0.0-rc.1"
        );
    }

    #[test]
    fn the_npm_subject_must_be_this_package_version_and_tarball() {
        let good = provenance(serde_json::json!([subject(
            "pkg:npm/%40scope/pkg@1.0.0",
            &TARBALL_SHA512
        )]));
        let statement = good
            .check_npm_subject("@scope/pkg", "1.0.0", &TARBALL_SHA512)
            .unwrap();
        assert_eq!(statement.predicate_type, "https://slsa.dev/provenance/v1");

        let err = good
            .check_npm_subject("@scope/pkg", "1.0.1", &TARBALL_SHA512)
            .unwrap_err();
        assert!(
            matches!(&err, SigstoreError::NpmSubjectName { expected, found }
            if expected == "pkg:npm/%40scope/pkg@1.0.1" && found == "pkg:npm/%40scope/pkg@1.0.0")
        );
        let err = good
            .check_npm_subject("@scope/pkg", "1.0.0", &[8; 64])
            .unwrap_err();
        assert!(matches!(err, SigstoreError::NpmSubjectDigest { .. }));

        let two = provenance(serde_json::json!([
            subject("pkg:npm/%40scope/pkg@1.0.0", &TARBALL_SHA512),
            subject("pkg:npm/other@1.0.0", &TARBALL_SHA512),
        ]));
        let err = two
            .check_npm_subject("@scope/pkg", "1.0.0", &TARBALL_SHA512)
            .unwrap_err();
        assert!(matches!(
            err,
            SigstoreError::NpmSubjectCount { count: 2, .. }
        ));

        let sha256_only = provenance(serde_json::json!([
            {"name": "pkg:npm/pkg@1.0.0", "digest": {"sha256": hex::encode([7; 32])}}
        ]));
        let err = sha256_only
            .check_npm_subject("pkg", "1.0.0", &TARBALL_SHA512)
            .unwrap_err();
        assert!(matches!(err, SigstoreError::NpmSubjectDigest { .. }));

        let mut message = good.clone();
        message.statement = None;
        assert!(matches!(
            message.check_npm_subject("@scope/pkg", "1.0.0", &TARBALL_SHA512),
            Err(SigstoreError::NotAStatement)
        ));
    }
}
