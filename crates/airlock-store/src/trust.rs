//! Trusted publishers: per-package trust configurations, the single-use record of accepted
//! CI ID tokens, and the short-lived credentials the exchange mints.

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;

use crate::{GateEventRecord, Person, StoreResult};

/// A trust configuration as created by a maintainer.
pub struct NewTrustConfig {
    pub id: String,
    pub package: String,
    /// `github`, `gitlab` or `circleci`.
    pub provider: String,
    pub issuer: String,
    /// The claims as npm shows them.
    pub claims: Value,
    pub permissions: Vec<String>,
    pub pinned_ids: Option<Value>,
    pub created_by: i64,
    /// Recorded in the same transaction (kind `trust-created`).
    pub event: GateEventRecord,
}

#[derive(Clone, Debug)]
pub struct TrustConfigRecord {
    pub id: String,
    pub package: String,
    pub provider: String,
    pub issuer: String,
    pub claims: Value,
    pub permissions: Vec<String>,
    pub pinned_ids: Option<Value>,
    pub created_by: Person,
    pub created_at: OffsetDateTime,
}

/// What one accepted exchange writes, all in one transaction.
pub struct NewPublisherToken {
    /// Hex sha256 of the credential.
    pub hash: String,
    pub config_id: String,
    pub package: String,
    pub permissions: Vec<String>,
    /// The CI run the credential was issued to (repository, workflow, ref, run id...).
    pub identity: Value,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The ID token's issuer and `jti`, and when it expires.
    pub token_issuer: String,
    pub token_jti: String,
    pub token_expires_at: OffsetDateTime,
    /// Ids to pin on the configuration if it has none yet (first use).
    pub pin_ids: Option<Value>,
}

/// How an exchange ended in the store.
#[derive(Debug, PartialEq, Eq)]
pub enum ExchangeOutcome {
    Issued,
    /// This ID token (issuer, jti) was exchanged before.
    Replayed,
    /// The configuration was revoked (or replaced) meanwhile.
    ConfigGone,
}

#[derive(Clone, Debug)]
pub struct PublisherTokenRecord {
    pub config_id: String,
    pub package: String,
    pub permissions: Vec<String>,
    pub identity: Value,
    pub provider: String,
    /// The maintainer who created the configuration: accountable for what it publishes.
    pub configured_by: i64,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[async_trait]
pub trait TrustedPublishers: Send + Sync {
    /// The package's live configuration(s) (at most one today).
    async fn trust_configs(&self, package: &str) -> StoreResult<Vec<TrustConfigRecord>>;
    /// `AlreadyExists` when the package already has a live configuration; `NotFound` when the
    /// package does not exist.
    async fn create_trust_config(&self, config: NewTrustConfig) -> StoreResult<()>;
    /// Revokes a configuration and every credential minted from it. `false` if no such live
    /// configuration exists for the package.
    async fn revoke_trust_config(
        &self,
        package: &str,
        id: &str,
        event: GateEventRecord,
    ) -> StoreResult<bool>;
    /// Records the ID token as used and stores the credential; pins ids on first use.
    async fn record_exchange(&self, token: NewPublisherToken) -> StoreResult<ExchangeOutcome>;
    /// A live credential by hash (not expired, its configuration not revoked).
    async fn publisher_token(
        &self,
        hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<PublisherTokenRecord>>;
}
