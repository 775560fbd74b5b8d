/// Why a Sigstore bundle, trusted root or key was refused.
///
/// The messages say what failed and, where there is one, what to do; the underlying
/// verifier's detail is the `source`, printed as `caused by:`.
#[derive(Debug, thiserror::Error)]
pub enum SigstoreError {
    #[error("could not read the trusted root {name}")]
    TrustedRootRead {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{name} is not a usable Sigstore trusted root (expected the trusted_root.json of a Sigstore instance)"
    )]
    TrustedRootInvalid {
        name: String,
        #[source]
        source: sigstore_verify::Error,
    },
    #[error(
        "the public key is not a PEM-encoded SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`)"
    )]
    PublicKeyInvalid {
        #[source]
        source: sigstore_verify::types::Error,
    },
    #[error("the artifact digest must be {expected} hex characters of {algorithm}")]
    DigestInvalid {
        algorithm: &'static str,
        expected: usize,
    },
    #[error(
        "the bundle is not a Sigstore bundle (JSON with a mediaType of application/vnd.dev.sigstore.bundle, version 0.1 to 0.3)"
    )]
    BundleMalformed {
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the bundle has no mediaType: expected a Sigstore bundle of version 0.1 to 0.3 (application/vnd.dev.sigstore.bundle...)"
    )]
    BundleMediaTypeMissing,
    #[error("the bundle is malformed or internally inconsistent")]
    BundleInvalid {
        #[source]
        source: sigstore_verify::Error,
    },
    #[error("the bundle uses a feature this verifier does not support")]
    BundleUnsupported {
        #[source]
        source: sigstore_verify::Error,
    },
    #[error(
        "the bundle was logged in a transparency log that no trusted root lists (log id {log_id}): \
         pass the trusted root of the Sigstore instance that signed it"
    )]
    UnknownLog { log_id: String },
    #[error(
        "the bundle was not signed by the expected identity: expected {expected}, found {found}"
    )]
    IdentityMismatch { expected: String, found: String },
    #[error(
        "the bundle's certificate was issued for another OIDC issuer: expected {expected}, found {found}"
    )]
    IssuerMismatch { expected: String, found: String },
    #[error(
        "the bundle is signed with a certificate, but a public key was given to verify it with"
    )]
    CertificateWhereKeyExpected,
    #[error("the bundle is signed with a public key, but a certificate identity was expected")]
    KeyWhereCertificateExpected,
    #[error(
        "the signing certificate is not trusted: it must chain to a Fulcio CA of the trusted root \
         and be valid when the signature was logged"
    )]
    Certificate {
        #[source]
        source: sigstore_verify::Error,
    },
    #[error(
        "the signing certificate has no valid signed certificate timestamp (SCT) from a trusted CT log"
    )]
    Sct {
        #[source]
        source: sigstore_verify::Error,
    },
    #[error(
        "the transparency log entry does not prove the signature was logged (inclusion proof, checkpoint or signed entry timestamp)"
    )]
    TransparencyLog {
        #[source]
        source: sigstore_verify::Error,
    },
    #[error("the transparency log entry does not describe this bundle's signature and artifact")]
    LogEntryMismatch {
        #[source]
        source: sigstore_verify::Error,
    },
    #[error(
        "the bundle carries no trusted signing time (a logged integrated time or an RFC 3161 timestamp)"
    )]
    Timestamp {
        #[source]
        source: sigstore_verify::Error,
    },
    #[error("the signature does not verify with the signer's key")]
    Signature {
        #[source]
        source: sigstore_verify::Error,
    },
    #[error("the bundle does not describe this artifact (its digest or statement subject differs)")]
    ArtifactMismatch {
        #[source]
        source: sigstore_verify::Error,
    },
    #[error("the artifact cannot be checked in the form given: pass the artifact's bytes instead")]
    ArtifactForm {
        #[source]
        source: sigstore_verify::Error,
    },
    #[error("the bundle was refused by the Sigstore verifier")]
    Rejected {
        #[source]
        source: sigstore_verify::Error,
    },
    #[error("the bundle signs no in-toto statement, so it cannot be npm provenance")]
    NotAStatement,
    #[error("the signed in-toto statement is not valid JSON of the in-toto Statement shape")]
    StatementMalformed {
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the provenance statement names {count} subjects; npm provenance names exactly one, `{expected}`"
    )]
    NpmSubjectCount { count: usize, expected: String },
    #[error("the provenance is for `{found}`, not for `{expected}`")]
    NpmSubjectName { expected: String, found: String },
    #[error(
        "the provenance for `{name}` was made for other bytes: its sha512 subject digest is not this tarball's"
    )]
    NpmSubjectDigest { name: String },
    #[error("a signing time in the bundle is out of range ({seconds} seconds since 1970)")]
    TimeOutOfRange { seconds: i64 },
}
