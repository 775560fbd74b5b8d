#![doc = include_str!("../README.md")]

mod blobs;
mod keyring;
mod sqlite;
mod time_format;
mod trust;
mod webhooks;

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::OffsetDateTime;

pub use blobs::{BlobBody, BlobError, DEFAULT_BLOB_CACHE_BYTES, TarballBlobs};
pub use keyring::{KeyringFile, KeyringFileError, KeyringLock, KeyringStamp};
pub use sqlite::SqliteStore;
pub use time_format::{format_time, parse_time};
pub use trust::{
    ExchangeOutcome, NewPublisherToken, NewTrustConfig, PublisherTokenRecord, TrustConfigRecord,
    TrustedPublishers,
};
pub use webhooks::{
    DeliveryRecord, DueDelivery, NewWebhook, WebhookRecord, Webhooks, webhook_event_kinds,
    webhook_payload, webhook_targets,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The package changed since the caller read it (optimistic concurrency).
    #[error("the package changed while this request was being handled")]
    Conflict,
    #[error("version `{0}` already exists or existed")]
    VersionExists(String),
    #[error("`{0}` already exists")]
    AlreadyExists(String),
    #[error("`{0}` was not found")]
    NotFound(String),
    #[error("the database failed")]
    Database(#[source] sqlx::Error),
    #[error("the database holds data that does not parse: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

// ---------------------------------------------------------------------------------------------
// Accounts

#[derive(Clone)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub fullname: Option<String>,
    pub homepage: Option<String>,
    pub github: Option<String>,
    pub twitter: Option<String>,
    pub freenode: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("is_admin", &self.is_admin)
            .finish_non_exhaustive()
    }
}

pub struct NewUser {
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub now: OffsetDateTime,
}

/// Profile fields a user may change; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Default)]
pub struct ProfileChange {
    pub email: Option<String>,
    pub fullname: Option<Option<String>>,
    pub homepage: Option<Option<String>>,
    pub github: Option<Option<String>>,
    pub twitter: Option<Option<String>>,
    pub freenode: Option<Option<String>>,
    pub password_hash: Option<String>,
}

#[derive(Clone, Debug)]
pub struct TokenRecord {
    pub key: String,
    pub user_id: i64,
    pub display: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub readonly: bool,
    pub cidr_whitelist: Option<Vec<String>>,
    /// Package names and `@scope`s this token may write; `None` means every package of its user.
    pub packages: Option<Vec<String>>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

pub struct NewToken {
    pub record: TokenRecord,
    /// Hex SHA-256 of the token.
    pub hash: String,
}

pub enum WebLoginRedeem {
    /// No such login (never started, expired, or already redeemed).
    Unknown,
    /// The browser side has not finished yet.
    Pending,
    /// Finished: the token was stored for this user and the login is gone.
    Redeemed(Box<User>),
}

#[derive(Clone, Debug)]
pub struct WebLogin {
    pub login_id: String,
    pub create_account: bool,
    pub user_id: Option<i64>,
    pub expires_at: OffsetDateTime,
}

/// A user's TOTP enrolment.
#[derive(Clone)]
pub struct TfaRecord {
    /// Base32 secret.
    pub secret: String,
    pub mode: String,
    pub pending: bool,
    pub last_step: Option<u64>,
}

impl std::fmt::Debug for TfaRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TfaRecord")
            .field("mode", &self.mode)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

pub enum WebOtpRedeem {
    Unknown,
    Pending,
    /// Verified: the one-time token (its hash given by the caller) was stored.
    Redeemed,
}

#[async_trait]
pub trait Accounts: Send + Sync {
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>>;
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn update_profile(
        &self,
        user_id: i64,
        change: ProfileChange,
        now: OffsetDateTime,
    ) -> StoreResult<User>;

    async fn insert_token(&self, token: NewToken) -> StoreResult<()>;
    /// The token with this hash and its user, if it exists and has not expired at `now`.
    async fn token_by_hash(
        &self,
        hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<(TokenRecord, User)>>;
    async fn list_tokens(&self, user_id: i64) -> StoreResult<Vec<TokenRecord>>;
    async fn all_tokens(&self) -> StoreResult<Vec<TokenRecord>>;
    /// Deletes one token by its key; returns whether it existed.
    async fn delete_token(&self, key: &str) -> StoreResult<bool>;

    async fn create_web_login(
        &self,
        login_id: &str,
        done_hash: &str,
        create_account: bool,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()>;
    async fn web_login(&self, login_id: &str, now: OffsetDateTime)
    -> StoreResult<Option<WebLogin>>;
    async fn complete_web_login(
        &self,
        login_id: &str,
        user_id: i64,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// In one transaction: if the login behind `done_hash` is complete, store `token` for its
    /// user (the store sets `token.record.user_id`) and forget the login.
    async fn redeem_web_login(
        &self,
        done_hash: &str,
        token: NewToken,
        now: OffsetDateTime,
    ) -> StoreResult<WebLoginRedeem>;

    async fn tfa(&self, user_id: i64) -> StoreResult<Option<TfaRecord>>;
    /// Starts (or restarts) an enrolment: a new pending secret.
    async fn set_pending_tfa(
        &self,
        user_id: i64,
        secret: &str,
        mode: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Ends a pending enrolment and stores the recovery-code hashes (replacing old ones).
    async fn enable_tfa(
        &self,
        user_id: i64,
        recovery_hashes: &[String],
        accepted_step: u64,
    ) -> StoreResult<()>;
    async fn set_tfa_mode(&self, user_id: i64, mode: &str) -> StoreResult<()>;
    async fn disable_tfa(&self, user_id: i64) -> StoreResult<()>;
    /// Records `step` as used if it is newer than the last accepted one; false means replay.
    async fn consume_totp_step(&self, user_id: i64, step: u64) -> StoreResult<bool>;
    /// Deletes the recovery code if the user has it; false if not.
    async fn consume_recovery_code(&self, user_id: i64, hash: &str) -> StoreResult<bool>;

    async fn create_web_otp(
        &self,
        otp_id: &str,
        done_hash: &str,
        user_id: i64,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// The user a live, not yet verified web OTP belongs to.
    async fn web_otp_user(&self, otp_id: &str, now: OffsetDateTime) -> StoreResult<Option<i64>>;
    async fn verify_web_otp(&self, otp_id: &str, now: OffsetDateTime) -> StoreResult<bool>;
    async fn redeem_web_otp(
        &self,
        done_hash: &str,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<WebOtpRedeem>;
    /// Uses up a web-OTP token of this user; false if unknown, used or expired.
    async fn consume_web_otp_token(
        &self,
        user_id: i64,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
}

// ---------------------------------------------------------------------------------------------
// Packages

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub email: String,
}

#[derive(Clone, Debug)]
pub struct VersionRecord {
    pub version: String,
    /// The version object as published, without `dist`.
    pub manifest: serde_json::Map<String, serde_json::Value>,
    pub integrity: String,
    pub shasum: String,
    pub sha512_hex: String,
    pub size: u64,
    pub file_count: u64,
    pub unpacked_size: u64,
    pub publisher: Person,
    pub published_at: OffsetDateTime,
    pub deprecated: Option<String>,
    pub unpublished_at: Option<OffsetDateTime>,
    /// The registry's signature, `None` until the version is signed (see
    /// [`Packages::versions_not_signed_by`]).
    pub signature: Option<VersionSignature>,
    /// What the registry established about the version's verified provenance, if it has any.
    pub provenance: Option<ProvenanceSummary>,
}

/// A version's verified provenance, as listed with the version (the bundle itself is read
/// with [`Packages::provenance`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenanceSummary {
    /// The in-toto statement's `predicateType`, e.g. `https://slsa.dev/provenance/v1`.
    pub predicate_type: String,
    /// What the registry verified (repository, workflow, ids, log time), as it wrote it.
    pub summary: serde_json::Value,
}

/// A verified provenance bundle, stored with its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewProvenance {
    pub predicate_type: String,
    /// The bundle JSON exactly as the publisher sent it.
    pub bundle: String,
    pub summary: serde_json::Value,
}

/// A stored provenance bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenanceRecord {
    pub predicate_type: String,
    pub bundle: String,
    pub summary: serde_json::Value,
    pub created_at: OffsetDateTime,
}

/// The registry's signature of a version: one `dist.signatures` entry. `sig` is base64 DER
/// ECDSA over `name@version:integrity`, made by the key `keyid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionSignature {
    pub keyid: String,
    pub sig: String,
}

/// A live version as the signature check needs it.
#[derive(Clone, Debug)]
pub struct SignableVersion {
    pub package: String,
    pub version: String,
    pub integrity: String,
    /// `time[version]`: the key that signs must not have expired before it.
    pub published_at: OffsetDateTime,
    pub signature: Option<VersionSignature>,
}

impl VersionRecord {
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.unpublished_at.is_none()
    }
}

/// Everything stored about one package, read in one transaction.
#[derive(Clone, Debug)]
pub struct PackageState {
    pub id: i64,
    pub name: String,
    pub access: String,
    pub rev: i64,
    pub created_at: OffsetDateTime,
    pub modified_at: OffsetDateTime,
    pub unpublished_at: Option<OffsetDateTime>,
    /// Every version ever published, unpublished ones included, oldest first.
    pub versions: Vec<VersionRecord>,
    pub dist_tags: BTreeMap<String, String>,
    pub maintainers: Vec<Person>,
}

pub struct NewVersion {
    pub version: String,
    pub manifest: serde_json::Map<String, serde_json::Value>,
    pub integrity: String,
    pub shasum: String,
    pub sha512_hex: String,
    pub size: u64,
    pub file_count: u64,
    pub unpacked_size: u64,
    pub publisher_id: i64,
    /// A verified provenance bundle, stored in the same transaction as the version (or the
    /// stage: it is then served once the stage goes live).
    pub provenance: Option<NewProvenance>,
}

/// A publish, as decided by the caller.
pub struct PublishPlan {
    pub name: String,
    pub scope: Option<String>,
    /// `None`: the package must not exist yet. `Some(rev)`: it must still be at `rev`.
    pub expected_rev: Option<i64>,
    /// Make the publisher the owner of this (so far unowned) scope.
    pub claim_scope: Option<String>,
    /// Access level for a new package, or a change of it for an existing one.
    pub access: Option<String>,
    pub version: NewVersion,
    pub tag: String,
    pub description: Option<String>,
    pub keywords: Vec<String>,
    pub now: OffsetDateTime,
    /// The registry's signature of the version; `None` stores it unsigned, for
    /// [`Packages::versions_not_signed_by`] to find.
    pub signature: Option<VersionSignature>,
}

#[derive(Clone, Debug)]
pub enum PackageChange {
    SetDeprecations(BTreeMap<String, Option<String>>),
    /// Marks versions unpublished and replaces the dist-tags with `dist_tags`.
    UnpublishVersions {
        versions: Vec<String>,
        dist_tags: BTreeMap<String, String>,
    },
    UnpublishPackage,
    SetMaintainers(Vec<i64>),
    SetDistTag {
        tag: String,
        version: String,
    },
    RemoveDistTag(String),
    SetAccess(String),
}

impl PackageChange {
    fn kind(&self) -> &'static str {
        match self {
            PackageChange::SetDeprecations(_) => "deprecate",
            PackageChange::UnpublishVersions { .. } => "unpublish-versions",
            PackageChange::UnpublishPackage => "unpublish-package",
            PackageChange::SetMaintainers(_) => "set-maintainers",
            PackageChange::SetDistTag { .. } => "dist-tag-set",
            PackageChange::RemoveDistTag(_) => "dist-tag-remove",
            PackageChange::SetAccess(_) => "access",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ScopeOwner {
    pub user_id: i64,
    pub assigned_by_admin: bool,
}

#[async_trait]
pub trait Packages: Send + Sync {
    async fn package(&self, name: &str) -> StoreResult<Option<PackageState>>;
    /// Stores a new version, its dist-tag, and the package and scope claim when new, in one
    /// transaction. Returns the new revision.
    async fn publish(&self, plan: PublishPlan) -> StoreResult<i64>;
    /// Applies one change if the package is still at `expected_rev`; returns the new revision.
    async fn update_package(
        &self,
        name: &str,
        expected_rev: i64,
        change: PackageChange,
        actor_id: i64,
        now: OffsetDateTime,
    ) -> StoreResult<i64>;
    async fn scope_owners(&self, scope: &str) -> StoreResult<Vec<ScopeOwner>>;
    async fn assign_scope(&self, scope: &str, user_id: i64, now: OffsetDateTime)
    -> StoreResult<()>;
    /// Names of live packages whose name, description or keywords contain every term, and how
    /// many there are in all.
    async fn search(
        &self,
        terms: &[String],
        from: u64,
        size: u64,
    ) -> StoreResult<(Vec<String>, u64)>;
    /// Names of the packages a user maintains.
    async fn packages_of(&self, user_id: i64) -> StoreResult<Vec<String>>;
    /// Live versions that are unsigned or whose signature was made by a key other than
    /// `keyid`, for the registry to check against its keyring and re-sign where needed.
    async fn versions_not_signed_by(&self, keyid: &str) -> StoreResult<Vec<SignableVersion>>;
    /// Stores new signatures of existing versions, in one transaction; a row whose integrity
    /// is not the one signed is left alone. Not a change of the package: the revision stays.
    async fn set_version_signatures(
        &self,
        signatures: &[(SignableVersion, VersionSignature)],
    ) -> StoreResult<()>;
    /// The provenance bundle stored for `name@version` (published or staged), if any.
    async fn provenance(&self, name: &str, version: &str) -> StoreResult<Option<ProvenanceRecord>>;
}

// ---------------------------------------------------------------------------------------------
// The release gate

/// One row of the append-only gate event log.
#[derive(Clone, Debug)]
pub struct GateEventRecord {
    pub stage_id: Option<String>,
    /// The package name, `@scope` or `registry` the event is about.
    pub subject: String,
    pub kind: String,
    pub actor_id: Option<i64>,
    pub actor_name: Option<String>,
    pub at: OffsetDateTime,
    pub sha512_hex: Option<String>,
    pub factor: Option<String>,
    pub detail: serde_json::Value,
}

/// A staged release as stored; `state` is the gate's serialized state.
#[derive(Clone, Debug)]
pub struct StageRecord {
    pub id: String,
    pub package: String,
    pub version: String,
    pub tag: String,
    pub manifest: serde_json::Map<String, serde_json::Value>,
    pub integrity: String,
    pub shasum: String,
    pub sha512_hex: String,
    pub size: u64,
    pub file_count: u64,
    pub unpacked_size: u64,
    pub stager: Person,
    pub created_at: OffsetDateTime,
    pub state_kind: String,
    pub state: serde_json::Value,
    pub seq: i64,
    pub due_at: Option<OffsetDateTime>,
}

/// A new stage, as decided by the caller. Like [`PublishPlan`], it may create the package
/// (with the stager as maintainer) and claim its scope.
pub struct NewStage {
    pub id: String,
    pub name: String,
    pub scope: Option<String>,
    pub expected_rev: Option<i64>,
    pub claim_scope: Option<String>,
    pub access: Option<String>,
    pub version: NewVersion,
    pub tag: String,
    pub state_kind: String,
    pub state: serde_json::Value,
    pub due_at: Option<OffsetDateTime>,
    pub event: GateEventRecord,
    pub now: OffsetDateTime,
}

/// Making a stage's version live, in the same transaction as the state change.
pub struct Promotion {
    /// The version object as it goes live: the staged one, with `_npmUser` naming who staged
    /// and who approved it.
    pub manifest: serde_json::Map<String, serde_json::Value>,
    pub description: Option<String>,
    pub keywords: Vec<String>,
    /// The go-live moment: `time[version]`.
    pub at: OffsetDateTime,
    /// The registry's signature of the version going live.
    pub signature: VersionSignature,
}

pub struct StageUpdate {
    pub id: String,
    /// The `seq` the caller read; a concurrent change makes this a `Conflict`.
    pub expected_seq: i64,
    pub state_kind: String,
    pub state: serde_json::Value,
    pub due_at: Option<OffsetDateTime>,
    pub event: GateEventRecord,
    pub promote: Option<Promotion>,
}

/// Every backend of releases also keeps the webhook outbox: recording a gate event queues its
/// deliveries in the same transaction.
#[async_trait]
pub trait Releases: Webhooks + Send + Sync {
    async fn policy(&self, subject: &str) -> StoreResult<Option<serde_json::Value>>;
    /// Stores a policy patch (an empty object removes the layer) and its gate event.
    async fn set_policy(
        &self,
        subject: &str,
        patch: serde_json::Value,
        event: GateEventRecord,
    ) -> StoreResult<()>;
    async fn create_stage(&self, stage: NewStage) -> StoreResult<()>;
    async fn stage(&self, id: &str) -> StoreResult<Option<StageRecord>>;
    /// Stages of packages `user_id` maintains (optionally of one package), newest first.
    async fn stages_for_maintainer(
        &self,
        user_id: i64,
        package: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<StageRecord>, u64)>;
    async fn update_stage(&self, update: StageUpdate) -> StoreResult<()>;
    /// Stages whose `due_at` has come.
    async fn due_stages(&self, now: OffsetDateTime) -> StoreResult<Vec<StageRecord>>;
    async fn gate_events(&self, stage_id: &str) -> StoreResult<Vec<GateEventRecord>>;
}
