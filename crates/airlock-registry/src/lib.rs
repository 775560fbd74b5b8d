#![doc = include_str!("../README.md")]

mod accounts;
mod auth;
mod cache;
mod error;
mod gate;
mod locks;
mod manage;
mod packument;
mod publish;
mod read;
pub use publish::PublishOutcome;
mod search;
mod second_factor;
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
pub use cache::Rendered;
pub use error::RegistryError;
pub use gate::{REGISTRY_SUBJECT, StageView};
pub use packument::{Representation, format_rev};
pub use read::{Packument, TarballStream};
pub use search::{SearchQuery, SearchResult};
pub use second_factor::OtpChallenge;
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
        Self {
            accounts,
            packages,
            releases,
            blobs,
            config: Arc::new(config),
            clock,
            cache: Arc::default(),
            locks: Arc::default(),
        }
    }

    #[must_use]
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}
