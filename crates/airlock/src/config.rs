//! Configuration: the TOML file, then `AIRLOCK_*` environment variables, then flags (clap
//! merges the last two). Validated once at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4873";
pub const DEFAULT_MAX_BODY_BYTES: usize = 100 * 1024 * 1024;
/// How often the release gate looks for stages to promote or expire: a cooling-off ends at
/// most this late.
pub const DEFAULT_GATE_TICK_MS: u64 = 1000;

/// The config file's shape. Unknown keys are refused, so typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub open_signup: Option<bool>,
    pub read_requires_auth: Option<bool>,
    pub max_body_bytes: Option<usize>,
    pub gate_tick_ms: Option<u64>,
    pub cache_bytes: Option<usize>,
    pub tarball_cache_bytes: Option<usize>,
    /// Trusted publishing: which OIDC issuers are accepted.
    pub oidc: Option<OidcFileConfig>,
    /// Provenance: which Sigstore instances bundles may come from.
    pub provenance: Option<ProvenanceFileConfig>,
}

/// `[provenance]`: the Sigstore trusted roots provenance bundles are verified against.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceFileConfig {
    /// `trusted_root.json` files of more Sigstore instances (a private Fulcio and Rekor).
    #[serde(default)]
    pub trusted_roots: Vec<PathBuf>,
    /// Whether the embedded Sigstore public-good root is trusted too (default true).
    pub public_good_root: Option<bool>,
}

impl ProvenanceFileConfig {
    /// Loads and checks every root now, so a bad file stops the start, not a publish.
    pub fn load_roots(&self) -> anyhow::Result<airlock_trust::sigstore::TrustedRoots> {
        use airlock_trust::sigstore::TrustedRoots;
        let mut roots: Option<TrustedRoots> = if self.public_good_root.unwrap_or(true) {
            Some(TrustedRoots::public_good().context("the embedded Sigstore root is unusable")?)
        } else {
            None
        };
        for path in &self.trusted_roots {
            let context = || {
                format!(
                    "provenance.trusted_roots: {} is not a usable Sigstore trusted_root.json",
                    path.display()
                )
            };
            roots = Some(match roots {
                Some(roots) => roots.with_file(path).with_context(context)?,
                None => TrustedRoots::from_file(path).with_context(context)?,
            });
        }
        roots.context(
            "provenance.public_good_root = false needs at least one file in provenance.trusted_roots",
        )
    }
}

/// `[oidc]`: the issuers whose ID tokens the exchange accepts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFileConfig {
    /// Replaces `https://token.actions.githubusercontent.com` (GitHub Enterprise Server).
    pub github_issuer: Option<String>,
    /// Replaces `https://gitlab.com` for `npm trust gitlab` configurations.
    pub gitlab_issuer: Option<String>,
    /// The audience ID tokens must carry; default `npm:<registry host>`.
    pub audience: Option<String>,
    /// Lifetime of an exchanged credential (default 900).
    pub credential_ttl_secs: Option<u64>,
    /// Clock difference allowed for `exp`/`nbf`/`iat` (default 60).
    pub leeway_secs: Option<u64>,
    /// Timeout for fetching an issuer's discovery document and keys (default 5000).
    pub fetch_timeout_ms: Option<u64>,
    /// More issuers; a trust configuration names one with its `issuer` claim.
    #[serde(default)]
    pub issuers: Vec<IssuerFileConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerFileConfig {
    pub url: String,
    /// Whose claims it issues: `github`, `gitlab` or `circleci`.
    pub provider: String,
}

/// Checked trusted-publishing settings.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub settings: airlock_registry::OidcSettings,
    pub fetch_timeout: std::time::Duration,
}

impl OidcFileConfig {
    pub fn validate(&self) -> anyhow::Result<OidcConfig> {
        use airlock_registry::{CustomIssuer, OidcSettings};
        let defaults = OidcSettings::default();
        let mut custom_issuers = Vec::new();
        for issuer in &self.issuers {
            let provider = airlock_npm::Provider::parse(&issuer.provider).with_context(|| {
                format!(
                    "[[oidc.issuers]] `{}`: provider `{}` must be github, gitlab or circleci",
                    issuer.url, issuer.provider
                )
            })?;
            custom_issuers.push(CustomIssuer {
                url: issuer_url(&issuer.url)?,
                provider,
            });
        }
        let ttl = self.credential_ttl_secs.unwrap_or(900);
        if !(1..=3600).contains(&ttl) {
            bail!(
                "oidc.credential_ttl_secs must be between 1 and 3600 (15 minutes is the default)"
            );
        }
        let leeway = self.leeway_secs.unwrap_or(60);
        if leeway > 300 {
            bail!("oidc.leeway_secs must be at most 300");
        }
        Ok(OidcConfig {
            settings: OidcSettings {
                github_issuer: self
                    .github_issuer
                    .as_deref()
                    .map(issuer_url)
                    .transpose()?
                    .unwrap_or(defaults.github_issuer),
                gitlab_issuer: self
                    .gitlab_issuer
                    .as_deref()
                    .map(issuer_url)
                    .transpose()?
                    .unwrap_or(defaults.gitlab_issuer),
                circleci_issuer_prefix: defaults.circleci_issuer_prefix,
                custom_issuers,
                audience: self.audience.clone(),
                credential_ttl: std::time::Duration::from_secs(ttl),
                leeway: std::time::Duration::from_secs(leeway),
            },
            fetch_timeout: std::time::Duration::from_millis(self.fetch_timeout_ms.unwrap_or(5000)),
        })
    }
}

/// An issuer URL: https, or http on a loopback address (a test issuer). Kept as written
/// (without a trailing slash), since `iss` must match it exactly.
fn issuer_url(raw: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(raw).with_context(|| format!("OIDC issuer `{raw}` is not a URL"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => bail!(
            "OIDC issuer `{raw}` must be an https:// URL (http:// only on a loopback address)"
        ),
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

impl FileConfig {
    /// The checked `[oidc]` section (its defaults when absent).
    pub fn oidc_config(&self) -> anyhow::Result<OidcConfig> {
        self.oidc.as_ref().map_or_else(
            || OidcFileConfig::default().validate(),
            OidcFileConfig::validate,
        )
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read the config file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("the config file {} is not valid", path.display()))
    }
}

/// Checked settings for `airlock serve`.
#[derive(Debug)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub open_signup: bool,
    pub read_requires_auth: bool,
    pub max_body_bytes: usize,
    pub gate_tick: std::time::Duration,
    /// Memory for cached packuments and tarball digests.
    pub cache_bytes: usize,
    /// Memory for recently read small tarballs.
    pub tarball_cache_bytes: usize,
    pub oidc: OidcConfig,
    /// The Sigstore roots provenance bundles are verified against.
    pub provenance_roots: airlock_trust::sigstore::TrustedRoots,
}

/// Checks a public URL and normalises it to end in `/`.
pub fn normalise_public_url(raw: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(raw).with_context(|| format!("public_url `{raw}` is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("public_url `{raw}` must be an http:// or https:// URL with a host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("public_url `{raw}` must not have a query or fragment");
    }
    let mut s = url.to_string();
    if !s.ends_with('/') {
        s.push('/');
    }
    Ok(s)
}

pub fn parse_listen(raw: &str) -> anyhow::Result<SocketAddr> {
    raw.parse().with_context(|| {
        format!("listen address `{raw}` is not IP:PORT (for example 127.0.0.1:4873)")
    })
}
