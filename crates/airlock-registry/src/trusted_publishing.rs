//! Trusted publishing: `npm trust` configurations, and the exchange of a CI provider's OIDC ID
//! token for a short-lived credential that may publish (or only stage) one package.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_npm::{PackageName, Permission, Provider, TrustRule, parse_trust_request, ref_matches};
use airlock_store::{
    ExchangeOutcome, GateEventRecord, NewPublisherToken, NewTrustConfig, StoreError,
    TrustConfigRecord, TrustedPublishers,
};
use airlock_trust::ApiToken;
use airlock_trust::oidc::{
    IdTokenExpectations, Jwks, OidcError, UnverifiedIdToken, VerifiedIdToken, verify_id_token,
};
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use crate::Registry;
use crate::auth::{Principal, require_principal};
use crate::error::{RegistryError, Result};

/// The public issuers of the three providers npm knows.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
pub const GITLAB_ISSUER: &str = "https://gitlab.com";
/// CircleCI issues per organization: `https://oidc.circleci.com/org/<org-id>`.
pub const CIRCLECI_ISSUER_PREFIX: &str = "https://oidc.circleci.com/org/";

/// Which issuers the registry trusts, and how credentials are minted. Validated by the binary.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    /// The issuer `npm trust github` configurations accept (GitHub Enterprise Server, or a
    /// test issuer, replaces the public one).
    pub github_issuer: String,
    pub gitlab_issuer: String,
    pub circleci_issuer_prefix: String,
    /// More issuers (self-hosted GitLab, Gitea/Forgejo, Buildkite...), each speaking one
    /// provider's claims. A configuration names one with its `issuer` claim.
    pub custom_issuers: Vec<CustomIssuer>,
    /// The `aud` ID tokens must carry; `None`: `npm:<registry host>` as npm requests it.
    pub audience: Option<String>,
    pub credential_ttl: Duration,
    /// Clock difference allowed for `exp`, `nbf`, `iat`.
    pub leeway: Duration,
}

impl Default for OidcSettings {
    fn default() -> Self {
        Self {
            github_issuer: GITHUB_ISSUER.into(),
            gitlab_issuer: GITLAB_ISSUER.into(),
            circleci_issuer_prefix: CIRCLECI_ISSUER_PREFIX.into(),
            custom_issuers: Vec::new(),
            audience: None,
            credential_ttl: Duration::from_secs(15 * 60),
            leeway: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomIssuer {
    pub url: String,
    pub provider: Provider,
}

/// Fetches an issuer's key set (discovery, then `jwks_uri`). Network I/O lives behind this.
pub trait JwksFetcher: Send + Sync {
    /// The JWKS document, or why it could not be fetched.
    fn fetch_jwks<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, std::result::Result<Vec<u8>, String>>;
}

/// [`JwksFetcher`] over HTTP(S), with a timeout and no redirects.
pub struct HttpJwksFetcher {
    client: reqwest::Client,
}

impl HttpJwksFetcher {
    pub fn new(timeout: Duration) -> std::result::Result<Self, reqwest::Error> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        })
    }

    async fn get(&self, url: &str) -> std::result::Result<Vec<u8>, String> {
        let response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url} failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url} answered {}", response.status()));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("GET {url} failed: {e}"))?;
        Ok(bytes.to_vec())
    }
}

impl JwksFetcher for HttpJwksFetcher {
    fn fetch_jwks<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, std::result::Result<Vec<u8>, String>> {
        Box::pin(self.discover_and_fetch(issuer))
    }
}

impl HttpJwksFetcher {
    async fn discover_and_fetch(&self, issuer: &str) -> std::result::Result<Vec<u8>, String> {
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery: Value = serde_json::from_slice(&self.get(&discovery_url).await?)
            .map_err(|_| format!("{discovery_url} is not JSON"))?;
        if discovery.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(format!(
                "{discovery_url} names another issuer ({})",
                discovery.get("issuer").unwrap_or(&Value::Null)
            ));
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{discovery_url} has no jwks_uri"))?;
        self.get(jwks_uri).await
    }
}

/// Key sets are kept this long before a refetch.
const JWKS_MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// An unknown `kid` refetches at most this often per issuer (keys rotate rarely; a flood of
/// forged kids must not turn into a flood of requests to the issuer).
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(10);

#[derive(Default)]
struct JwksCache {
    sets: Mutex<HashMap<String, (Arc<Jwks>, Instant)>>,
}

impl JwksCache {
    fn get(&self, issuer: &str) -> Option<(Arc<Jwks>, Instant)> {
        self.sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(issuer)
            .cloned()
    }

    fn put(&self, issuer: &str, jwks: Arc<Jwks>) {
        self.sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(issuer.to_owned(), (jwks, Instant::now()));
    }
}

/// What the registry needs for trusted publishing.
pub struct TrustedPublishing {
    store: Arc<dyn TrustedPublishers>,
    settings: OidcSettings,
    fetcher: Arc<dyn JwksFetcher>,
    cache: JwksCache,
}

impl TrustedPublishing {
    pub fn new(
        store: Arc<dyn TrustedPublishers>,
        settings: OidcSettings,
        fetcher: Arc<dyn JwksFetcher>,
    ) -> Self {
        Self {
            store,
            settings,
            fetcher,
            cache: JwksCache::default(),
        }
    }

    pub(crate) fn store(&self) -> &dyn TrustedPublishers {
        self.store.as_ref()
    }

    /// The key set of `issuer` that knows `kid`: cached, refreshed once when the key is
    /// unknown (key rotation).
    async fn jwks_for(
        &self,
        issuer: &str,
        kid: &str,
    ) -> std::result::Result<Arc<Jwks>, ExchangeRefusal> {
        let cached = self.cache.get(issuer);
        if let Some((jwks, at)) = &cached
            && (jwks.contains(kid) || at.elapsed() < JWKS_MIN_REFRESH)
            && at.elapsed() < JWKS_MAX_AGE
        {
            return Ok(jwks.clone());
        }
        match self.fetcher.fetch_jwks(issuer).await {
            Ok(bytes) => {
                let jwks = Arc::new(Jwks::parse(&bytes).map_err(|e| {
                    ExchangeRefusal::IssuerUnavailable {
                        issuer: issuer.to_owned(),
                        reason: e.to_string(),
                    }
                })?);
                self.cache.put(issuer, jwks.clone());
                Ok(jwks)
            }
            // A stale set still verifies tokens signed with keys it knows.
            Err(_) if cached.as_ref().is_some_and(|(j, _)| j.contains(kid)) => {
                Ok(cached.map(|(j, _)| j).unwrap_or_default())
            }
            Err(reason) => Err(ExchangeRefusal::IssuerUnavailable {
                issuer: issuer.to_owned(),
                reason,
            }),
        }
    }

    /// The issuer a new configuration binds to.
    fn issuer_for(&self, rule: &TrustRule, named: Option<&str>) -> Result<String> {
        let provider = rule.provider();
        if let Some(url) = named {
            let url = url.trim_end_matches('/');
            return self
                .settings
                .custom_issuers
                .iter()
                .find(|c| c.url.trim_end_matches('/') == url)
                .map(|c| {
                    if c.provider == provider {
                        Ok(c.url.clone())
                    } else {
                        Err(RegistryError::BadRequest(format!(
                            "issuer `{url}` speaks {} claims, not {}",
                            c.provider.wire_name(),
                            provider.wire_name()
                        )))
                    }
                })
                .unwrap_or_else(|| {
                    Err(RegistryError::BadRequest(format!(
                        "issuer `{url}` is not configured on this registry: an administrator must add it under [[oidc.issuers]]"
                    )))
                });
        }
        Ok(match rule {
            TrustRule::Github { .. } => self.settings.github_issuer.clone(),
            TrustRule::Gitlab { .. } => self.settings.gitlab_issuer.clone(),
            TrustRule::Circleci { org_id, .. } => {
                format!("{}{org_id}", self.settings.circleci_issuer_prefix)
            }
        })
    }

    /// Whether tokens from `issuer` are still accepted (an administrator may have removed a
    /// custom issuer since the configuration was made).
    fn issuer_still_trusted(&self, issuer: &str, provider: Provider) -> bool {
        let builtin = match provider {
            Provider::Github => issuer == self.settings.github_issuer,
            Provider::Gitlab => issuer == self.settings.gitlab_issuer,
            Provider::Circleci => issuer.starts_with(&self.settings.circleci_issuer_prefix),
        };
        builtin
            || self
                .settings
                .custom_issuers
                .iter()
                .any(|c| c.url == issuer && c.provider == provider)
    }
}

/// Why an exchange was refused. npm logs `message` from the body, so each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeRefusal {
    #[error("no ID token: send the CI provider's OIDC ID token as `Authorization: Bearer <token>`")]
    NoIdToken,
    #[error(
        "no trusted publisher is configured for `{0}`: a maintainer can add one with `npm trust github {0} --repository OWNER/REPO --file WORKFLOW.yml`"
    )]
    NotConfigured(String),
    #[error(
        "the ID token was issued by `{actual}`, but the trusted publisher of `{package}` accepts tokens from `{expected}` only"
    )]
    WrongIssuer {
        package: String,
        expected: String,
        actual: String,
    },
    #[error(
        "tokens from `{0}` are no longer accepted by this registry: an administrator removed the issuer from its config"
    )]
    IssuerRemoved(String),
    #[error("the ID token was refused: {0}")]
    InvalidIdToken(#[source] OidcError),
    #[error("the signing keys of `{issuer}` could not be fetched ({reason}): try again later")]
    IssuerUnavailable { issuer: String, reason: String },
    #[error("this CI run is not the trusted publisher of `{package}`: {mismatch}")]
    NotTrusted { package: String, mismatch: String },
    #[error(
        "the ID token has no `jti` claim, so it could be replayed: this registry accepts only single-use ID tokens"
    )]
    NoTokenId,
    #[error(
        "this ID token was already exchanged once: request a fresh ID token from the CI provider"
    )]
    Replayed,
}

/// A trusted-publisher credential's authority: one package, some permissions.
#[derive(Clone, Debug)]
pub struct PublisherGrant {
    pub config_id: String,
    pub package: String,
    pub permissions: Vec<Permission>,
    pub provider: Provider,
    /// The CI run it was issued to.
    pub identity: Value,
}

impl PublisherGrant {
    /// Is this credential for `name`?
    pub(crate) fn require_package(&self, name: &PackageName) -> Result<()> {
        if self.package == name.as_str() {
            Ok(())
        } else {
            Err(RegistryError::Forbidden(format!(
                "this trusted-publishing credential was issued for `{}`; it cannot touch `{name}`",
                self.package
            )))
        }
    }

    /// May this credential do `permission` on `name`?
    pub(crate) fn require(&self, name: &PackageName, permission: Permission) -> Result<()> {
        self.require_package(name)?;
        if self.permissions.contains(&permission) {
            return Ok(());
        }
        Err(RegistryError::Forbidden(match permission {
            Permission::Publish => format!(
                "the trusted publisher of `{name}` may only stage releases: run `npm stage publish` (a maintainer then approves it), or have a maintainer add --allow-publish to its trust configuration"
            ),
            Permission::Stage => format!(
                "the trusted publisher of `{name}` may not stage releases: have a maintainer add --allow-stage-publish to its trust configuration"
            ),
        }))
    }

    /// `_npmUser` of a version it publishes: the provider, as npmjs.com writes it, with the
    /// run's identity.
    pub(crate) fn npm_user(&self) -> Value {
        let email = match self.provider {
            Provider::Github => "npm-oidc-no-reply@github.com",
            Provider::Gitlab => "npm-oidc-no-reply@gitlab.com",
            Provider::Circleci => "npm-oidc-no-reply@circleci.com",
        };
        json!({
            "name": self.provider.display_name(),
            "email": email,
            "trustedPublisher": {
                "id": self.provider.wire_name(),
                "oidcConfigId": self.config_id,
                "identity": self.identity,
            }
        })
    }

    /// The gate actor of a release it stages.
    pub(crate) fn actor(&self) -> airlock_gate::Actor {
        let who = self
            .identity
            .get("repository")
            .or_else(|| self.identity.get("project_path"))
            .or_else(|| self.identity.get("vcs_origin"))
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        airlock_gate::Actor::ci(
            format!("trusted-publisher:{}", self.config_id),
            format!("{}:{who}", self.provider.wire_name()),
        )
    }
}

/// The wire form of a configuration, as `npm trust list` reads it.
fn config_json(c: &TrustConfigRecord) -> Value {
    json!({
        "id": c.id,
        "type": c.provider,
        "claims": c.claims,
        "permissions": c.permissions,
        "issuer": c.issuer,
        "pinnedIds": c.pinned_ids,
        "createdBy": c.created_by.name,
        "createdAt": airlock_store::format_time(c.created_at),
    })
}

impl Registry {
    fn trusted(&self) -> Result<&TrustedPublishing> {
        self.trusted_publishing.as_deref().ok_or_else(|| {
            RegistryError::NotFound("trusted publishing is not enabled on this registry".into())
        })
    }

    /// The package whose trust is asked about; a restricted one does not exist for
    /// non-maintainers.
    async fn trust_package(
        &self,
        principal: &Principal,
        name: &PackageName,
    ) -> Result<airlock_store::PackageState> {
        self.packages
            .package(name.as_str())
            .await?
            .filter(|s| s.access != "restricted" || principal.is_maintainer(s))
            .ok_or_else(|| RegistryError::NotFound(format!("package `{name}` does not exist")))
    }

    /// A maintainer of `name`, with their second factor if they enabled one.
    async fn trust_manager<'p>(
        &self,
        principal: Option<&'p Principal>,
        name: &PackageName,
    ) -> Result<(&'p Principal, Option<airlock_gate::SecondFactor>)> {
        let principal = require_principal(principal)?;
        let state = self.trust_package(principal, name).await?;
        principal.require_maintainer(name, &state)?;
        let factor = if self.has_second_factor(&principal.user.name).await? {
            Some(
                self.verify_second_factor(&principal.user, principal.otp.as_deref())
                    .await?,
            )
        } else {
            None
        };
        Ok((principal, factor))
    }

    /// `POST /-/package/{name}/trust`.
    pub async fn create_trust(
        &self,
        principal: Option<&Principal>,
        name: &str,
        body: &[u8],
    ) -> Result<Value> {
        let trusted = self.trusted()?;
        let name = PackageName::parse(name)?;
        let request = parse_trust_request(body)?;
        let issuer = trusted.issuer_for(&request.rule, request.issuer.as_deref())?;
        let (principal, factor) = self.trust_manager(principal, &name).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let claims = Value::Object(request.rule.wire_claims());
        let permissions: Vec<String> = request
            .permissions
            .iter()
            .map(|p| p.wire_name().to_owned())
            .collect();
        let pinned_ids = pinned_from_rule(&request.rule);
        let created = trusted
            .store()
            .create_trust_config(NewTrustConfig {
                id: id.clone(),
                package: name.to_string(),
                provider: request.rule.provider().wire_name().into(),
                issuer: issuer.clone(),
                claims: claims.clone(),
                permissions: permissions.clone(),
                pinned_ids,
                created_by: principal.user.id,
                event: GateEventRecord {
                    stage_id: None,
                    subject: name.to_string(),
                    kind: "trust_created".into(),
                    actor_id: Some(principal.user.id),
                    actor_name: Some(principal.user.name.clone()),
                    at: self.now(),
                    sha512_hex: None,
                    factor: factor.map(|f| f.to_string()),
                    detail: json!({ "id": id, "type": request.rule.provider().wire_name(), "issuer": issuer, "claims": claims, "permissions": permissions }),
                },
            })
            .await;
        match created {
            Ok(()) => {}
            Err(StoreError::AlreadyExists(_)) => {
                return Err(RegistryError::Conflict(format!(
                    "`{name}` already has a trusted publisher (one per package): list it with `npm trust list {name}` and revoke it with `npm trust revoke {name} --id <id>` first"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(package.name = %name, trust.id = %id, actor.name = %principal.user.name, "trusted publisher created");
        let configs = trusted.store().trust_configs(name.as_str()).await?;
        Ok(Value::Array(
            configs
                .iter()
                .filter(|c| c.id == id)
                .map(config_json)
                .collect(),
        ))
    }

    /// `GET /-/package/{name}/trust`.
    pub async fn list_trust(&self, principal: Option<&Principal>, name: &str) -> Result<Value> {
        let trusted = self.trusted()?;
        let name = PackageName::parse(name)?;
        let principal = require_principal(principal)?;
        let state = self.trust_package(principal, &name).await?;
        if !principal.is_maintainer(&state) {
            return Err(principal.not_maintainer(&name));
        }
        let configs = trusted.store().trust_configs(name.as_str()).await?;
        Ok(Value::Array(configs.iter().map(config_json).collect()))
    }

    /// `DELETE /-/package/{name}/trust/{id}`: revokes the configuration and every credential
    /// minted from it.
    pub async fn revoke_trust(
        &self,
        principal: Option<&Principal>,
        name: &str,
        id: &str,
    ) -> Result<()> {
        let trusted = self.trusted()?;
        let name = PackageName::parse(name)?;
        let (principal, factor) = self.trust_manager(principal, &name).await?;
        let revoked = trusted
            .store()
            .revoke_trust_config(
                name.as_str(),
                id,
                GateEventRecord {
                    stage_id: None,
                    subject: name.to_string(),
                    kind: "trust_revoked".into(),
                    actor_id: Some(principal.user.id),
                    actor_name: Some(principal.user.name.clone()),
                    at: self.now(),
                    sha512_hex: None,
                    factor: factor.map(|f| f.to_string()),
                    detail: json!({ "id": id }),
                },
            )
            .await?;
        if !revoked {
            return Err(RegistryError::NotFound(format!(
                "`{name}` has no trusted publisher with id `{id}`: see `npm trust list {name}`"
            )));
        }
        tracing::info!(package.name = %name, trust.id = %id, actor.name = %principal.user.name, "trusted publisher revoked");
        Ok(())
    }

    /// `POST /-/npm/v1/oidc/token/exchange/package/{name}`: checks the CI's ID token against
    /// the package's trust configuration and mints a credential for that package alone.
    /// `host` is the registry host npm built the audience from.
    pub async fn exchange_id_token(
        &self,
        url_name: &str,
        id_token: Option<&str>,
        host: &str,
    ) -> Result<String> {
        let trusted = self.trusted()?;
        let name = PackageName::parse(url_name)?;
        let refused = |r: ExchangeRefusal| RegistryError::ExchangeRefused(r);
        let id_token = id_token
            .filter(|t| !t.is_empty())
            .ok_or(ExchangeRefusal::NoIdToken)
            .map_err(refused)?;
        let config = trusted
            .store()
            .trust_configs(name.as_str())
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| refused(ExchangeRefusal::NotConfigured(name.to_string())))?;
        let provider = Provider::parse(&config.provider).ok_or_else(|| {
            StoreError::Corrupt(format!("provider of trust config {}", config.id))
        })?;
        let peeked = UnverifiedIdToken::peek(id_token)
            .map_err(|e| refused(ExchangeRefusal::InvalidIdToken(e)))?;
        if peeked.issuer != config.issuer {
            return Err(refused(ExchangeRefusal::WrongIssuer {
                package: name.to_string(),
                expected: config.issuer,
                actual: peeked.issuer,
            }));
        }
        if !trusted.issuer_still_trusted(&config.issuer, provider) {
            return Err(refused(ExchangeRefusal::IssuerRemoved(config.issuer)));
        }
        let jwks = trusted
            .jwks_for(&config.issuer, &peeked.key_id)
            .await
            .map_err(refused)?;
        let audience = trusted
            .settings
            .audience
            .clone()
            .unwrap_or_else(|| format!("npm:{host}"));
        let now = self.now();
        let leeway = i64::try_from(trusted.settings.leeway.as_secs()).unwrap_or(60);
        let verified = verify_id_token(
            id_token,
            &jwks,
            &IdTokenExpectations {
                issuer: &config.issuer,
                audience: &audience,
                now: now.unix_timestamp(),
                leeway,
            },
        )
        .map_err(|e| refused(ExchangeRefusal::InvalidIdToken(e)))?;
        let claims = config
            .claims
            .as_object()
            .ok_or_else(|| StoreError::Corrupt(format!("claims of trust config {}", config.id)))?;
        let rule = TrustRule::from_stored(provider, claims)
            .map_err(|_| StoreError::Corrupt(format!("claims of trust config {}", config.id)))?;
        let matched =
            match_claims(&rule, config.pinned_ids.as_ref(), &verified).map_err(|mismatch| {
                refused(ExchangeRefusal::NotTrusted {
                    package: name.to_string(),
                    mismatch,
                })
            })?;
        let jti = verified
            .jti()
            .ok_or(ExchangeRefusal::NoTokenId)
            .map_err(refused)?
            .to_owned();
        let token = ApiToken::generate();
        let ttl = time::Duration::try_from(trusted.settings.credential_ttl)
            .unwrap_or(time::Duration::minutes(15));
        let outcome = trusted
            .store()
            .record_exchange(NewPublisherToken {
                hash: token.hash().to_hex(),
                config_id: config.id.clone(),
                package: name.to_string(),
                permissions: config.permissions.clone(),
                identity: matched.identity.clone(),
                created_at: now,
                expires_at: now + ttl,
                token_issuer: config.issuer.clone(),
                token_jti: jti,
                token_expires_at: time::OffsetDateTime::from_unix_timestamp(verified.expires_at())
                    .unwrap_or(now)
                    + time::Duration::seconds(leeway),
                pin_ids: if config.pinned_ids.is_none() {
                    matched.pin_ids
                } else {
                    None
                },
            })
            .await?;
        match outcome {
            ExchangeOutcome::Issued => {}
            ExchangeOutcome::Replayed => return Err(refused(ExchangeRefusal::Replayed)),
            ExchangeOutcome::ConfigGone => {
                return Err(refused(ExchangeRefusal::NotConfigured(name.to_string())));
            }
        }
        tracing::info!(package.name = %name, trust.id = %config.id, ci.identity = %matched.identity, "trusted-publishing credential issued");
        Ok(token.expose().to_owned())
    }

    /// The grant behind a trusted-publishing credential, if `hash` is one.
    pub(crate) async fn publisher_grant(
        &self,
        hash: &str,
    ) -> Result<Option<(PublisherGrant, i64)>> {
        let Some(trusted) = self.trusted_publishing.as_deref() else {
            return Ok(None);
        };
        let Some(record) = trusted.store().publisher_token(hash, self.now()).await? else {
            return Ok(None);
        };
        let corrupt = || {
            StoreError::Corrupt(format!(
                "trusted-publishing credential of {}",
                record.config_id
            ))
        };
        let provider = Provider::parse(&record.provider).ok_or_else(corrupt)?;
        let permissions = record
            .permissions
            .iter()
            .map(|p| Permission::parse(p).ok_or_else(corrupt))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Some((
            PublisherGrant {
                config_id: record.config_id,
                package: record.package,
                permissions,
                provider,
                identity: record.identity,
            },
            record.configured_by,
        )))
    }
}

/// Ids a configuration pins from the start (given with the configuration).
fn pinned_from_rule(rule: &TrustRule) -> Option<Value> {
    let pair = |a: (&str, &Option<String>), b: (&str, &Option<String>)| {
        let mut m = Map::new();
        for (k, v) in [a, b] {
            if let Some(v) = v {
                m.insert(k.to_owned(), json!(v));
            }
        }
        (!m.is_empty()).then_some(Value::Object(m))
    };
    match rule {
        TrustRule::Github {
            repository_id,
            repository_owner_id,
            ..
        } => pair(
            ("repository_id", repository_id),
            ("repository_owner_id", repository_owner_id),
        ),
        TrustRule::Gitlab {
            project_id,
            namespace_id,
            ..
        } => pair(("project_id", project_id), ("namespace_id", namespace_id)),
        TrustRule::Circleci { .. } => None,
    }
}

/// A CI run that matched its configuration.
#[derive(Debug)]
pub(crate) struct MatchedRun {
    /// What is recorded about the run (`_npmUser.trustedPublisher.identity`, stage actor).
    pub identity: Value,
    /// The numeric ids to pin if the configuration has none yet.
    pub pin_ids: Option<Value>,
}

/// Does this verified ID token come from the CI run the rule trusts? `Err` says, for a human,
/// what was expected and what the token carries.
pub(crate) fn match_claims(
    rule: &TrustRule,
    pinned: Option<&Value>,
    token: &VerifiedIdToken,
) -> std::result::Result<MatchedRun, String> {
    let text = |name: &str| token.claim_text(name);
    let expect_eq = |what: &str, expected: &str, actual: Option<String>, case_insensitive: bool| {
        let ok = actual.as_deref().is_some_and(|a| {
            if case_insensitive {
                a.eq_ignore_ascii_case(expected)
            } else {
                a == expected
            }
        });
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{what} must be `{expected}`, the token says `{}`",
                actual.as_deref().unwrap_or("(nothing)")
            ))
        }
    };
    let check_pins = |keys: [&str; 2]| -> std::result::Result<Option<Value>, String> {
        let mut fresh = Map::new();
        for key in keys {
            let actual = text(key);
            match pinned.and_then(|p| p.get(key)).and_then(Value::as_str) {
                Some(expected) => {
                    if actual.as_deref() != Some(expected) {
                        return Err(format!(
                            "{key} must be {expected} (recorded when the publisher was first trusted), the token says {}: the repository was deleted and re-created, or transferred; a maintainer must re-create the trust configuration",
                            actual.as_deref().unwrap_or("(nothing)")
                        ));
                    }
                }
                None => {
                    let actual = actual.ok_or_else(|| format!("the token has no `{key}` claim"))?;
                    fresh.insert(key.to_owned(), json!(actual));
                }
            }
        }
        Ok((!fresh.is_empty()).then_some(Value::Object(fresh)))
    };
    let check_ref = |pattern: &Option<String>| match pattern {
        Some(p) if !text("ref").is_some_and(|r| ref_matches(p, &r)) => Err(format!(
            "the git ref must match `{p}`, the token says `{}`",
            text("ref").unwrap_or_else(|| "(nothing)".into())
        )),
        _ => Ok(()),
    };
    match rule {
        TrustRule::Github {
            repository,
            workflow_file,
            environment,
            ref_pattern,
            ..
        } => {
            expect_eq("the repository", repository, text("repository"), true)?;
            let workflow_ref = text("workflow_ref")
                .or_else(|| text("job_workflow_ref"))
                .ok_or("the token has no `workflow_ref` claim")?;
            let (path, _at) = workflow_ref.split_once('@').unwrap_or((&workflow_ref, ""));
            let expected_path = format!("{repository}/.github/workflows/{workflow_file}");
            if !path.eq_ignore_ascii_case(&expected_path) {
                return Err(format!(
                    "the workflow must be `{expected_path}`, the token says `{path}`"
                ));
            }
            if let Some(env) = environment {
                expect_eq("the environment", env, text("environment"), false)?;
            }
            check_ref(ref_pattern)?;
            let pin_ids = check_pins(["repository_id", "repository_owner_id"])?;
            Ok(MatchedRun {
                identity: run_identity(
                    token,
                    &[
                        "repository",
                        "repository_id",
                        "repository_owner_id",
                        "workflow_ref",
                        "environment",
                        "ref",
                        "sha",
                        "run_id",
                        "run_attempt",
                        "runner_environment",
                        "event_name",
                    ],
                ),
                pin_ids,
            })
        }
        TrustRule::Gitlab {
            project_path,
            config_file,
            environment,
            ref_pattern,
            ..
        } => {
            expect_eq("the project", project_path, text("project_path"), true)?;
            let uri =
                text("ci_config_ref_uri").ok_or("the token has no `ci_config_ref_uri` claim")?;
            let file = uri
                .split_once("//")
                .map(|(_, rest)| rest.split('@').next().unwrap_or(rest))
                .unwrap_or_default();
            if file != config_file {
                return Err(format!(
                    "the CI config file must be `{config_file}`, the token says `{uri}`"
                ));
            }
            if let Some(env) = environment {
                expect_eq("the environment", env, text("environment"), false)?;
            }
            // GitLab names the ref without `refs/...`: compare against both spellings.
            if let Some(p) = ref_pattern {
                let r = text("ref").unwrap_or_default();
                let full = match text("ref_type").as_deref() {
                    Some("tag") => format!("refs/tags/{r}"),
                    _ => format!("refs/heads/{r}"),
                };
                if !ref_matches(p, &full) {
                    return Err(format!(
                        "the git ref must match `{p}`, the token says `{full}`"
                    ));
                }
            }
            let pin_ids = check_pins(["project_id", "namespace_id"])?;
            Ok(MatchedRun {
                identity: run_identity(
                    token,
                    &[
                        "project_path",
                        "project_id",
                        "namespace_id",
                        "ci_config_ref_uri",
                        "environment",
                        "ref",
                        "sha",
                        "pipeline_id",
                        "runner_environment",
                    ],
                ),
                pin_ids,
            })
        }
        TrustRule::Circleci {
            org_id,
            project_id,
            pipeline_definition_id,
            vcs_origin,
            context_ids,
        } => {
            expect_eq(
                "the organization",
                org_id,
                text("oidc.circleci.com/org-id"),
                true,
            )?;
            expect_eq(
                "the project",
                project_id,
                text("oidc.circleci.com/project-id"),
                true,
            )?;
            expect_eq(
                "the pipeline definition",
                pipeline_definition_id,
                text("oidc.circleci.com/pipeline-definition-id"),
                true,
            )?;
            expect_eq(
                "the VCS origin",
                vcs_origin,
                text("oidc.circleci.com/vcs-origin"),
                true,
            )?;
            let token_contexts: Vec<String> = token
                .claims()
                .get("oidc.circleci.com/context-ids")
                .and_then(Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_ascii_lowercase)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(missing) = context_ids.iter().find(|c| !token_contexts.contains(c)) {
                return Err(format!(
                    "the job must run in context `{missing}`, the token lists {token_contexts:?}"
                ));
            }
            let mut identity = run_identity(token, &["sub"]);
            identity["vcs_origin"] = json!(vcs_origin);
            Ok(MatchedRun {
                identity,
                pin_ids: None,
            })
        }
    }
}

fn run_identity(token: &VerifiedIdToken, keys: &[&str]) -> Value {
    let mut m = Map::new();
    m.insert("issuer".into(), json!(token.issuer()));
    for key in keys {
        if let Some(v) = token.claim_text(key) {
            m.insert((*key).to_owned(), json!(v));
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    /// A P-256 key made with openssl for these tests (PKCS#8 DER, base64) and its public point.
    const KEY: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcN7sZraAOuiFjZkGxG1uNQ/+cWIuZo/HZOBBQvXV7lOhRANCAARK+TqFMb37BVige5yeP4k/kQW6YQW/g9Q0VLaAf1aV3SSHcSlgOUxjCruq1E2wHQ7SZZYLJk9NriMdvNvDZmFg";
    const X: &str = "Svk6hTG9-wVYoHucnj-JP5EFumEFv4PUNFS2gH9Wld0";
    const Y: &str = "JIdxKWA5TGMKu6rUTbAdDtJllgsmT02uIx2828NmYWA";
    const NOW: i64 = 1_800_000_000;

    /// A verified token carrying `claims` (plus iss/aud/iat/exp).
    fn token(claims: Value) -> VerifiedIdToken {
        let mut c = json!({"iss": "https://ci.test", "aud": "npm:r.test", "iat": NOW, "exp": NOW + 60, "jti": "j"});
        for (k, v) in claims.as_object().unwrap() {
            c[k] = v.clone();
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k".into());
        let der = base64::engine::general_purpose::STANDARD
            .decode(KEY)
            .unwrap();
        let jwt = jsonwebtoken::encode(&header, &c, &EncodingKey::from_ec_der(&der)).unwrap();
        let jwks = Jwks::parse(
            json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k", "x": X, "y": Y}]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        verify_id_token(
            &jwt,
            &jwks,
            &IdTokenExpectations {
                issuer: "https://ci.test",
                audience: "npm:r.test",
                now: NOW,
                leeway: 0,
            },
        )
        .unwrap()
    }

    fn rule(body: Value) -> TrustRule {
        parse_trust_request(body.to_string().as_bytes())
            .unwrap()
            .rule
    }

    #[test]
    fn github_reusable_workflows_and_case() {
        let r = rule(
            json!([{"type":"github","claims":{"repository":"Alice/Demo","workflow_ref":{"file":"publish.yml"}},"permissions":["createPackage"]}]),
        );
        // GitHub names are case-insensitive; the caller's workflow is what counts.
        let t = token(json!({
            "repository": "alice/demo", "repository_id": "7", "repository_owner_id": "8",
            "workflow_ref": "alice/demo/.github/workflows/publish.yml@refs/tags/v1",
            "job_workflow_ref": "org/shared/.github/workflows/release.yml@refs/heads/main",
        }));
        let m = match_claims(&r, None, &t).unwrap();
        assert_eq!(
            m.pin_ids,
            Some(json!({"repository_id": "7", "repository_owner_id": "8"}))
        );
        // Another repository's workflow file of the same name does not count.
        let t = token(json!({
            "repository": "alice/demo", "repository_id": "7", "repository_owner_id": "8",
            "workflow_ref": "mallory/tools/.github/workflows/publish.yml@refs/heads/main",
        }));
        let e = match_claims(&r, None, &t).unwrap_err();
        assert!(e.contains("the workflow must be"), "{e}");
        // Pinned ids win over names.
        let t = token(json!({
            "repository": "alice/demo", "repository_id": "9", "repository_owner_id": "8",
            "workflow_ref": "alice/demo/.github/workflows/publish.yml@refs/tags/v1",
        }));
        let pinned = json!({"repository_id": "7", "repository_owner_id": "8"});
        let e = match_claims(&r, Some(&pinned), &t).unwrap_err();
        assert!(e.contains("re-created"), "{e}");
    }

    #[test]
    fn gitlab_claims() {
        let r = rule(
            json!([{"type":"gitlab","claims":{"project_path":"group/sub/proj","ci_config_ref_uri":{"file":".gitlab-ci.yml"},"ref":"refs/tags/v*"},"permissions":["createPackage"]}]),
        );
        let claims = |ref_name: &str, ref_type: &str, file: &str| {
            json!({
                "project_path": "group/sub/proj", "project_id": "42", "namespace_id": "4",
                "ci_config_ref_uri": format!("gitlab.com/group/sub/proj//{file}@refs/tags/v1"),
                "ref": ref_name, "ref_type": ref_type,
            })
        };
        let m = match_claims(&r, None, &token(claims("v1.0.0", "tag", ".gitlab-ci.yml"))).unwrap();
        assert_eq!(m.identity["project_path"], "group/sub/proj");
        assert_eq!(
            m.pin_ids,
            Some(json!({"project_id": "42", "namespace_id": "4"}))
        );
        let e = match_claims(
            &r,
            None,
            &token(claims("v1.0.0", "branch", ".gitlab-ci.yml")),
        )
        .unwrap_err();
        assert!(e.contains("refs/heads/v1.0.0"), "{e}");
        let e = match_claims(&r, None, &token(claims("v1.0.0", "tag", "other.yml"))).unwrap_err();
        assert!(e.contains("CI config file"), "{e}");
    }

    #[test]
    fn circleci_claims_and_contexts() {
        let org = "0b8c2a43-9d7f-4e5a-9c1d-2f3e4a5b6c7d";
        let project = "1b8c2a43-9d7f-4e5a-9c1d-2f3e4a5b6c7d";
        let pipeline = "2b8c2a43-9d7f-4e5a-9c1d-2f3e4a5b6c7d";
        let context = "3b8c2a43-9d7f-4e5a-9c1d-2f3e4a5b6c7d";
        let r = rule(json!([{"type":"circleci","claims":{
            "oidc.circleci.com/org-id": org, "oidc.circleci.com/project-id": project,
            "oidc.circleci.com/pipeline-definition-id": pipeline,
            "oidc.circleci.com/vcs-origin": "github.com/alice/demo",
            "oidc.circleci.com/context-ids": [context]},"permissions":["createStagedPackage"]}]));
        let claims = |contexts: Value| {
            json!({
                "oidc.circleci.com/org-id": org, "oidc.circleci.com/project-id": project,
                "oidc.circleci.com/pipeline-definition-id": pipeline,
                "oidc.circleci.com/vcs-origin": "github.com/alice/demo",
                "oidc.circleci.com/context-ids": contexts,
            })
        };
        let m = match_claims(&r, None, &token(claims(json!([context, org])))).unwrap();
        assert_eq!(m.identity["vcs_origin"], "github.com/alice/demo");
        let e = match_claims(&r, None, &token(claims(json!([])))).unwrap_err();
        assert!(e.contains("context"), "{e}");
    }
}
