#![doc = include_str!("../README.md")]

mod accounts;
mod auth;
mod cache;
mod cold;
mod error;
mod gate;
mod locks;
mod manage;
mod packument;
mod provenance;
mod publish;
mod read;
pub use publish::PublishOutcome;
mod search;
mod second_factor;
mod signing;
mod trusted_publishing;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use airlock_npm::TarballLimits;
use airlock_store::{Accounts, Packages, Releases, TarballBlobs};
use time::OffsetDateTime;

pub use accounts::{
    CreateTokenRequest, CreatedToken, DoneStatus, LoginOutcome, NewAccount, ProfileUpdate,
    TokenList, TokenListEntry, WebLoginStart,
};
pub use auth::{Credentials, Principal};
pub use cache::{DEFAULT_CACHE_BYTES, Rendered};
pub use error::RegistryError;
pub use gate::{REGISTRY_SUBJECT, StageView};
pub use packument::{Representation, format_rev};
pub use provenance::ProvenanceRefusal;
pub use read::{Packument, Tarball, TarballStream};
pub use search::{SearchQuery, SearchResult};
pub use second_factor::OtpChallenge;
pub use signing::{SigningKeys, read_keyring, rotate_keyring};
pub use trusted_publishing::{
    CIRCLECI_ISSUER_PREFIX, CustomIssuer, ExchangeRefusal, GITHUB_ISSUER, GITLAB_ISSUER,
    HttpJwksFetcher, JwksFetcher, OidcSettings, PublisherGrant, TrustedPublishing,
};
pub use webhooks::{
    DELIVERY_TIMEOUT, DeliveryRound, HttpWebhookClient, MAX_DELIVERY_ATTEMPTS, WebhookClient,
    WebhookClientSetupError, WebhookError, WebhookRequest, WebhookSendError, retry_delay,
    webhook_signature,
};

/// Settings the use cases need, validated by the binary before it builds a [`Registry`].
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Anyone may create an account through `npm adduser`.
    pub open_signup: bool,
    /// Every read needs a valid token (a private company registry).
    pub read_requires_auth: bool,
    pub tarball_limits: TarballLimits,
    /// How long a started `npm login` may take in the browser.
    pub web_login_ttl: Duration,
    /// A retried publish (npm retries PUTs on 5xx) of the identical tarball by the same user
    /// within this window answers success instead of "cannot publish over".
    pub publish_retry_window: Duration,
    /// Memory for what hot reads keep (rendered packuments, tarball digests), in bytes; past
    /// it the least recently read packages are dropped and loaded again when next asked for.
    pub cache_bytes: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            open_signup: false,
            read_requires_auth: false,
            tarball_limits: TarballLimits::default(),
            web_login_ttl: Duration::from_secs(10 * 60),
            // npm's worst case: 3 attempts with a 5 minute fetch timeout and up to 60 s between.
            publish_retry_window: Duration::from_secs(30 * 60),
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// Where "now" comes from, so tests can move time.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The registry's use cases over its stores.
#[derive(Clone)]
pub struct Registry {
    accounts: Arc<dyn Accounts>,
    packages: Arc<dyn Packages>,
    releases: Arc<dyn Releases>,
    blobs: TarballBlobs,
    config: Arc<RegistryConfig>,
    clock: Arc<dyn Clock>,
    cache: Arc<cache::PackumentCache>,
    locks: Arc<locks::PackageLocks>,
    /// One cache load or render per package at a time.
    loading: Arc<locks::PackageLocks>,
    /// Where whole package states are loaded and packuments rendered.
    cold: Arc<cold::ColdPath>,
    keys: Arc<SigningKeys>,
    /// The keyring generation the last signature sweep ran with.
    keys_swept: Arc<std::sync::atomic::AtomicU64>,
    /// `None` until [`Registry::with_trusted_publishing`]: trust routes then answer 404.
    trusted_publishing: Option<Arc<TrustedPublishing>>,
    /// The Sigstore instances provenance bundles may come from.
    provenance_roots: Arc<airlock_trust::sigstore::TrustedRoots>,
}

impl Registry {
    pub fn new(
        accounts: Arc<dyn Accounts>,
        packages: Arc<dyn Packages>,
        releases: Arc<dyn Releases>,
        blobs: TarballBlobs,
        config: RegistryConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        // A registry over a data directory gets its keyring file with `with_signing_keys`.
        #[expect(
            clippy::expect_used,
            reason = "no CSPRNG means no safe way to continue"
        )]
        let keys = SigningKeys::ephemeral(clock.now()).expect("could not generate a signing key");
        // The embedded root is a constant the trust crate's tests parse.
        #[expect(
            clippy::expect_used,
            reason = "the embedded public-good root always parses"
        )]
        let provenance_roots =
            provenance::default_roots().expect("the embedded Sigstore root is valid");
        Self {
            accounts,
            packages,
            releases,
            blobs,
            cache: Arc::new(cache::PackumentCache::new(config.cache_bytes)),
            config: Arc::new(config),
            clock,
            locks: Arc::default(),
            loading: Arc::default(),
            cold: Arc::default(),
            keys: Arc::new(keys),
            keys_swept: Arc::default(),
            trusted_publishing: None,
            provenance_roots: Arc::new(provenance_roots),
        }
    }

    /// Replaces the trusted roots provenance bundles are verified against (the public-good
    /// root by default): the binary passes the public-good root plus the configured ones.
    #[must_use]
    pub fn with_provenance_roots(mut self, roots: airlock_trust::sigstore::TrustedRoots) -> Self {
        self.provenance_roots = Arc::new(roots);
        self
    }

    /// Enables `npm trust` and the OIDC token exchange.
    #[must_use]
    pub fn with_trusted_publishing(mut self, trusted: TrustedPublishing) -> Self {
        self.trusted_publishing = Some(Arc::new(trusted));
        self
    }

    #[must_use]
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}
