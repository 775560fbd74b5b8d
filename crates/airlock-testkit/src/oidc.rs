//! A real OIDC issuer process for the trusted-publishing tests: `js/oidc-issuer.mjs` (our script on
//! top of oauth2-mock-server) run with Node 22 on `127.0.0.1:0`.
//!
//! It publishes an RS256 and an ES256 key in its JWKS, serves discovery with `issuer` equal to
//! [`OidcIssuer::issuer_url`], emulates GitHub Actions' ID-token endpoint (what
//! `ACTIONS_ID_TOKEN_REQUEST_URL` points at) and mints arbitrary tokens for negative tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use crate::command;
use crate::http::{HttpRequest, HttpResponse};
use crate::tools;

const READY_PREFIX: &str = "oidc-issuer: ready ";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The path (and the query GitHub's URL always carries) of the emulated ID-token endpoint.
const GITHUB_TOKEN_PATH: &str = "/github/token?api-version=2.0";

/// The script, shipped in this crate.
fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js/oidc-issuer.mjs")
}

/// Seconds since the Unix epoch, for `iat`/`nbf`/`exp` overrides.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The signing algorithm of a minted token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JwtAlg {
    /// RSA with a 2048-bit key from the JWKS (what GitHub uses).
    #[default]
    Rs256,
    /// ECDSA P-256 with a key from the JWKS.
    Es256,
    /// HMAC-SHA256 with [`MintOptions::hmac_secret`]: must be refused by the registry.
    Hs256,
    /// `alg: none`, empty signature: must be refused by the registry.
    None,
}

impl JwtAlg {
    /// The JOSE name (`RS256`, `ES256`, `HS256`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlg::Rs256 => "RS256",
            JwtAlg::Es256 => "ES256",
            JwtAlg::Hs256 => "HS256",
            JwtAlg::None => "none",
        }
    }
}

/// What [`OidcIssuer::mint`] puts in a token.
///
/// Defaults: `iss` = the issuer URL, `iat` = now, `nbf` = `iat - 10`, `exp` = `iat + 300`, `jti` =
/// a fresh UUID, no `aud`, RS256 with the published key and its `kid`. `claims` are applied last,
/// so they can override any of these (including `iss` and `jti`); a claim set to JSON `null` is
/// removed from the token instead.
#[derive(Clone, Debug, Default)]
pub struct MintOptions {
    /// A JSON object of claims (e.g. from [`github_claims`]); `Value::Null` means none.
    pub claims: Value,
    /// Sets `aud` (e.g. `npm:127.0.0.1`).
    pub audience: Option<String>,
    pub alg: JwtAlg,
    /// Replaces the header's `kid` (e.g. another published key's kid, or an unknown one).
    pub kid: Option<String>,
    /// Leaves `kid` out of the header.
    pub omit_kid: bool,
    /// Signs RS256/ES256 with a key that is not in the JWKS (its own `kid` is not published either).
    pub unknown_key: bool,
    /// The HS256 secret (default `airlock-test-hs256-secret`); for key confusion use
    /// [`OidcIssuer::public_key_pem`].
    pub hmac_secret: Option<String>,
    /// `exp - iat` when `exp` is not given (default 300).
    pub lifetime_secs: Option<i64>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    /// Extra JOSE header fields (a JSON object; `alg` is ignored for RS256/ES256).
    pub header: Option<Value>,
}

impl MintOptions {
    /// RS256 with these claims and the defaults above.
    pub fn new(claims: Value) -> MintOptions {
        MintOptions {
            claims,
            ..MintOptions::default()
        }
    }

    pub fn audience(mut self, aud: &str) -> MintOptions {
        self.audience = Some(aud.to_owned());
        self
    }

    pub fn alg(mut self, alg: JwtAlg) -> MintOptions {
        self.alg = alg;
        self
    }

    pub fn kid(mut self, kid: &str) -> MintOptions {
        self.kid = Some(kid.to_owned());
        self
    }

    pub fn omit_kid(mut self) -> MintOptions {
        self.omit_kid = true;
        self
    }

    pub fn unknown_key(mut self) -> MintOptions {
        self.unknown_key = true;
        self
    }

    /// HS256 signed with `secret`.
    pub fn hs256(mut self, secret: &str) -> MintOptions {
        self.alg = JwtAlg::Hs256;
        self.hmac_secret = Some(secret.to_owned());
        self
    }

    pub fn lifetime_secs(mut self, secs: i64) -> MintOptions {
        self.lifetime_secs = Some(secs);
        self
    }

    pub fn iat(mut self, at: i64) -> MintOptions {
        self.iat = Some(at);
        self
    }

    pub fn nbf(mut self, at: i64) -> MintOptions {
        self.nbf = Some(at);
        self
    }

    pub fn exp(mut self, at: i64) -> MintOptions {
        self.exp = Some(at);
        self
    }

    /// Sets (or with `Value::Null` removes) one claim.
    pub fn claim(mut self, name: &str, value: Value) -> MintOptions {
        if !self.claims.is_object() {
            self.claims = Value::Object(Map::new());
        }
        if let Value::Object(m) = &mut self.claims {
            m.insert(name.to_owned(), value);
        }
        self
    }

    /// The body of `POST /control/mint`.
    fn to_json(&self) -> Value {
        let mut body = json!({ "alg": self.alg.as_str(), "unknown_key": self.unknown_key });
        let mut set = |k: &str, v: Value| {
            if let Value::Object(m) = &mut body {
                m.insert(k.to_owned(), v);
            }
        };
        if !self.claims.is_null() {
            set("claims", self.claims.clone());
        }
        if let Some(a) = &self.audience {
            set("audience", json!(a));
        }
        if self.omit_kid {
            set("kid", Value::Null);
        } else if let Some(k) = &self.kid {
            set("kid", json!(k));
        }
        if let Some(s) = &self.hmac_secret {
            set("hmac_secret", json!(s));
        }
        if let Some(v) = self.lifetime_secs {
            set("lifetime_secs", json!(v));
        }
        if let Some(v) = self.iat {
            set("iat", json!(v));
        }
        if let Some(v) = self.nbf {
            set("nbf", json!(v));
        }
        if let Some(v) = self.exp {
            set("exp", json!(v));
        }
        if let Some(h) = &self.header {
            set("header", h.clone());
        }
        body
    }
}

/// A key the issuer holds (from `GET /control/keys`).
#[derive(Clone, Debug)]
pub struct IssuerKey {
    pub kid: String,
    /// `RS256` or `ES256`.
    pub alg: String,
    /// Whether the key is in the JWKS.
    pub published: bool,
    /// The SPKI public key, PEM.
    pub public_pem: String,
}

/// One request the GitHub ID-token endpoint received.
#[derive(Clone, Debug)]
pub struct GithubTokenRequest {
    /// The `audience` query parameter, if any (e.g. `npm:127.0.0.1`).
    pub audience: Option<String>,
    /// Whether the bearer was `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (if not, it answered 401).
    pub authorized: bool,
    /// The request target as received.
    pub url: String,
}

/// GitHub Actions ID-token claims as GitHub issues them (numeric ids are strings there too), for
/// `repo` = `owner/name` running `.github/workflows/<workflow_file>` on `git_ref` (e.g.
/// `refs/heads/main` or `refs/tags/v1.0.0`), in `environment` if given. Tweak single claims with
/// `claims["x"] = …` before use.
pub fn github_claims(
    repo: &str,
    repo_id: u64,
    owner_id: u64,
    workflow_file: &str,
    git_ref: &str,
    environment: Option<&str>,
) -> Value {
    let owner = repo.split('/').next().unwrap_or(repo);
    let workflow_ref = format!("{repo}/.github/workflows/{workflow_file}@{git_ref}");
    let ref_type = if git_ref.starts_with("refs/tags/") {
        "tag"
    } else {
        "branch"
    };
    let sub = match environment {
        Some(env) => format!("repo:{repo}:environment:{env}"),
        None => format!("repo:{repo}:ref:{git_ref}"),
    };
    let sha = "8f3c2a1b9d4e5f60718293a4b5c6d7e8f9012345";
    let mut claims = json!({
        "sub": sub,
        "ref": git_ref,
        "ref_type": ref_type,
        "ref_protected": "false",
        "sha": sha,
        "repository": repo,
        "repository_id": repo_id.to_string(),
        "repository_owner": owner,
        "repository_owner_id": owner_id.to_string(),
        "repository_visibility": "private",
        "run_id": "9876543210",
        "run_number": "42",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "actor": owner,
        "actor_id": owner_id.to_string(),
        "workflow": "Publish",
        "workflow_ref": workflow_ref,
        "workflow_sha": sha,
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": sha,
        "event_name": "push",
        "head_ref": "",
        "base_ref": "",
    });
    if let (Some(env), Value::Object(m)) = (environment, &mut claims) {
        m.insert("environment".to_owned(), json!(env));
    }
    claims
}

/// The running issuer process. Dropping it kills the process; if the test is panicking, the
/// issuer's stderr is printed.
pub struct OidcIssuer {
    child: Child,
    /// Kept open: the script exits when its stdin closes (so it dies with the test process).
    _stdin: Option<ChildStdin>,
    tmp: tempfile::TempDir,
    url: String,
    host_port: String,
    request_token: String,
    github_claims: Mutex<Option<Value>>,
}

impl OidcIssuer {
    /// Installs Node 22 and oauth2-mock-server if needed (panicking if that fails), starts the
    /// issuer on `127.0.0.1:0` and waits (30 s at most) for its ready line.
    pub fn start() -> anyhow::Result<OidcIssuer> {
        let node = tools::ensure_node22();
        let tmp = tempfile::Builder::new()
            .prefix("airlock-oidc-")
            .tempdir()
            .context("creating temp dir")?;
        let mut cmd = Command::new(&node);
        cmd.env_clear();
        for key in ["PATH", "HOME", "TMPDIR", "LANG", "TZ"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.arg(script_path())
            .arg("--tools-prefix")
            .arg(tools::node22_prefix())
            .stdin(Stdio::piped());
        let (mut child, ready) = command::spawn_until_ready(
            &mut cmd,
            &tmp.path().join("oidc-issuer.stderr.log"),
            tmp.path().join("oidc-issuer.stdout.log"),
            READY_PREFIX,
            READY_TIMEOUT,
        )?;
        let stdin = child.stdin.take();
        // "oidc-issuer: ready http://127.0.0.1:PORT request-token=TOKEN"
        let mut parts = ready[READY_PREFIX.len()..].split_whitespace();
        let url = parts.next().unwrap_or_default().to_owned();
        let request_token = parts
            .next()
            .and_then(|p| p.strip_prefix("request-token="))
            .unwrap_or_default()
            .to_owned();
        let host_port = url.strip_prefix("http://").unwrap_or_default().to_owned();
        if host_port.is_empty() || host_port.contains('/') || request_token.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("cannot parse the issuer's ready line {ready:?}");
        }
        Ok(OidcIssuer {
            child,
            _stdin: stdin,
            tmp,
            url,
            host_port,
            request_token,
            github_claims: Mutex::new(None),
        })
    }

    /// The exact `iss` of its tokens and the discovery base, `http://127.0.0.1:PORT` (no trailing
    /// slash): what the registry's issuer config must say.
    pub fn issuer_url(&self) -> &str {
        &self.url
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> &str {
        &self.host_port
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.url)
    }

    /// The JWKS URL (as discovery's `jwks_uri` says).
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.url)
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_URL`: `<issuer>/github/token?api-version=2.0`.
    pub fn github_token_url(&self) -> String {
        format!("{}{GITHUB_TOKEN_PATH}", self.url)
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`: the bearer the GitHub endpoint wants (401 otherwise).
    pub fn request_token(&self) -> &str {
        &self.request_token
    }

    /// A raw request to the issuer; `path` is sent verbatim.
    pub fn http(&self, method: &str, path: &str) -> HttpRequest {
        HttpRequest::new(&self.host_port, method, path)
    }

    /// Sets the claims the GitHub endpoint puts in every token (besides `iss`, `aud`, `jti`,
    /// `iat`, `nbf`, `exp`, which it sets itself: RS256, 5 minutes, `aud` = the requested
    /// audience). Call it before [`OidcIssuer::github_actions_env`], which copies some of them.
    #[track_caller]
    pub fn set_github_claims(&self, claims: Value) {
        assert!(claims.is_object(), "GitHub claims must be a JSON object");
        self.control("POST", "/control/github", &json!({ "claims": claims }));
        *self.github_claims.lock().unwrap_or_else(|e| e.into_inner()) = Some(claims);
    }

    /// The current GitHub claims template.
    pub fn github_claims(&self) -> Option<Value> {
        self.github_claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Mints a token (see [`MintOptions`]); panics if the issuer refuses the options.
    #[track_caller]
    pub fn mint(&self, opts: MintOptions) -> String {
        let resp = self.control("POST", "/control/mint", &opts.to_json());
        match resp.json().get("token").and_then(Value::as_str) {
            Some(t) => t.to_owned(),
            None => panic!("mint answered without a token: {resp:?}"),
        }
    }

    /// Fetches a token from the GitHub endpoint the way npm does (bearer = the request token,
    /// `&audience=…` appended; `None` leaves it out, as GitHub's default audience).
    #[track_caller]
    pub fn github_token(&self, audience: Option<&str>) -> String {
        let mut path = GITHUB_TOKEN_PATH.to_owned();
        if let Some(aud) = audience {
            path.push_str("&audience=");
            path.push_str(&percent_encode(aud));
        }
        let resp = self.http("GET", &path).bearer(&self.request_token).send();
        resp.assert_status(200);
        match resp.json().get("value").and_then(Value::as_str) {
            Some(t) => t.to_owned(),
            None => panic!("GitHub token endpoint answered without `value`: {resp:?}"),
        }
    }

    /// The keys the issuer holds: the published RS256 and ES256 keys and the unpublished ones
    /// [`MintOptions::unknown_key`] signs with.
    #[track_caller]
    pub fn keys(&self) -> Vec<IssuerKey> {
        let resp = self.http("GET", "/control/keys").send();
        resp.assert_status(200);
        let v = resp.json();
        let Some(keys) = v.get("keys").and_then(Value::as_array) else {
            panic!("no keys array: {resp:?}");
        };
        keys.iter()
            .map(|k| IssuerKey {
                kid: str_field(k, "kid"),
                alg: str_field(k, "alg"),
                published: k.get("published").and_then(Value::as_bool) == Some(true),
                public_pem: str_field(k, "public_pem"),
            })
            .collect()
    }

    /// The published key for `alg` (RS256 or ES256).
    #[track_caller]
    pub fn published_key(&self, alg: JwtAlg) -> IssuerKey {
        match self
            .keys()
            .into_iter()
            .find(|k| k.published && k.alg == alg.as_str())
        {
            Some(k) => k,
            None => panic!("the issuer has no published {} key", alg.as_str()),
        }
    }

    /// The PEM of the published key for `alg`: the HMAC secret of the classic key-confusion
    /// attack (`MintOptions::new(c).hs256(&issuer.public_key_pem(JwtAlg::Rs256))`).
    #[track_caller]
    pub fn public_key_pem(&self, alg: JwtAlg) -> String {
        self.published_key(alg).public_pem
    }

    /// Every request the GitHub endpoint received so far, oldest first.
    #[track_caller]
    pub fn github_token_requests(&self) -> Vec<GithubTokenRequest> {
        let resp = self.http("GET", "/control/github-requests").send();
        resp.assert_status(200);
        let v = resp.json();
        let Some(reqs) = v.get("requests").and_then(Value::as_array) else {
            panic!("no requests array: {resp:?}");
        };
        reqs.iter()
            .map(|r| GithubTokenRequest {
                audience: r.get("audience").and_then(Value::as_str).map(str::to_owned),
                authorized: r.get("authorized").and_then(Value::as_bool) == Some(true),
                url: str_field(r, "url"),
            })
            .collect()
    }

    /// The environment that makes npm believe it runs in GitHub Actions with `id-token: write`:
    /// `GITHUB_ACTIONS`, `CI`, `ACTIONS_ID_TOKEN_REQUEST_URL` (with GitHub's `api-version` query),
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, `GITHUB_SERVER_URL`, `RUNNER_ENVIRONMENT`, and the
    /// `GITHUB_*` context variables taken from the current GitHub claims template. Pass it to
    /// [`crate::NpmEnv::with_envs`]. To hand npm a specific token instead (an expired one, say),
    /// add `NPM_ID_TOKEN`: npm uses it before asking the endpoint.
    pub fn github_actions_env(&self) -> Vec<(String, String)> {
        let claims = self.github_claims().unwrap_or(Value::Null);
        let claim = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut env: Vec<(String, String)> = vec![
            ("GITHUB_ACTIONS".into(), "true".into()),
            ("CI".into(), "true".into()),
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL".into(),
                self.github_token_url(),
            ),
            (
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN".into(),
                self.request_token.clone(),
            ),
            ("GITHUB_SERVER_URL".into(), "https://github.com".into()),
            ("GITHUB_API_URL".into(), "https://api.github.com".into()),
            ("RUNNER_OS".into(), "Linux".into()),
            (
                "RUNNER_ENVIRONMENT".into(),
                claim("runner_environment").unwrap_or_else(|| "github-hosted".into()),
            ),
            (
                "GITHUB_EVENT_NAME".into(),
                claim("event_name").unwrap_or_else(|| "push".into()),
            ),
        ];
        for (var, name) in [
            ("GITHUB_REPOSITORY", "repository"),
            ("GITHUB_REPOSITORY_ID", "repository_id"),
            ("GITHUB_REPOSITORY_OWNER", "repository_owner"),
            ("GITHUB_REPOSITORY_OWNER_ID", "repository_owner_id"),
            ("GITHUB_WORKFLOW", "workflow"),
            ("GITHUB_WORKFLOW_REF", "workflow_ref"),
            ("GITHUB_WORKFLOW_SHA", "workflow_sha"),
            ("GITHUB_REF", "ref"),
            ("GITHUB_REF_TYPE", "ref_type"),
            ("GITHUB_SHA", "sha"),
            ("GITHUB_RUN_ID", "run_id"),
            ("GITHUB_RUN_NUMBER", "run_number"),
            ("GITHUB_RUN_ATTEMPT", "run_attempt"),
            ("GITHUB_ACTOR", "actor"),
            ("GITHUB_ACTOR_ID", "actor_id"),
        ] {
            if let Some(v) = claim(name) {
                env.push((var.into(), v));
            }
        }
        if let Some(r) = claim("ref") {
            let name = r
                .strip_prefix("refs/heads/")
                .or_else(|| r.strip_prefix("refs/tags/"))
                .unwrap_or(&r)
                .to_owned();
            env.push(("GITHUB_REF_NAME".into(), name));
        }
        env
    }

    /// What the issuer wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.tmp.path().join("oidc-issuer.stderr.log")).unwrap_or_default()
    }

    #[track_caller]
    fn control(&self, method: &str, path: &str, body: &Value) -> HttpResponse {
        let resp = self.http(method, path).json(body).send();
        assert_eq!(
            resp.status, 200,
            "OIDC issuer refused {method} {path} {body}: {resp:?}"
        );
        resp
    }
}

impl Drop for OidcIssuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "===== OIDC issuer stderr =====\n{}\n===== end =====",
                self.stderr()
            );
        }
    }
}

fn str_field(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `encodeURIComponent`, as npm applies to the audience (`npm:127.0.0.1` → `npm%3A127.0.0.1`).
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
