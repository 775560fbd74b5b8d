//! Webhooks: the owners of a package or a scope subscribe a URL to its release events
//! (staged, approved, pending, promoted, rejected, expired, policy changed).
//!
//! The request path only ever writes rows: the gate-event transaction queues the deliveries
//! (see `airlock_store::Releases`). A worker calls [`Registry::deliver_webhooks`], which POSTs
//! each due delivery signed with HMAC-SHA256 and retries failures with backoff, so a slow or
//! dead receiver never holds up a release. Delivery is at least once: receivers deduplicate by
//! `x-airlock-delivery`.

use std::time::Duration;

use airlock_npm::{NameError, PackageName};
use airlock_store::{
    DeliveryRecord, DueDelivery, NewWebhook, StoreError, WebhookRecord, format_time,
};
use airlock_trust::random_hex;
use futures::StreamExt;
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::Registry;
use crate::auth::{Principal, require_principal};
use crate::error::{RegistryError, Result};

/// Attempts before a delivery is given up.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 8;
/// Waits after the 1st, 2nd, … failed attempt; the last one repeats.
const RETRY_DELAYS: [Duration; 5] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(60 * 60),
];
/// How long one POST may take, connecting included.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries taken per round, and how many of them are in flight at once.
const DELIVERY_BATCH: u64 = 32;
const DELIVERY_CONCURRENCY: usize = 8;
/// Bounds the fan-out of one event.
const MAX_HOOKS_PER_TARGET: usize = 20;
const MAX_URL_LEN: usize = 2048;
const MIN_SECRET_LEN: usize = 16;
const MAX_SECRET_LEN: usize = 256;
/// Deliveries shown per hook when listing.
const RECENT_DELIVERIES: u64 = 10;

/// Why a webhook cannot be created as asked.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "a webhook needs a JSON body like {{\"target\": \"@acme\", \"url\": \"https://example.com/hook\"}} (optional: \"secret\")"
    )]
    InvalidBody(#[source] serde_json::Error),
    #[error(
        "`{target}` is not a package name or a scope: hooks are set on a package (`lib`, `@acme/lib`) or on a whole scope (`@acme`)"
    )]
    InvalidTarget {
        target: String,
        #[source]
        source: NameError,
    },
    #[error("`{url}` is not a valid URL: give an absolute https:// or http:// URL")]
    InvalidUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("webhook URLs must use https:// or http://, not `{0}:`")]
    UnsupportedScheme(String),
    #[error("the webhook URL is {0} characters long; use one of at most {MAX_URL_LEN}")]
    UrlTooLong(usize),
    #[error(
        "a webhook secret must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} printable characters without spaces: leave it out to have one generated"
    )]
    InvalidSecret,
}

/// A POST the worker wants sent.
#[derive(Clone, Debug)]
pub struct WebhookRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Why a POST got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSendError {
    #[error("the receiver did not answer within {0:?}")]
    Timeout(Duration),
    #[error("could not reach the receiver")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Sends webhook POSTs. Behind a trait so tests can capture (or stall) them.
pub trait WebhookClient: Send + Sync {
    /// POSTs `request`; resolves to the HTTP status the receiver answered.
    fn post(&self, request: WebhookRequest) -> BoxFuture<'_, Result<u16, WebhookSendError>>;
}

#[derive(Debug, thiserror::Error)]
#[error("could not set up the HTTP client for webhooks")]
pub struct WebhookClientSetupError(#[source] reqwest::Error);

/// The real client: reqwest over rustls, [`DELIVERY_TIMEOUT`], no redirects followed (a hook
/// answers where it was registered, or fails).
#[derive(Clone, Debug)]
pub struct HttpWebhookClient {
    client: reqwest::Client,
}

impl HttpWebhookClient {
    pub fn new() -> Result<Self, WebhookClientSetupError> {
        let client = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(DELIVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("airlock-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(WebhookClientSetupError)?;
        Ok(Self { client })
    }
}

impl WebhookClient for HttpWebhookClient {
    fn post(&self, request: WebhookRequest) -> BoxFuture<'_, Result<u16, WebhookSendError>> {
        let mut builder = self.client.post(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let sent = builder.body(request.body).send();
        Box::pin(async move {
            let response = sent.await.map_err(|e| {
                if e.is_timeout() {
                    WebhookSendError::Timeout(DELIVERY_TIMEOUT)
                } else {
                    // The URL may carry a credential; it stays out of stored errors and logs.
                    WebhookSendError::Unreachable(Box::new(e.without_url()))
                }
            })?;
            // The body is not read: only the status matters.
            Ok(response.status().as_u16())
        })
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, the `x-airlock-signature` header. The key is the
/// secret's UTF-8 bytes; receivers compute the same over the raw body they got and compare in
/// constant time.
#[must_use]
pub fn webhook_signature(secret: &str, body: &[u8]) -> String {
    #[expect(clippy::expect_used, reason = "HMAC-SHA256 takes keys of any length")]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// How long to wait after `attempts` failed attempts, or `None` to give up.
#[must_use]
pub fn retry_delay(attempts: u32) -> Option<Duration> {
    if attempts >= MAX_DELIVERY_ATTEMPTS {
        return None;
    }
    let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    Some(RETRY_DELAYS[index.min(RETRY_DELAYS.len() - 1)])
}

/// What one round of the worker did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryRound {
    pub delivered: usize,
    /// Failed, to be tried again later.
    pub retrying: usize,
    /// Failed for the last time.
    pub gave_up: usize,
}

impl DeliveryRound {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSpec {
    target: String,
    url: String,
    secret: Option<String>,
}

/// A package name or `@scope`, normalized.
fn parse_target(target: &str) -> Result<String, WebhookError> {
    let invalid = |source| WebhookError::InvalidTarget {
        target: target.to_owned(),
        source,
    };
    if let Some(scope) = target.strip_prefix('@').filter(|s| !s.contains('/')) {
        let probe = PackageName::parse(&format!("@{scope}/probe")).map_err(invalid)?;
        return Ok(format!("@{}", probe.scope().unwrap_or(scope)));
    }
    Ok(PackageName::parse(target).map_err(invalid)?.to_string())
}

fn parse_url(raw: &str) -> Result<String, WebhookError> {
    if raw.len() > MAX_URL_LEN {
        return Err(WebhookError::UrlTooLong(raw.len()));
    }
    let url = url::Url::parse(raw).map_err(|source| WebhookError::InvalidUrl {
        url: raw.to_owned(),
        source,
    })?;
    match url.scheme() {
        "https" | "http" => {}
        other => return Err(WebhookError::UnsupportedScheme(other.to_owned())),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(WebhookError::InvalidUrl {
            url: raw.to_owned(),
            source: url::ParseError::EmptyHost,
        });
    }
    Ok(url.to_string())
}

fn check_secret(secret: &str) -> Result<(), WebhookError> {
    let ok = (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len())
        && secret.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(WebhookError::InvalidSecret)
    }
}

fn hook_view(hook: &WebhookRecord) -> Value {
    json!({
        "id": hook.id,
        "target": hook.target,
        "url": hook.url,
        "createdBy": hook.created_by.name,
        "createdAt": format_time(hook.created_at),
    })
}

fn delivery_view(d: &DeliveryRecord) -> Value {
    json!({
        "id": d.id,
        "event": d.event_kind,
        "attempts": d.attempts,
        "createdAt": format_time(d.created_at),
        "deliveredAt": d.delivered_at.map(format_time),
        "nextAttemptAt": d.next_attempt_at.map(format_time),
        "lastError": d.last_error,
    })
}

/// `error: cause: cause`, for the stored `last_error`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

impl Registry {
    /// Granular tokens must list the package or its scope; a scope target needs the scope.
    fn require_token_covers_target(principal: &Principal, target: &str) -> Result<()> {
        if target.contains('/') || !target.starts_with('@') {
            return principal.require_token_covers(&PackageName::parse(target)?);
        }
        match principal.token.as_ref().and_then(|t| t.packages.as_ref()) {
            Some(allowed) if !allowed.iter().any(|a| a == target) => {
                Err(RegistryError::Forbidden(format!(
                    "this token is limited to {}; it may not manage the webhooks of `{target}`",
                    allowed.join(", ")
                )))
            }
            Some(_) | None => Ok(()),
        }
    }

    /// Who may manage the hooks of `target`: whoever owns it (see `owns_subject`), and admins.
    async fn owns_hook_target(&self, principal: &Principal, target: &str) -> Result<bool> {
        Ok(principal.user.is_admin || self.owns_subject(principal, target).await?)
    }

    /// `POST /-/airlock/v1/hooks`: subscribes a URL to the release events of a package or a
    /// scope. The answer carries the signing secret; it is never shown again.
    pub async fn create_webhook(
        &self,
        principal: Option<&Principal>,
        body: &[u8],
    ) -> Result<Value> {
        let principal = require_principal(principal)?;
        principal.require_write()?;
        let spec: WebhookSpec = serde_json::from_slice(body).map_err(WebhookError::InvalidBody)?;
        let target = parse_target(&spec.target)?;
        let url = parse_url(&spec.url)?;
        if let Some(secret) = &spec.secret {
            check_secret(secret)?;
        }
        Self::require_token_covers_target(principal, &target)?;
        if !self.owns_hook_target(principal, &target).await? {
            return Err(RegistryError::Forbidden(format!(
                "you may not manage the webhooks of `{target}`: packages by their maintainers, scopes by their owners"
            )));
        }
        if self.releases.webhooks_for(&target).await?.len() >= MAX_HOOKS_PER_TARGET {
            return Err(RegistryError::Conflict(format!(
                "`{target}` already has {MAX_HOOKS_PER_TARGET} webhooks: delete one first (DELETE /-/airlock/v1/hooks/<id>)"
            )));
        }
        self.require_write_factor(principal).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let secret = spec.secret.unwrap_or_else(|| random_hex(32));
        self.releases
            .create_webhook(NewWebhook {
                id: id.clone(),
                target: target.clone(),
                url,
                secret: secret.clone(),
                created_by: principal.user.id,
                created_at: self.now(),
            })
            .await?;
        tracing::info!(webhook.id = %id, webhook.target = %target, actor.name = %principal.user.name, "webhook created");
        let hook = self.releases.webhook(&id).await?.ok_or_else(|| {
            RegistryError::NotFound(format!(
                "webhook `{id}` vanished right after it was created"
            ))
        })?;
        let mut view = hook_view(&hook);
        view["secret"] = json!(secret);
        Ok(view)
    }

    /// `GET /-/airlock/v1/hooks?target=`: the hooks of a package or scope with their latest
    /// deliveries. Secrets are never shown.
    pub async fn list_webhooks(
        &self,
        principal: Option<&Principal>,
        target: &str,
    ) -> Result<Value> {
        let principal = require_principal(principal)?;
        let target = parse_target(target)?;
        if !self.owns_hook_target(principal, &target).await? {
            return Err(RegistryError::Forbidden(format!(
                "only the owners of `{target}` may see its webhooks"
            )));
        }
        let mut hooks = Vec::new();
        for hook in self.releases.webhooks_for(&target).await? {
            let deliveries = self
                .releases
                .deliveries(&hook.id, RECENT_DELIVERIES)
                .await?;
            let mut view = hook_view(&hook);
            view["deliveries"] = deliveries.iter().map(delivery_view).collect();
            hooks.push(view);
        }
        Ok(json!({ "target": target, "hooks": hooks }))
    }

    /// `DELETE /-/airlock/v1/hooks/{id}`: the hook and its pending deliveries go.
    pub async fn delete_webhook(&self, principal: Option<&Principal>, id: &str) -> Result<()> {
        let principal = require_principal(principal)?;
        principal.require_write()?;
        let missing =
            || RegistryError::NotFound(format!("there is no webhook `{id}` you can manage"));
        let hook = self.releases.webhook(id).await?.ok_or_else(missing)?;
        Self::require_token_covers_target(principal, &hook.target)?;
        // A package that no longer exists leaves its hooks to admins.
        let owner = match self.owns_hook_target(principal, &hook.target).await {
            Ok(owner) => owner,
            Err(RegistryError::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        if !owner {
            return Err(missing());
        }
        self.require_write_factor(principal).await?;
        self.releases.delete_webhook(id).await?;
        tracing::info!(webhook.id = %id, webhook.target = %hook.target, actor.name = %principal.user.name, "webhook deleted");
        Ok(())
    }

    /// One round of the delivery worker: POSTs the deliveries that are due (a few at a time)
    /// and records each outcome as it arrives. Never called on a request's path.
    pub async fn deliver_webhooks(&self, client: &dyn WebhookClient) -> Result<DeliveryRound> {
        let due = self
            .releases
            .due_deliveries(self.now(), DELIVERY_BATCH)
            .await?;
        let mut round = DeliveryRound::default();
        let mut sent = futures::stream::iter(due)
            .map(|delivery| async move {
                let outcome = client.post(signed_request(&delivery)).await;
                (delivery, outcome)
            })
            .buffer_unordered(DELIVERY_CONCURRENCY);
        while let Some((delivery, outcome)) = sent.next().await {
            let now = self.now();
            let failure = match outcome {
                Ok(status) if (200..300).contains(&status) => None,
                Ok(status) => Some(format!("the receiver answered HTTP {status}")),
                Err(e) => Some(error_chain(&e)),
            };
            let recorded = match &failure {
                None => {
                    round.delivered += 1;
                    tracing::debug!(delivery.id = %delivery.id, webhook.id = %delivery.webhook_id, event = %delivery.event_kind, "webhook delivered");
                    self.releases.mark_delivered(&delivery.id, now).await
                }
                Some(error) => {
                    let attempts = delivery.attempts.saturating_add(1);
                    let next = retry_delay(attempts).map(|wait| now + wait);
                    if next.is_some() {
                        round.retrying += 1;
                        tracing::warn!(delivery.id = %delivery.id, webhook.id = %delivery.webhook_id, attempts, error = %error, "webhook delivery failed; will retry");
                    } else {
                        round.gave_up += 1;
                        tracing::warn!(delivery.id = %delivery.id, webhook.id = %delivery.webhook_id, attempts, error = %error, "webhook delivery failed for the last time");
                    }
                    self.releases.mark_failed(&delivery.id, error, next).await
                }
            };
            match recorded {
                Ok(()) => {}
                // The hook was deleted while its delivery was in flight.
                Err(StoreError::NotFound(_)) => {}
                // It stays due and is sent again: at least once.
                Err(e) => {
                    tracing::error!(delivery.id = %delivery.id, error = &e as &dyn std::error::Error, "could not record a webhook delivery");
                }
            }
        }
        Ok(round)
    }
}

fn signed_request(delivery: &DueDelivery) -> WebhookRequest {
    let body = delivery.payload.as_bytes().to_vec();
    WebhookRequest {
        url: delivery.url.clone(),
        headers: vec![
            ("content-type", "application/json".to_owned()),
            ("x-airlock-event", delivery.event_kind.clone()),
            ("x-airlock-delivery", delivery.id.clone()),
            (
                "x-airlock-signature",
                webhook_signature(&delivery.secret, &body),
            ),
        ],
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_gives_up() {
        let delays: Vec<Option<u64>> = (1..=MAX_DELIVERY_ATTEMPTS)
            .map(|n| retry_delay(n).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            delays,
            [
                Some(5),
                Some(30),
                Some(120),
                Some(600),
                Some(3600),
                Some(3600),
                Some(3600),
                None
            ]
        );
    }

    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            webhook_signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn targets_and_urls_are_checked() {
        assert_eq!(parse_target("@acme").unwrap(), "@acme");
        assert_eq!(parse_target("@acme/lib").unwrap(), "@acme/lib");
        assert_eq!(parse_target("lib").unwrap(), "lib");
        for bad in ["", "@", "@ac me", "registry/x", "@acme/", "Upper"] {
            assert!(parse_target(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(
            parse_url("https://hooks.example/airlock?x=1").unwrap(),
            "https://hooks.example/airlock?x=1"
        );
        assert_eq!(
            parse_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080/"
        );
        assert!(matches!(
            parse_url("ftp://hooks.example/"),
            Err(WebhookError::UnsupportedScheme(s)) if s == "ftp"
        ));
        assert!(matches!(
            parse_url("hooks.example/x"),
            Err(WebhookError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_url(&format!("https://h.example/{}", "a".repeat(MAX_URL_LEN))),
            Err(WebhookError::UrlTooLong(_))
        ));
        assert!(check_secret("short").is_err());
        assert!(check_secret("with spaces in the secret").is_err());
        assert!(check_secret(&random_hex(32)).is_ok());
    }
}
