//! The admin CLI on the data directory of a running server.

use airlock_testkit::{NpmEnv, ServerOptions};
use serde_json::json;

use crate::common::*;

#[test]
fn user_add_and_list_work_while_serving() {
    let server = server();
    server.add_user("root", "root-password-1", true);
    server.add_user("bob", "bob-password-1", false);
    let out = server.admin(&["user", "list"], None);
    out.assert_ok();
    assert!(out.stdout.contains("root"), "{out:?}");
    assert!(out.stdout.contains("bob"), "{out:?}");
    assert!(
        out.stdout.contains("bob@example.com"),
        "user list shows emails: {out:?}"
    );
    // The running server sees users added behind its back.
    let token = server.create_token("bob");
    let r = server.http("GET", "/-/whoami").bearer(&token).send();
    r.assert_status(200);
    assert_eq!(r.json(), json!({"username": "bob"}));
}

#[test]
fn user_add_refuses_a_duplicate_name() {
    let server = server();
    server.add_user("bob", "bob-password-1", false);
    let out = server.admin(
        &[
            "user",
            "add",
            "bob",
            "--email",
            "other@example.com",
            "--password-stdin",
        ],
        Some("pw-2\n"),
    );
    out.assert_failed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused request exits 1: {out:?}"
    );
    assert!(
        out.stderr.contains("error:"),
        "errors read `error: ...`: {out:?}"
    );
}

#[test]
fn token_create_prints_only_the_token() {
    let server = server();
    server.add_user("alice", "alice-password-1", false);
    let out = server.admin(&["token", "create", "alice"], None);
    out.assert_ok();
    assert_eq!(out.stdout.lines().count(), 1, "exactly one line: {out:?}");
    let token = out.stdout.trim();
    assert!(token.starts_with("airlock_") && token.len() > 20, "{out:?}");
    let r = server.http("GET", "/-/whoami").bearer(token).send();
    r.assert_status(200);
    assert_eq!(r.json()["username"], "alice");
}

#[test]
fn token_create_for_unknown_user_fails() {
    let server = server();
    let out = server.admin(&["token", "create", "nobody"], None);
    out.assert_failed();
    assert!(
        !out.stdout.contains("airlock_"),
        "no token printed: {out:?}"
    );
}

#[test]
fn token_revoke_by_key_prefix_stops_the_token() {
    let server = server();
    server.add_user("alice", "alice-password-1", false);
    let keep = server.create_token("alice");
    let keys = |token: &str| -> Vec<String> {
        let r = server.http("GET", "/-/npm/v1/tokens").bearer(token).send();
        r.assert_status(200);
        let list = r.json();
        let objects = list["objects"]
            .as_array()
            .unwrap_or_else(|| panic!("objects array: {list:#}"));
        objects
            .iter()
            .map(|o| o["key"].as_str().expect("key").to_owned())
            .collect()
    };
    let before = keys(&keep);
    assert_eq!(before.len(), 1);
    let doomed = server.create_token("alice");
    let after = keys(&keep);
    assert_eq!(after.len(), 2);
    let key = after
        .iter()
        .find(|k| !before.contains(k))
        .expect("the new token's key");
    let out = server.admin(&["token", "revoke", &key[..8]], None);
    out.assert_ok();
    server
        .http("GET", "/-/whoami")
        .bearer(&doomed)
        .send()
        .assert_status(401);
    server
        .http("GET", "/-/whoami")
        .bearer(&keep)
        .send()
        .assert_status(200);
}

#[test]
fn sign_up_is_closed_by_default() {
    let server = server();
    let r = server
        .http("PUT", "/-/user/org.couchdb.user:mallory")
        .json(&json!({
            "_id": "org.couchdb.user:mallory", "name": "mallory", "password": "mallory-pw-123",
            "email": "mallory@example.com", "type": "user", "roles": [], "date": "2026-01-01T00:00:00.000Z"
        }))
        .send();
    assert_client_error(&r);
    assert!(
        r.json().get("token").is_none(),
        "no token for an unknown user: {r:?}"
    );
    let out = server.admin(&["user", "list"], None);
    out.assert_ok();
    assert!(
        !out.stdout.contains("mallory"),
        "no account was created: {out:?}"
    );
}

#[test]
fn open_signup_lets_npm_adduser_create_an_account() {
    let server = server_with(ServerOptions::new().config("open_signup = true\n"));
    let npm = NpmEnv::new(&server);
    let mut run = npm.spawn_npm_tty(&npm.work_dir(), &["adduser", "--auth-type=legacy"]);
    let wait = std::time::Duration::from_secs(60);
    run.wait_for_text("Username:", wait)
        .unwrap_or_else(|e| panic!("{e:#}"));
    run.write_stdin(b"carol\r");
    run.wait_for_text("Password:", wait)
        .unwrap_or_else(|e| panic!("{e:#}"));
    run.write_stdin(b"carol-password-1\r");
    run.wait_for_text("Email", wait)
        .unwrap_or_else(|e| panic!("{e:#}"));
    run.write_stdin(b"carol@example.com\r");
    let out = run.wait_timeout(wait);
    out.assert_ok();
    let token = npm
        .stored_token()
        .unwrap_or_else(|| panic!("npm stored no token: {out:?}\n{}", npm.read_userconfig()));
    assert!(token.starts_with("airlock_"));
    let who = npm.npm(&["whoami"]);
    who.assert_ok();
    assert_eq!(who.stdout.trim(), "carol");
}
