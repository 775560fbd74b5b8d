//! `airlock policy show|set`: a client of the registry's management API
//! (`/-/airlock/v1/policy/{registry|@scope|package}`), so policy changes go through the same
//! authorization and second-factor checks as any other write.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

/// Where the registry is and who is asking.
#[derive(Args)]
pub struct Connection {
    /// Registry URL
    #[arg(
        long,
        env = "AIRLOCK_REGISTRY",
        default_value = "http://127.0.0.1:4873/"
    )]
    registry: String,
    /// API token [default: the registry's `_authToken` in ~/.npmrc or $npm_config_userconfig]
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Show a policy layer and the effective policy
    Show {
        /// `registry`, `@scope` or a package name
        target: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Change a policy layer (needs a code from your authenticator)
    Set {
        /// `registry`, `@scope` or a package name
        target: String,
        /// `direct` (npm publish goes live) or `staged` (releases must be staged and approved)
        #[arg(long)]
        publish: Option<String>,
        /// Distinct maintainers who must approve a release (1-10)
        #[arg(long)]
        approvals: Option<u8>,
        /// Wait after the last approval before going live, e.g. `30m`, `24h`, `0`
        #[arg(long, value_parser = parse_duration)]
        cooling_off: Option<Duration>,
        /// Allow N+1 approvals to skip the cooling-off (security fixes)
        #[arg(long)]
        expedite: Option<bool>,
        /// How long a stage waits for approval before it expires, e.g. `7d`
        #[arg(long, value_parser = parse_duration)]
        stage_ttl: Option<Duration>,
        /// Require verified provenance (a Sigstore bundle) on every version
        #[arg(long)]
        require_provenance: Option<bool>,
        /// Refuse (or, for staged releases, escalate) a version that drops the newest live
        /// version's provenance or brings it from another repository or workflow (default on)
        #[arg(long)]
        downgrade_protection: Option<bool>,
        /// Declare in advance that the next versions of this package come without provenance
        #[arg(long)]
        allow_missing_provenance: bool,
        /// Declare in advance that provenance now comes from this repository (`owner/repo`)
        #[arg(long, value_name = "OWNER/REPO")]
        expected_repository: Option<String>,
        /// Declare in advance that provenance now comes from this workflow (`release.yml`)
        #[arg(long, value_name = "FILE")]
        expected_workflow: Option<String>,
        /// Withdraw a declared provenance change
        #[arg(long, conflicts_with_all = ["allow_missing_provenance", "expected_repository", "expected_workflow"])]
        clear_provenance_change: bool,
        /// Remove this layer's own settings (fall back to the scope or registry)
        #[arg(long, conflicts_with_all = ["publish", "approvals", "cooling_off", "expedite", "stage_ttl", "require_provenance", "downgrade_protection", "allow_missing_provenance", "expected_repository", "expected_workflow", "clear_provenance_change"])]
        clear: bool,
        /// One-time password from your authenticator
        #[arg(long)]
        otp: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
}

/// `90`, `90s`, `15m`, `24h`, `7d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 15m, 24h or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{s}` has an unknown unit: use s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

/// npm's "nerf dart" for a registry URL: `//host:port/path/`.
fn nerf_dart(registry: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(registry).with_context(|| format!("`{registry}` is not a URL"))?;
    let host = url.host_str().context("the registry URL has no host")?;
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = if url.path().ends_with('/') {
        url.path().to_owned()
    } else {
        format!("{}/", url.path())
    };
    Ok(format!("//{host}{port}{path}"))
}

/// The token npm would send to this registry, from the npm user config.
fn token_from_npmrc(registry: &str) -> anyhow::Result<Option<String>> {
    let path = match std::env::var_os("npm_config_userconfig") {
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".npmrc"),
            None => return Ok(None),
        },
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let key = format!("{}:_authToken=", nerf_dart(registry)?);
    Ok(text
        .lines()
        .find_map(|line| line.trim().strip_prefix(&key).map(|t| t.trim().to_owned())))
}

fn endpoint(registry: &str, target: &str) -> String {
    let base = registry.trim_end_matches('/');
    // Scoped names keep their `@` and encode the slash, as npm does.
    format!("{base}/-/airlock/v1/policy/{}", target.replace('/', "%2f"))
}

async fn send(request: reqwest::RequestBuilder, token: &str) -> anyhow::Result<Value> {
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .context("could not reach the registry")?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .context("the registry's answer is not JSON")?;
    if status.is_success() {
        return Ok(body);
    }
    let message = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("no reason given")
        .to_owned();
    bail!("the registry refused ({status}): {message}")
}

fn print_policy(answer: &Value) {
    let show = |v: &Value| {
        v.as_object().map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    println!("{}", answer["subject"].as_str().unwrap_or_default());
    println!(
        "  own settings: {}",
        show(&answer["layer"])
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "(none)".into())
    );
    if let Some(effective) = show(&answer["effective"]) {
        println!("  effective:    {effective}");
    }
}

pub async fn run(command: PolicyCommand) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("could not build an HTTP client")?;
    let token = |c: &Connection| -> anyhow::Result<String> {
        match &c.token {
            Some(t) => Ok(t.clone()),
            None => token_from_npmrc(&c.registry)?.with_context(|| {
                format!("no token for {}: pass --token, set AIRLOCK_TOKEN, or run `npm login --registry {}`", c.registry, c.registry)
            }),
        }
    };
    match command {
        PolicyCommand::Show { target, connection } => {
            let answer = send(
                client.get(endpoint(&connection.registry, &target)),
                &token(&connection)?,
            )
            .await?;
            print_policy(&answer);
        }
        PolicyCommand::Set {
            target,
            publish,
            approvals,
            cooling_off,
            expedite,
            stage_ttl,
            require_provenance,
            downgrade_protection,
            allow_missing_provenance,
            expected_repository,
            expected_workflow,
            clear_provenance_change,
            clear,
            otp,
            connection,
        } => {
            let token = token(&connection)?;
            // `set` changes only the settings given: start from the layer as it is.
            let mut patch = if clear {
                Map::new()
            } else {
                let current =
                    send(client.get(endpoint(&connection.registry, &target)), &token).await?;
                current["layer"].as_object().cloned().unwrap_or_default()
            };
            let declares_change = allow_missing_provenance
                || expected_repository.is_some()
                || expected_workflow.is_some();
            let given = publish.is_some()
                || approvals.is_some()
                || cooling_off.is_some()
                || expedite.is_some()
                || stage_ttl.is_some()
                || require_provenance.is_some()
                || downgrade_protection.is_some()
                || declares_change
                || clear_provenance_change;
            if let Some(b) = require_provenance {
                patch.insert("require_provenance".into(), json!(b));
            }
            if let Some(b) = downgrade_protection {
                patch.insert("downgrade_protection".into(), json!(b));
            }
            if declares_change {
                let mut change = Map::new();
                if allow_missing_provenance {
                    change.insert("allow_missing".into(), json!(true));
                }
                if let Some(repository) = expected_repository {
                    change.insert("expected_repository".into(), json!(repository));
                }
                if let Some(workflow) = expected_workflow {
                    change.insert("expected_workflow".into(), json!(workflow));
                }
                patch.insert("provenance_change".into(), Value::Object(change));
            }
            if clear_provenance_change {
                patch.remove("provenance_change");
            }
            if let Some(publish) = publish {
                patch.insert("publish".into(), json!(publish));
            }
            if let Some(n) = approvals {
                patch.insert("approvals".into(), json!(n));
            }
            if let Some(d) = cooling_off {
                patch.insert("cooling_off_seconds".into(), json!(d.as_secs()));
            }
            if let Some(e) = expedite {
                patch.insert("expedite".into(), json!(e));
            }
            if let Some(d) = stage_ttl {
                patch.insert("stage_ttl_seconds".into(), json!(d.as_secs()));
            }
            if !given && !clear {
                bail!(
                    "nothing to set: give --publish, --approvals, --cooling-off, --expedite, --stage-ttl, --require-provenance, --downgrade-protection, --allow-missing-provenance, --expected-repository, --expected-workflow, --clear-provenance-change, or --clear"
                );
            }
            let mut request = client
                .put(endpoint(&connection.registry, &target))
                .json(&Value::Object(patch));
            if let Some(otp) = otp {
                request = request.header("npm-otp", otp);
            }
            let answer = send(request, &token).await?;
            print_policy(&answer);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert!(parse_duration("7w").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn npmrc_keys() {
        assert_eq!(
            nerf_dart("http://127.0.0.1:4873/").unwrap(),
            "//127.0.0.1:4873/"
        );
        assert_eq!(
            nerf_dart("https://npm.example.com/npm").unwrap(),
            "//npm.example.com/npm/"
        );
        assert_eq!(
            endpoint("http://h/", "@acme/lib"),
            "http://h/-/airlock/v1/policy/@acme%2flib"
        );
    }
}
