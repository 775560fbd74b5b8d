//! Accounts and tokens through npm: login (web and legacy), whoami, logout, token, profile.

use std::time::Duration;

use airlock_testkit::{HttpResponse, NpmEnv, Server};
use serde_json::{Value, json};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(60);

/// Fetches the login page at `login_url`, checks it is a form with `username` and `password`, and
/// submits it (hidden fields included) with the given credentials.
fn submit_login_form(server: &Server, login_url: &str, user: &str, password: &str) -> HttpResponse {
    let path = path_of(server, login_url);
    let page = server.get(&path);
    page.assert_status(200);
    let html = page.text();
    assert!(html.contains("<form"), "the login page has a form: {html}");
    assert!(
        html.contains("name=\"username\""),
        "the form has a username field: {html}"
    );
    assert!(
        html.contains("name=\"password\""),
        "the form has a password field: {html}"
    );
    let action =
        attr(&html[html.find("<form").unwrap_or(0)..], "action").map(|a| html_unescape(&a));
    let target = match action.as_deref() {
        None | Some("") => path.clone(),
        Some(a) if a.starts_with("http") => path_of(server, a),
        Some(a) if a.starts_with('/') => a.to_owned(),
        Some(a) => panic!("relative form action {a:?} not supported by this test"),
    };
    let mut fields = vec![
        ("username".to_owned(), user.to_owned()),
        ("password".to_owned(), password.to_owned()),
    ];
    for input in html.split("<input").skip(1) {
        let tag = &input[..input.find('>').unwrap_or(input.len())];
        if attr(tag, "type").as_deref() == Some("hidden")
            && let (Some(name), Some(value)) = (attr(tag, "name"), attr(tag, "value"))
        {
            fields.push((name, html_unescape(&value)));
        }
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect();
    server
        .http("POST", &target)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
        .send()
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
}

#[test]
fn npm_login_web_mode() {
    let server = server();
    server.add_user("alice", "alice-password-1", false);
    let npm = NpmEnv::new(&server);
    let mut run = npm.spawn_npm(&npm.work_dir(), &["login"]);
    let url_prefix = server.url().to_owned();
    // npm prints `Login at:` and the URL on the next line.
    let login_url_in = |t: &str| {
        t.split_once("Login at:")
            .and_then(|(_, rest)| word_starting_with(rest, &url_prefix))
    };
    let out = run
        .wait_for_output(WAIT, |t| login_url_in(t).is_some())
        .unwrap_or_else(|e| panic!("npm login printed no login URL: {e:#}"));
    let login_url = login_url_in(&out).expect("login url");
    assert_ne!(
        login_url,
        server.url(),
        "the login URL is a page of its own"
    );
    let r = submit_login_form(&server, &login_url, "alice", "alice-password-1");
    assert!(
        r.status < 400,
        "submitting the right password succeeds: {r:?}"
    );
    let out = run.wait_timeout(WAIT);
    out.assert_ok();
    out.assert_contains(&format!("Logged in on {}", server.url()));
    let token = npm
        .stored_token()
        .unwrap_or_else(|| panic!("no token stored: {}", npm.read_userconfig()));
    assert!(token.starts_with("airlock_"), "{token}");
    let who = npm.npm(&["whoami"]);
    who.assert_ok();
    assert_eq!(who.stdout.trim(), "alice");
}

#[test]
fn web_login_flow_over_http() {
    let server = server();
    server.add_user("alice", "alice-password-1", false);
    let r = server.http("POST", "/-/v1/login").json(&json!({})).send();
    r.assert_status(200);
    let body = r.json();
    let login_url = body["loginUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("loginUrl: {body:#}"))
        .to_owned();
    let done_url = body["doneUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("doneUrl: {body:#}"))
        .to_owned();
    assert!(
        login_url.starts_with(server.url()) && done_url.starts_with(server.url()),
        "{body:#}"
    );
    let done_path = path_of(&server, &done_url);

    // Not yet logged in: 202 with a JSON body and retry-after.
    let poll = server.http("GET", &done_path).send();
    poll.assert_status(202);
    let _: Value = poll.json();
    let retry = poll
        .header("retry-after")
        .unwrap_or_else(|| panic!("202 needs retry-after: {poll:?}"));
    assert!(
        retry.parse::<u32>().is_ok_and(|s| s >= 1),
        "retry-after in whole seconds ≥ 1: {retry}"
    );

    // A wrong password does not complete the login.
    let bad = submit_login_form(&server, &login_url, "alice", "wrong-password");
    assert!(
        bad.status != 302 && bad.status != 303,
        "wrong password must not redirect to success: {bad:?}"
    );
    server.http("GET", &done_path).send().assert_status(202);

    // The right one does, once.
    let good = submit_login_form(&server, &login_url, "alice", "alice-password-1");
    assert!(good.status < 400, "{good:?}");
    let done = server.http("GET", &done_path).send();
    done.assert_status(200);
    let token = done.json()["token"]
        .as_str()
        .unwrap_or_else(|| panic!("token in {done:?}"))
        .to_owned();
    let who = server.http("GET", "/-/whoami").bearer(&token).send();
    who.assert_status(200);
    assert_eq!(who.json()["username"], "alice");

    // The token is handed out once: whoever polls the doneUrl later gets nothing.
    let again = server.http("GET", &done_path).send();
    assert!(
        !again.text().contains(&token),
        "the doneUrl must not hand the token out twice: {again:?}"
    );
    // And the login page cannot be used again.
    let reuse = server
        .http("POST", &path_of(&server, &login_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=alice&password=alice-password-1")
        .send();
    let after = server.http("GET", &done_path).send();
    assert!(
        !after.text().contains("airlock_"),
        "a used login link mints no new token: {reuse:?} {after:?}"
    );
}

#[test]
fn passwords_and_tokens_are_not_stored_in_clear() {
    let server = server();
    let password = "a-Very-Distinctive-Password-7731";
    server.add_user("alice", password, false);
    let token = server.create_token("alice");
    let r = server
        .http("PUT", "/-/user/org.couchdb.user:alice")
        .json(&json!({
            "_id": "org.couchdb.user:alice", "name": "alice", "password": password,
            "type": "user", "roles": [], "date": "2026-01-01T00:00:00.000Z"
        }))
        .send();
    let login_token = r.json()["token"].as_str().expect("token").to_owned();
    // Everything under the data dir (database, WAL, blobs) as bytes.
    let mut haystack = Vec::new();
    collect_bytes(server.data_dir(), &mut haystack);
    assert!(!haystack.is_empty());
    let contains = |needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(password.as_bytes()),
        "the password is stored in clear"
    );
    assert!(
        !contains(token.as_bytes()),
        "a CLI token is stored in clear"
    );
    assert!(
        !contains(login_token.as_bytes()),
        "a login token is stored in clear"
    );
    assert!(
        contains(b"$argon2id$"),
        "passwords are hashed with argon2id (PHC string)"
    );
}

fn collect_bytes(dir: &std::path::Path, out: &mut Vec<u8>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_bytes(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.extend_from_slice(&bytes);
        }
    }
}

#[test]
fn a_token_with_a_broken_checksum_is_refused() {
    let server = server();
    server.add_user("alice", "alice-password-1", false);
    let token = server.create_token("alice");
    // Flip the last character: same prefix, wrong checksum.
    let mut broken = token.clone();
    let last = broken.pop().expect("non-empty");
    broken.push(if last == 'a' { 'b' } else { 'a' });
    let r = server.http("GET", "/-/whoami").bearer(&broken).send();
    assert_error(&r, 401);
    server
        .http("GET", "/-/whoami")
        .bearer(&token)
        .send()
        .assert_status(200);
}

#[test]
fn npm_login_legacy_mode() {
    let server = server();
    server.add_user("alice", "alice-password-1", false);
    let npm = NpmEnv::new(&server);
    let mut run = npm.spawn_npm_tty(&npm.work_dir(), &["login", "--auth-type=legacy"]);
    run.wait_for_text("Username:", WAIT)
        .unwrap_or_else(|e| panic!("{e:#}"));
    run.write_stdin(b"alice\r");
    run.wait_for_text("Password:", WAIT)
        .unwrap_or_else(|e| panic!("{e:#}"));
    run.write_stdin(b"alice-password-1\r");
    let out = run.wait_timeout(WAIT);
    out.assert_ok();
    out.assert_contains("Logged in");
    let token = npm
        .stored_token()
        .unwrap_or_else(|| panic!("no token stored: {out:?}\n{}", npm.read_userconfig()));
    assert!(token.starts_with("airlock_"));
    let who = npm.npm(&["whoami"]);
    who.assert_ok();
    assert_eq!(who.stdout.trim(), "alice");
}

#[test]
fn legacy_login_with_a_wrong_password_is_refused() {
    let server = server();
    server.add_user("alice", "alice-password-1", false);
    let r = server
        .http("PUT", "/-/user/org.couchdb.user:alice")
        .json(&json!({
            "_id": "org.couchdb.user:alice", "name": "alice", "password": "not-her-password",
            "type": "user", "roles": [], "date": "2026-01-01T00:00:00.000Z"
        }))
        .send();
    let msg = assert_error(&r, 401);
    assert!(!r.text().contains("airlock_"), "no token on failure: {msg}");
}

#[test]
fn legacy_login_returns_a_working_token() {
    let server = server();
    server.add_user("alice", "alice-password-1", false);
    let r = server
        .http("PUT", "/-/user/org.couchdb.user:alice")
        .json(&json!({
            "_id": "org.couchdb.user:alice", "name": "alice", "password": "alice-password-1",
            "type": "user", "roles": [], "date": "2026-01-01T00:00:00.000Z"
        }))
        .send();
    assert!(r.status == 200 || r.status == 201, "{r:?}");
    let token = r.json()["token"]
        .as_str()
        .unwrap_or_else(|| panic!("token: {r:?}"))
        .to_owned();
    server
        .http("GET", "/-/whoami")
        .bearer(&token)
        .send()
        .assert_status(200);
}

#[test]
fn npm_whoami() {
    let w = world();
    let out = w.npm.npm(&["whoami"]);
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "alice");
    let r = w.server.http("GET", "/-/whoami").bearer(&w.alice).send();
    r.assert_status(200);
    insta::assert_json_snapshot!("whoami", r.json());
}

#[test]
fn whoami_without_a_valid_token_is_401() {
    let server = server();
    let anon = server.get("/-/whoami");
    assert_error(&anon, 401);
    let bogus = server
        .http("GET", "/-/whoami")
        .bearer("airlock_notarealtoken0000000000")
        .send();
    let msg = assert_error(&bogus, 401);
    assert!(!msg.is_empty());
    insta::assert_json_snapshot!("error_whoami_bad_token", bogus.json());
}

#[test]
fn npm_logout_revokes_the_token() {
    let w = world();
    let out = w.npm.npm(&["logout"]);
    out.assert_ok();
    assert_eq!(
        w.npm.stored_token(),
        None,
        "npm removed the token: {}",
        w.npm.read_userconfig()
    );
    let r = w.server.http("GET", "/-/whoami").bearer(&w.alice).send();
    assert_error(&r, 401);
}

fn token_keys(server: &Server, token: &str) -> Vec<String> {
    let r = server.http("GET", "/-/npm/v1/tokens").bearer(token).send();
    r.assert_status(200);
    let body = r.json();
    let objects = body["objects"]
        .as_array()
        .unwrap_or_else(|| panic!("objects: {body:#}"));
    assert_eq!(
        body["total"].as_u64(),
        Some(objects.len() as u64),
        "total counts the tokens: {body:#}"
    );
    objects
        .iter()
        .map(|o| o["key"].as_str().expect("key").to_owned())
        .collect()
}

#[test]
fn npm_token_create_list_revoke() {
    let w = world();
    let before = token_keys(&w.server, &w.alice);
    assert_eq!(before.len(), 1);
    let created = w.npm.npm(&[
        "token",
        "create",
        &format!("--password={}", password_of("alice")),
        "--name=ci",
    ]);
    created.assert_ok();
    let new_token = word_starting_with(&created.stdout, "airlock_")
        .unwrap_or_else(|| panic!("npm prints the new token: {created:?}"));
    w.server
        .http("GET", "/-/whoami")
        .bearer(&new_token)
        .send()
        .assert_status(200);

    let after = token_keys(&w.server, &w.alice);
    assert_eq!(after.len(), 2, "the original and the new token");
    let new_key = after
        .iter()
        .find(|k| !before.contains(k))
        .expect("new key")
        .clone();
    let listed = w.npm.npm(&["token", "list"]);
    listed.assert_ok();
    for key in &after {
        assert!(
            listed.stdout.contains(&key[..6]),
            "npm token list shows id {key}: {listed:?}"
        );
    }

    // Revoke the new one by an id (a key prefix), as npm users do.
    let revoked = w.npm.npm(&["token", "revoke", &new_key[..10]]);
    revoked.assert_ok();
    w.server
        .http("GET", "/-/whoami")
        .bearer(&new_token)
        .send()
        .assert_status(401);
    w.server
        .http("GET", "/-/whoami")
        .bearer(&w.alice)
        .send()
        .assert_status(200);
    assert_eq!(token_keys(&w.server, &w.alice), before);
    let listed = w.npm.npm(&["token", "list"]);
    listed.assert_ok();
    assert!(!listed.stdout.contains(&new_key[..10]), "{listed:?}");
}

#[test]
fn token_list_shape() {
    let w = world();
    let r = w
        .server
        .http("GET", "/-/npm/v1/tokens")
        .bearer(&w.alice)
        .send();
    r.assert_status(200);
    let mut body = normalize(&w.server, &r.json());
    let key = body["objects"][0]["key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        key.len() >= 16 && key.chars().all(|c| c.is_ascii_hexdigit()),
        "key is hex: {key}"
    );
    body["objects"][0]["key"] = json!("[key]");
    insta::assert_json_snapshot!("token_list", body);
}

#[test]
fn read_only_token_from_the_api_cannot_publish() {
    let w = world();
    let r = w
        .server
        .http("POST", "/-/npm/v1/tokens")
        .bearer(&w.alice)
        .json(&json!({"password": password_of("alice"), "readonly": true, "cidr_whitelist": []}))
        .send();
    assert!(r.status == 200 || r.status == 201, "{r:?}");
    let body = r.json();
    let ro = body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("token: {body:#}"))
        .to_owned();
    assert_eq!(body["readonly"], true, "{body:#}");
    w.server
        .http("GET", "/-/whoami")
        .bearer(&ro)
        .send()
        .assert_status(200);
    let p = publish_raw(
        &w.server,
        Some(&ro),
        &airlock_testkit::PublishBody::new("ro-pkg", "1.0.0"),
    );
    assert_error(&p, 403);
    assert_not_stored(&w.server, "ro-pkg");
}

#[test]
fn token_create_needs_the_password() {
    let w = world();
    let r = w
        .server
        .http("POST", "/-/npm/v1/tokens")
        .bearer(&w.alice)
        .json(&json!({"name": null, "password": "wrong-password"}))
        .send();
    assert_client_error(&r);
    assert!(!r.text().contains("airlock_"), "{r:?}");
}

#[test]
fn cidr_whitelist_is_honoured() {
    let w = world();
    let pw = format!("--password={}", password_of("alice"));
    let outside = w.npm.npm(&["token", "create", &pw, "--cidr=10.0.0.0/8"]);
    outside.assert_ok();
    outside.assert_contains("10.0.0.0/8");
    let outside =
        word_starting_with(&outside.stdout, "airlock_").unwrap_or_else(|| panic!("{outside:?}"));
    let r = w.server.http("GET", "/-/whoami").bearer(&outside).send();
    assert_client_error(&r);
    let p = publish_raw(
        &w.server,
        Some(&outside),
        &airlock_testkit::PublishBody::new("cidr-pkg", "1.0.0"),
    );
    assert_client_error(&p);
    assert_not_stored(&w.server, "cidr-pkg");

    let inside = w.npm.npm(&["token", "create", &pw, "--cidr=127.0.0.0/8"]);
    inside.assert_ok();
    let inside =
        word_starting_with(&inside.stdout, "airlock_").unwrap_or_else(|| panic!("{inside:?}"));
    w.server
        .http("GET", "/-/whoami")
        .bearer(&inside)
        .send()
        .assert_status(200);
}

#[test]
fn npm_profile_get() {
    let w = world();
    let out = w.npm.npm(&["profile", "get"]);
    out.assert_ok();
    out.assert_contains("alice");
    out.assert_contains("alice@example.com");
    let r = w
        .server
        .http("GET", "/-/npm/v1/user")
        .bearer(&w.alice)
        .send();
    r.assert_status(200);
    let body = normalize(&w.server, &r.json());
    insta::assert_json_snapshot!("profile", body);
}
