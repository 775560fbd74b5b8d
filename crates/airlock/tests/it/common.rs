//! Helpers shared by the end-to-end tests.

use std::path::Path;

use airlock_testkit::{HttpResponse, NpmEnv, PublishBody, Server, ServerOptions, escaped_name};
use serde_json::Value;

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_airlock"))
}

/// A fresh server with default options.
#[track_caller]
pub fn server() -> Server {
    server_with(ServerOptions::default())
}

#[track_caller]
pub fn server_with(opts: ServerOptions) -> Server {
    match Server::start(bin(), opts) {
        Ok(s) => s,
        Err(e) => panic!("starting airlock failed: {e:#}"),
    }
}

/// The password `Server::user_with_token` gives a user.
pub fn password_of(user: &str) -> String {
    format!("pw-{user}-secret")
}

/// A server with user `alice` (and her token), and an npm environment logged in as her.
pub struct World {
    pub server: Server,
    pub alice: String,
    pub npm: NpmEnv,
}

#[track_caller]
pub fn world() -> World {
    world_with(ServerOptions::default())
}

#[track_caller]
pub fn world_with(opts: ServerOptions) -> World {
    let server = server_with(opts);
    let alice = server.user_with_token("alice");
    let npm = NpmEnv::new(&server).with_token(&alice);
    World { server, alice, npm }
}

impl World {
    /// Another user with a token and their own npm environment.
    pub fn user(&self, name: &str) -> (String, NpmEnv) {
        let token = self.server.user_with_token(name);
        let npm = NpmEnv::new(&self.server).with_token(&token);
        (token, npm)
    }
}

/// `PUT /{escaped name}` with the npm-shaped body, authenticated with `token`.
pub fn publish_raw(server: &Server, token: Option<&str>, body: &PublishBody) -> HttpResponse {
    server
        .http("PUT", &body.path())
        .maybe_bearer(token)
        .json(&body.to_json(server.url()))
        .send()
}

/// `GET /{escaped name}` (full packument), optionally authenticated.
pub fn packument(server: &Server, name: &str, token: Option<&str>) -> HttpResponse {
    server
        .http("GET", &format!("/{}", escaped_name(name)))
        .header("accept", "application/json")
        .maybe_bearer(token)
        .send()
}

/// The full packument as JSON; panics unless it is 200.
#[track_caller]
pub fn packument_json(server: &Server, name: &str) -> Value {
    let r = packument(server, name, None);
    r.assert_status(200);
    r.json()
}

/// Panics unless the registry has no packument for `name`.
#[track_caller]
pub fn assert_not_stored(server: &Server, name: &str) {
    let r = packument(server, name, None);
    assert_eq!(
        r.status, 404,
        "nothing should be stored for {name:?}, got: {r:?}"
    );
}

/// Panics unless the response has `status` and a JSON `error`; returns the message.
#[track_caller]
pub fn assert_error(r: &HttpResponse, status: u16) -> String {
    assert_eq!(
        r.status, status,
        "expected {status} with an error body: {r:?}"
    );
    r.error_message()
}

/// Panics unless the response is a 4xx with a JSON `error` body; returns the message.
#[track_caller]
pub fn assert_client_error(r: &HttpResponse) -> String {
    assert!((400..500).contains(&r.status), "expected a 4xx: {r:?}");
    r.error_message()
}

/// Downloads `dist.tarball` of `name@version` from the packument and checks it against
/// `dist.integrity` and `dist.shasum`; returns the bytes.
#[track_caller]
pub fn download_verified(server: &Server, name: &str, version: &str) -> Vec<u8> {
    let doc = packument_json(server, name);
    let dist = &doc["versions"][version]["dist"];
    let url = dist["tarball"]
        .as_str()
        .unwrap_or_else(|| panic!("no dist.tarball for {name}@{version}: {doc:#}"));
    let path = path_of(server, url);
    let r = server.get(&path);
    r.assert_status(200);
    assert_eq!(
        airlock_testkit::integrity_of(&r.body),
        dist["integrity"].as_str().unwrap_or_default(),
        "tarball bytes must match dist.integrity"
    );
    assert_eq!(
        airlock_testkit::sha1_hex(&r.body),
        dist["shasum"].as_str().unwrap_or_default(),
        "shasum"
    );
    r.body
}

/// The path part of an absolute URL on this server (panics if it points elsewhere).
#[track_caller]
pub fn path_of(server: &Server, url: &str) -> String {
    let base = server.url().trim_end_matches('/');
    match url.strip_prefix(base) {
        Some(p) => p.to_owned(),
        None => panic!(
            "URL {url:?} does not point at the registry {}",
            server.url()
        ),
    }
}

/// Replaces what changes from run to run so a JSON body can be snapshotted: the registry URL
/// becomes `http://[registry]/`, ISO timestamps `[timestamp]`, tokens `[token]`, `_rev` `[rev]`.
pub fn normalize(server: &Server, value: &Value) -> Value {
    fn walk(v: &Value, url: &str, key: Option<&str>) -> Value {
        match v {
            Value::String(s) if key == Some("_rev") && !s.is_empty() => {
                Value::String("[rev]".into())
            }
            Value::String(s) if is_timestamp(s) => Value::String("[timestamp]".into()),
            // Registry signatures: a key per data directory, a random nonce per signature.
            Value::String(s) if key == Some("keyid") && s.starts_with("SHA256:") => {
                Value::String("[keyid]".into())
            }
            Value::String(s) if key == Some("sig") && s.starts_with("ME") => {
                Value::String("[sig]".into())
            }
            Value::String(s) if s.starts_with("airlock_") => Value::String("[token]".into()),
            Value::String(s) => Value::String(s.replace(url, "http://[registry]/")),
            Value::Array(a) => Value::Array(a.iter().map(|x| walk(x, url, None)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), walk(x, url, Some(k))))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    walk(value, server.url(), None)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
pub fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s.ends_with('Z')
        && b[..4].iter().all(u8::is_ascii_digit)
}

/// The first whitespace-separated word in `text` that starts with `prefix` (trailing punctuation
/// trimmed).
pub fn word_starting_with(text: &str, prefix: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| w.starts_with(prefix))
        .map(|w| w.trim_end_matches(['.', ',', ')', '"', '\'']).to_owned())
}

/// Percent-encodes a package name the way `encodeURIComponent` would, except that a scope's `/`
/// becomes `%2f` like npm's `escapedName`.
pub fn encode_name(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')'
            | b'@' => out.push(b as char),
            b'/' => out.push_str("%2f"),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Version keys of a packument, in document order.
pub fn versions_of(doc: &Value) -> Vec<String> {
    doc["versions"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}
