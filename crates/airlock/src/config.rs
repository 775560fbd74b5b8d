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
}

impl FileConfig {
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
