use std::net::IpAddr;
use std::time::Duration;

use airlock_registry::CreateTokenRequest;
use airlock_testkit::PublishBody;
use axum::http::{Method, StatusCode};
use base64::Engine;
use serde_json::json;

use crate::app::{Req, TestApp};

#[tokio::test]
async fn web_login_from_start_to_token() {
    let app = TestApp::new().await;
    app.user("alice").await;
    let start = app
        .send(Req::new(Method::POST, "/-/v1/login").json(&json!({})))
        .await;
    assert_eq!(start.status, StatusCode::OK);
    let start = start.json();
    let login_url = start["loginUrl"].as_str().unwrap();
    let done_url = start["doneUrl"].as_str().unwrap();
    let login_path = login_url.strip_prefix("http://registry.test").unwrap();
    let done_path = done_url.strip_prefix("http://registry.test").unwrap();
    assert!(
        !done_url.contains(login_path.rsplit('/').next().unwrap()),
        "the done secret must not be derivable from the login URL"
    );

    let page = app.send(Req::get(login_path)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(String::from_utf8_lossy(&page.body).contains(r#"name="password""#));

    let pending = app.send(Req::get(done_path)).await;
    assert_eq!(pending.status, StatusCode::ACCEPTED);
    assert_eq!(pending.header("retry-after"), Some("1"));
    assert_eq!(pending.json(), json!({}));

    let form = |pw: &str| {
        Req::new(Method::POST, login_path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("username=alice&password={pw}"))
    };
    let wrong = app.send(form("nope-nope")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&wrong.body).contains("incorrect username or password"));
    assert_eq!(
        app.send(form("alice-password")).await.status,
        StatusCode::OK
    );

    let done = app.send(Req::get(done_path)).await;
    assert_eq!(done.status, StatusCode::OK);
    let token = done.json()["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("airlock_"));
    let who = app.send(Req::get("/-/whoami").token(&token)).await;
    assert_eq!(who.json(), json!({ "username": "alice" }));
    // The done URL hands out its token once.
    assert_eq!(
        app.send(Req::get(done_path)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.send(Req::get(login_path)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn web_logins_expire() {
    let app = TestApp::new().await;
    app.user("alice").await;
    let start = app
        .send(Req::new(Method::POST, "/-/v1/login").json(&json!({})))
        .await
        .json();
    let login_path = start["loginUrl"]
        .as_str()
        .unwrap()
        .strip_prefix("http://registry.test")
        .unwrap()
        .to_owned();
    app.advance(Duration::from_secs(11 * 60));
    let r = app
        .send(
            Req::new(Method::POST, &login_path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("username=alice&password=alice-password"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn legacy_login_and_signup_rules() {
    let app = TestApp::new().await;
    app.user("alice").await;
    let login = |name: &str, body: serde_json::Value| {
        Req::new(Method::PUT, &format!("/-/user/org.couchdb.user:{name}")).json(&body)
    };
    let ok = app
        .send(login(
            "alice",
            json!({ "name": "alice", "password": "alice-password", "type": "user" }),
        ))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert!(ok.json()["token"].as_str().unwrap().starts_with("airlock_"));

    let wrong = app
        .send(login(
            "alice",
            json!({ "name": "alice", "password": "wrong-password" }),
        ))
        .await;
    let unknown = app
        .send(login(
            "nobody",
            json!({ "name": "nobody", "password": "wrong-password" }),
        ))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.error(),
        unknown.error(),
        "unknown users and wrong passwords must look the same"
    );

    let signup = app
        .send(login(
            "newbie",
            json!({ "name": "newbie", "password": "long-enough", "email": "n@example.com" }),
        ))
        .await;
    assert_eq!(signup.status, StatusCode::FORBIDDEN);
    insta::assert_snapshot!(signup.error(), @"sign-up is disabled on this registry: ask an administrator to run `airlock user add`");
    let mismatch = app
        .send(login("alice", json!({ "name": "bob", "password": "x" })))
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn open_signup_creates_accounts() {
    let app = TestApp::with_config(airlock_registry::RegistryConfig {
        open_signup: true,
        ..Default::default()
    })
    .await;
    let r = app
        .send(
            Req::new(Method::PUT, "/-/user/org.couchdb.user:newbie").json(
                &json!({ "name": "newbie", "password": "long-enough", "email": "n@example.com" }),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.send(Req::get("/-/whoami").token(&token)).await.json()["username"],
        "newbie"
    );
    let weak = app
        .send(
            Req::new(Method::PUT, "/-/user/org.couchdb.user:weak")
                .json(&json!({ "name": "weak", "password": "short", "email": "w@example.com" })),
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    let bad_name = app
        .send(
            Req::new(Method::PUT, "/-/user/org.couchdb.user:Bad%20Name").json(
                &json!({ "name": "Bad Name", "password": "long-enough", "email": "w@example.com" }),
            ),
        )
        .await;
    assert_eq!(bad_name.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_tokens_are_refused_everywhere() {
    let app = TestApp::new().await;
    let token = app.user("alice").await;
    for bad in [
        "npm_abc",
        "airlock_short",
        &format!("{}x", &token[..token.len() - 1]),
    ] {
        let r = app.send(Req::get("/-/whoami").token(bad)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    }
    // Revoked through npm logout: gone for good.
    let r = app
        .send(Req::new(Method::DELETE, &format!("/-/user/token/{token}")).token(&token))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.send(Req::get("/-/whoami").token(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.send(Req::get("/-/whoami")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn expired_tokens_stop_working() {
    let app = TestApp::new().await;
    let token = app
        .user_with(
            "alice",
            CreateTokenRequest {
                expires: Some(1),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        app.send(Req::get("/-/whoami").token(&token)).await.status,
        StatusCode::OK
    );
    app.advance(Duration::from_secs(86_401));
    assert_eq!(
        app.send(Req::get("/-/whoami").token(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn cidr_allow_lists_are_enforced() {
    let app = TestApp::new().await;
    let token = app
        .user_with(
            "alice",
            CreateTokenRequest {
                cidr_whitelist: Some(vec!["10.0.0.0/8".into()]),
                ..Default::default()
            },
        )
        .await;
    let inside: IpAddr = [10, 1, 2, 3].into();
    let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
    assert_eq!(
        app.send(Req::get("/-/whoami").token(&token).with_peer(inside))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.send(Req::get("/-/whoami").token(&token).with_peer(mapped))
            .await
            .status,
        StatusCode::OK
    );
    let outside = app.send(Req::get("/-/whoami").token(&token)).await;
    assert_eq!(outside.status, StatusCode::UNAUTHORIZED);
    assert_eq!(outside.header("www-authenticate"), Some("ipaddress"));
    // Even a publish from outside is refused before anything else is looked at.
    let r = app
        .publish(&token, &PublishBody::new("cidr-demo", "1.0.0"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_over_the_npm_api() {
    let app = TestApp::new().await;
    let token = app.user("alice").await;
    let create = |body: serde_json::Value| {
        Req::new(Method::POST, "/-/npm/v1/tokens")
            .token(&token)
            .json(&body)
    };
    let r = app
        .send(create(json!({ "password": "wrong-password" })))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .send(create(
            json!({ "name": null, "password": "alice-password", "cidr_whitelist": ["not-a-cidr"] }),
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .send(create(json!({ "name": "ci", "password": "alice-password", "packages_and_scopes_permission": "read-only", "expires": 30 })))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let created = r.json();
    assert_eq!(created["readonly"], true);
    assert!(created["expires"].is_string());
    let ci = created["token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.publish(&ci, &PublishBody::new("x-demo", "1.0.0"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // A read-only token cannot mint a read-write one.
    let r = app
        .send(
            Req::new(Method::POST, "/-/npm/v1/tokens")
                .token(&ci)
                .json(&json!({ "password": "alice-password" })),
        )
        .await;
    assert_eq!(r.json()["readonly"], true);

    let list = app
        .send(Req::get("/-/npm/v1/tokens").token(&token))
        .await
        .json();
    assert_eq!(list["total"], 3);
    let objects = list["objects"].as_array().unwrap();
    assert!(
        objects
            .iter()
            .all(|o| o["key"].as_str().unwrap().len() == 64
                && o["token"].as_str().unwrap().len() < 20)
    );
    let key = objects.iter().find(|o| o["name"] == "ci").unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.send(Req::new(Method::DELETE, &format!("/-/npm/v1/tokens/token/{key}")).token(&token))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.send(Req::get("/-/whoami").token(&ci)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Someone else's token id is not found, whoever asks.
    let bob = app.user("bob").await;
    let bob_key = app
        .send(Req::get("/-/npm/v1/tokens").token(&bob))
        .await
        .json()["objects"][0]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.send(
            Req::new(Method::DELETE, &format!("/-/npm/v1/tokens/token/{bob_key}")).token(&token)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn basic_auth_and_profile() {
    let app = TestApp::new().await;
    app.user("alice").await;
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:alice-password");
    let r = app
        .send(Req::get("/-/npm/v1/user").header("authorization", &format!("Basic {basic}")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let profile = r.json();
    assert_eq!(profile["name"], "alice");
    assert_eq!(profile["tfa"], false);
    let r = app
        .send(
            Req::new(Method::POST, "/-/npm/v1/user")
                .header("authorization", &format!("Basic {basic}"))
                .json(&json!({ "email": "new@example.com", "fullname": "Alice B", "homepage": null, "github": "alice" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["fullname"], "Alice B");
    assert_eq!(r.json()["email"], "new@example.com");
    let bad = base64::engine::general_purpose::STANDARD.encode("alice:nope");
    assert_eq!(
        app.send(Req::get("/-/npm/v1/user").header("authorization", &format!("Basic {bad}")))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}
