use std::time::Duration;

use airlock_testkit::PublishBody;
use airlock_trust::{TOTP_STEP_SECS, TotpSecret};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::app::{Req, TestApp};

/// The code for the current step of `TestApp`'s clock (start of the test plus whatever was
/// advanced).
pub(crate) fn code_now(app: &TestApp, secret: &TotpSecret) -> String {
    let now = app.registry_now();
    secret.code_at_step(now / TOTP_STEP_SECS)
}

/// Runs npm's enable-2fa exchange for `alice`; returns the secret and the recovery codes.
async fn enable(app: &TestApp, token: &str, mode: &str) -> (TotpSecret, Vec<String>) {
    enable_for(app, "alice", token, mode).await
}

/// Runs npm's enable-2fa exchange for `user` (created by `TestApp::user`, so their password is
/// `<user>-password`); returns the secret and the recovery codes. The step of the current
/// code is used up by the enrolment.
pub(crate) async fn enable_for(
    app: &TestApp,
    user: &str,
    token: &str,
    mode: &str,
) -> (TotpSecret, Vec<String>) {
    let password = format!("{user}-password");
    let r = app
        .send(
            Req::new(Method::POST, "/-/npm/v1/user")
                .token(token)
                .json(&json!({ "tfa": { "mode": mode, "password": password } })),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let uri = r.json()["tfa"]
        .as_str()
        .expect("an otpauth:// URI")
        .to_owned();
    assert!(
        uri.starts_with(&format!("otpauth://totp/Airlock:{user}?secret=")),
        "{uri}"
    );
    let secret = uri
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("a secret in the URI");
    let secret = TotpSecret::from_base32(secret).expect("a base32 secret");
    let profile = app
        .send(Req::get("/-/npm/v1/user").token(token))
        .await
        .json();
    assert_eq!(profile["tfa"], json!({ "pending": true, "mode": mode }));

    let wrong = app
        .send(
            Req::new(Method::POST, "/-/npm/v1/user")
                .token(token)
                .json(&json!({ "tfa": ["000000"] })),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let r = app
        .send(
            Req::new(Method::POST, "/-/npm/v1/user")
                .token(token)
                .json(&json!({ "tfa": [code_now(app, &secret)] })),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let codes: Vec<String> =
        serde_json::from_value(r.json()["tfa"].clone()).expect("recovery codes");
    assert_eq!(codes.len(), 10);
    let profile = app
        .send(Req::get("/-/npm/v1/user").token(token))
        .await
        .json();
    assert_eq!(profile["tfa"], json!({ "pending": false, "mode": mode }));
    (secret, codes)
}

fn next_step(app: &TestApp) {
    app.advance(Duration::from_secs(TOTP_STEP_SECS));
}

#[tokio::test]
async fn auth_and_writes_challenges_every_write() {
    let app = TestApp::new().await;
    let token = app.user("alice").await;
    let (secret, codes) = enable(&app, &token, "auth-and-writes").await;
    next_step(&app);

    let body = PublishBody::new("otp-demo", "1.0.0");
    let challenged = app.publish(&token, &body).await;
    assert_eq!(challenged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenged.header("www-authenticate"), Some("OTP"));
    let challenge = challenged.json();
    assert!(
        challenge["authUrl"]
            .as_str()
            .unwrap()
            .starts_with("http://registry.test/-/web/otp/")
    );
    assert!(
        challenge["doneUrl"]
            .as_str()
            .unwrap()
            .starts_with("http://registry.test/-/v1/done?otpId=")
    );
    assert_eq!(
        app.packument("otp-demo").await.status,
        StatusCode::NOT_FOUND,
        "nothing stored without the code"
    );

    let code = code_now(&app, &secret);
    let with_otp = |body: &PublishBody, code: &str| {
        Req::new(Method::PUT, &body.path())
            .token(&token)
            .header("npm-otp", code)
            .json(&body.to_json(crate::app::BASE))
    };
    assert_eq!(
        app.send(with_otp(&body, &code)).await.status,
        StatusCode::CREATED
    );
    // The same code again, for another write, is a replay.
    let replay = app
        .send(with_otp(&PublishBody::new("otp-demo", "1.1.0"), &code))
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    insta::assert_snapshot!(replay.error(), @"that authenticator code was already used: wait for the next code and try again");
    assert_eq!(replay.header("www-authenticate"), None);

    // A recovery code works once.
    let recovery = &codes[0];
    assert_eq!(
        app.send(with_otp(&PublishBody::new("otp-demo", "1.1.0"), recovery))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.send(with_otp(&PublishBody::new("otp-demo", "1.2.0"), recovery))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // Reads never need it.
    assert_eq!(
        app.send(Req::get("/otp-demo").token(&token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn auth_only_leaves_writes_alone_but_guards_login() {
    let app = TestApp::new().await;
    let token = app.user("alice").await;
    let (secret, _) = enable(&app, &token, "auth-only").await;
    next_step(&app);
    app.published(&token, &PublishBody::new("auth-only-demo", "1.0.0"))
        .await;

    let login = |otp: Option<&str>| {
        let req = Req::new(Method::PUT, "/-/user/org.couchdb.user:alice")
            .json(&json!({ "name": "alice", "password": "alice-password" }));
        match otp {
            Some(code) => req.header("npm-otp", code),
            None => req,
        }
    };
    let r = app.send(login(None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), Some("OTP"));
    let r = app.send(login(Some(&code_now(&app, &secret)))).await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn web_otp_answers_a_challenge_in_the_browser() {
    let app = TestApp::new().await;
    let token = app.user("alice").await;
    let (secret, _) = enable(&app, &token, "auth-and-writes").await;
    next_step(&app);
    let body = PublishBody::new("web-otp-demo", "1.0.0");
    let challenge = app.publish(&token, &body).await.json();
    let auth = challenge["authUrl"]
        .as_str()
        .unwrap()
        .strip_prefix("http://registry.test")
        .unwrap()
        .to_owned();
    let done = challenge["doneUrl"]
        .as_str()
        .unwrap()
        .strip_prefix("http://registry.test")
        .unwrap()
        .to_owned();

    assert_eq!(
        app.send(Req::get(&done).token(&token)).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(app.send(Req::get(&auth)).await.status, StatusCode::OK);
    let form = |code: &str| {
        Req::new(Method::POST, &auth)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("otp={code}"))
    };
    assert_eq!(app.send(form("123")).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.send(form(&code_now(&app, &secret))).await.status,
        StatusCode::OK
    );
    let r = app.send(Req::get(&done).token(&token)).await;
    assert_eq!(r.status, StatusCode::OK);
    let one_time: Value = r.json()["token"].clone();
    let one_time = one_time.as_str().unwrap();
    assert!(one_time.starts_with("airlock_otp_"));
    // npm retries with the token as npm-otp: once.
    let put = |v: &str| {
        Req::new(Method::PUT, &PublishBody::new("web-otp-demo", v).path())
            .token(&token)
            .header("npm-otp", one_time)
    };
    assert_eq!(
        app.send(put("1.0.0").json(&body.to_json(crate::app::BASE)))
            .await
            .status,
        StatusCode::CREATED
    );
    let again = PublishBody::new("web-otp-demo", "1.1.0");
    assert_eq!(
        app.send(put("1.1.0").json(&again.to_json(crate::app::BASE)))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.send(Req::get(&done).token(&token)).await.status,
        StatusCode::NOT_FOUND,
        "the token is handed out once"
    );
}

#[tokio::test]
async fn disabling_needs_the_second_factor() {
    let app = TestApp::new().await;
    let token = app.user("alice").await;
    let (secret, _) = enable(&app, &token, "auth-and-writes").await;
    next_step(&app);
    let disable = Req::new(Method::POST, "/-/npm/v1/user")
        .token(&token)
        .json(&json!({ "tfa": { "mode": "disable", "password": "alice-password" } }));
    assert_eq!(app.send(disable).await.status, StatusCode::UNAUTHORIZED);
    let wrong_password = Req::new(Method::POST, "/-/npm/v1/user")
        .token(&token)
        .header("npm-otp", &code_now(&app, &secret))
        .json(&json!({ "tfa": { "mode": "disable", "password": "nope-nope" } }));
    assert_eq!(
        app.send(wrong_password).await.status,
        StatusCode::UNAUTHORIZED
    );
    let disable = Req::new(Method::POST, "/-/npm/v1/user")
        .token(&token)
        .header("npm-otp", &code_now(&app, &secret))
        .json(&json!({ "tfa": { "mode": "disable", "password": "alice-password" } }));
    let r = app.send(disable).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["tfa"], false);
    app.published(&token, &PublishBody::new("free-again", "1.0.0"))
        .await;
}
