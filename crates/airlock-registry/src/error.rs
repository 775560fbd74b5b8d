use airlock_npm::{NameError, PublishError, TagError, VersionError};
use airlock_store::{BlobError, StoreError};

/// Everything a use case can refuse or fail with. The server maps each variant to a status.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No credentials where some are needed.
    #[error("this registry needs you to log in first: run `npm login`")]
    Unauthenticated,
    /// A token that is malformed, unknown, revoked or expired.
    #[error(
        "your token is not valid (revoked, expired or mistyped): run `npm login` to get a new one"
    )]
    InvalidToken,
    #[error("incorrect username or password")]
    BadCredentials,
    #[error("this token may not be used from {0}: it is limited to its CIDR allow-list")]
    IpNotAllowed(std::net::IpAddr),
    #[error("this token is read-only: create a read-write token with `npm token create`")]
    ReadOnlyToken,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The operation needs a one-time password and none was sent.
    #[error(
        "this operation requires a one-time password from your authenticator: rerun with --otp=<code>"
    )]
    OtpRequired(crate::second_factor::OtpChallenge),
    #[error("that authenticator code is not valid: check the code (and your clock) and try again")]
    OtpInvalid,
    #[error("that authenticator code was already used: wait for the next code and try again")]
    OtpReplayed,
    #[error(
        "this operation needs two-factor authentication: enable it with `npm profile enable-2fa auth-and-writes`"
    )]
    SecondFactorNotEnabled,
    #[error("You cannot publish over the previously published versions: {0}.")]
    VersionExists(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("sign-up is disabled on this registry: ask an administrator to run `airlock user add`")]
    SignupDisabled,
    #[error(transparent)]
    InvalidName(#[from] NameError),
    #[error(transparent)]
    InvalidVersion(#[from] VersionError),
    #[error(transparent)]
    InvalidTag(#[from] TagError),
    /// The release gate refused the transition.
    #[error(transparent)]
    GateRefused(airlock_gate::GateRefusal),
    #[error(transparent)]
    InvalidPublish(#[from] PublishError),
    /// A webhook that cannot be created as asked.
    #[error(transparent)]
    InvalidWebhook(#[from] crate::webhooks::WebhookError),
    /// The OIDC token exchange refused the ID token.
    #[error(transparent)]
    ExchangeRefused(crate::trusted_publishing::ExchangeRefusal),
    #[error(transparent)]
    InvalidTrust(#[from] airlock_npm::TrustError),
    /// The publish's provenance did not verify, or breaks the package's provenance policy.
    #[error(transparent)]
    ProvenanceRefused(Box<crate::provenance::ProvenanceRefusal>),
    #[error("the registry's storage failed")]
    Store(#[from] StoreError),
    #[error("the registry's tarball storage failed")]
    Blob(#[from] BlobError),
    /// The signing keyring file could not be read or written.
    #[error("the registry's signing keyring failed")]
    Keyring(#[from] airlock_store::KeyringFileError),
    /// The keyring holds something unusable, or signing failed.
    #[error("the registry's signing keys cannot be used")]
    Signing(#[from] airlock_trust::SigningError),
}

impl From<crate::provenance::ProvenanceRefusal> for RegistryError {
    fn from(refusal: crate::provenance::ProvenanceRefusal) -> Self {
        RegistryError::ProvenanceRefused(Box::new(refusal))
    }
}

pub(crate) type Result<T, E = RegistryError> = std::result::Result<T, E>;
