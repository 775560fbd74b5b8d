//! Webhooks over HTTP: owners subscribe a URL to a package's or a scope's release events; the
//! delivery worker (`Registry::deliver_webhooks`, driven here by hand with a capturing client)
//! POSTs them signed, retries with backoff, and never sits on a request's path.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_registry::{
    DeliveryRound, MAX_DELIVERY_ATTEMPTS, WebhookClient, WebhookRequest, WebhookSendError,
};
use airlock_testkit::{PublishBody, escaped_name};
use airlock_trust::{TOTP_STEP_SECS, TotpSecret};
use axum::http::{Method, StatusCode};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::app::{BASE, Req, Response, TestApp};
use crate::second_factor::{code_now, enable_for};

/// Records every POST and answers with a set status.
struct Capture {
    requests: Mutex<Vec<WebhookRequest>>,
    status: AtomicU16,
}

impl Capture {
    fn answering(status: u16) -> Arc<Capture> {
        Arc::new(Capture {
            requests: Mutex::new(Vec::new()),
            status: AtomicU16::new(status),
        })
    }

    fn take(&self) -> Vec<WebhookRequest> {
        std::mem::take(&mut *self.requests.lock().expect("capture lock"))
    }
}

impl WebhookClient for Capture {
    fn post(&self, request: WebhookRequest) -> BoxFuture<'_, Result<u16, WebhookSendError>> {
        self.requests.lock().expect("capture lock").push(request);
        let status = self.status.load(Ordering::SeqCst);
        Box::pin(async move { Ok(status) })
    }
}

/// A receiver that never answers; it says when a request reached it.
struct Stalled {
    reached: Notify,
}

impl WebhookClient for Stalled {
    fn post(&self, _request: WebhookRequest) -> BoxFuture<'_, Result<u16, WebhookSendError>> {
        self.reached.notify_one();
        Box::pin(futures::future::pending())
    }
}

/// HMAC-SHA256 written out (RFC 2104), to check the registry's signatures independently.
fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}

fn header<'a>(request: &'a WebhookRequest, name: &str) -> &'a str {
    request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {:?}", request.headers))
}

fn body_json(request: &WebhookRequest) -> Value {
    serde_json::from_slice(&request.body).expect("a webhook body is JSON")
}

/// Checks the headers every delivery carries and its signature under `secret`.
#[track_caller]
fn assert_signed(request: &WebhookRequest, secret: &str) {
    assert_eq!(header(request, "content-type"), "application/json");
    assert!(!header(request, "x-airlock-delivery").is_empty());
    assert_eq!(
        header(request, "x-airlock-signature"),
        format!("sha256={}", hmac_sha256(secret.as_bytes(), &request.body)),
        "the signature must be HMAC-SHA256 of the exact body under the hook's secret"
    );
    assert_eq!(
        header(request, "x-airlock-event"),
        body_json(request)["event"]
    );
}

#[track_caller]
fn assert_status(r: &Response, status: StatusCode) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
}

async fn create_hook(app: &TestApp, token: &str, spec: &Value) -> Response {
    app.send(
        Req::new(Method::POST, "/-/airlock/v1/hooks")
            .token(token)
            .json(spec),
    )
    .await
}

/// Creates a hook and returns `(id, secret)`.
async fn hook(app: &TestApp, token: &str, target: &str, url: &str) -> (String, String) {
    let r = create_hook(app, token, &json!({ "target": target, "url": url })).await;
    assert_status(&r, StatusCode::CREATED);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(v["target"], target);
    let secret = v["secret"]
        .as_str()
        .expect("the secret is shown at creation")
        .to_owned();
    assert_eq!(
        secret.len(),
        64,
        "a generated secret is 32 random bytes in hex"
    );
    (v["id"].as_str().expect("a hook id").to_owned(), secret)
}

async fn hooks_of(app: &TestApp, token: &str, target: &str) -> Response {
    app.send(
        Req::get(&format!(
            "/-/airlock/v1/hooks?target={}",
            target.replace('/', "%2F")
        ))
        .token(token),
    )
    .await
}

async fn stage(app: &TestApp, token: &str, body: &PublishBody) -> String {
    let r = app
        .send(
            Req::new(
                Method::POST,
                &format!("/-/stage/package/{}", escaped_name(&body.name)),
            )
            .token(token)
            .json(&body.to_json(BASE)),
        )
        .await;
    assert_status(&r, StatusCode::CREATED);
    r.json()["stageId"].as_str().expect("a stage id").to_owned()
}

/// Enrols alice's authenticator (auth-only: approvals still need a code) and moves past the
/// step the enrolment used up.
async fn authenticator(app: &TestApp, token: &str) -> TotpSecret {
    let secret = enable_for(app, "alice", token, "auth-only").await.0;
    app.advance(Duration::from_secs(TOTP_STEP_SECS));
    secret
}

async fn approve(app: &TestApp, token: &str, id: &str, secret: &TotpSecret) -> Response {
    app.send(
        Req::new(Method::POST, &format!("/-/stage/{id}/approve"))
            .token(token)
            .header("npm-otp", &code_now(app, secret)),
    )
    .await
}

#[tokio::test]
async fn a_staged_release_is_announced_signed_with_the_hooks_secret() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("lib", "1.0.0"))
        .await;
    let (hook_id, secret) = hook(&app, &alice, "lib", "https://hooks.example/airlock").await;

    let stage_id = stage(&app, &alice, &PublishBody::new("lib", "1.1.0")).await;
    let capture = Capture::answering(204);
    // The request path queued the delivery; only the worker sends it.
    assert!(capture.take().is_empty());
    let round = app
        .registry
        .deliver_webhooks(capture.as_ref())
        .await
        .unwrap();
    assert_eq!(
        round,
        DeliveryRound {
            delivered: 1,
            ..DeliveryRound::default()
        }
    );

    let sent = capture.take();
    assert_eq!(sent.len(), 1);
    let request = &sent[0];
    assert_eq!(request.url, "https://hooks.example/airlock");
    assert_signed(request, &secret);
    assert_eq!(header(request, "x-airlock-event"), "staged");
    let body = body_json(request);
    assert_eq!(body["event"], "staged");
    assert_eq!(body["package"], "lib");
    assert_eq!(body["version"], "1.1.0");
    assert_eq!(body["stageId"], stage_id);
    assert_eq!(body["actor"], "alice");
    assert_eq!(body["state"], "staged");
    assert_eq!(body["factor"], Value::Null);
    assert_eq!(body["at"], "2027-01-15T08:00:00.000Z");
    assert_eq!(body["sha512"].as_str().unwrap().len(), 128);

    // Delivered once, never again.
    app.advance(Duration::from_secs(3600));
    let round = app
        .registry
        .deliver_webhooks(capture.as_ref())
        .await
        .unwrap();
    assert!(round.is_empty(), "{round:?}");
    assert!(capture.take().is_empty());

    // The list shows the hook and its delivery, never the secret.
    let r = hooks_of(&app, &alice, "lib").await;
    assert_status(&r, StatusCode::OK);
    let listed = r.json();
    let hooks = listed["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["id"], hook_id);
    assert_eq!(hooks[0]["createdBy"], "alice");
    assert!(
        !String::from_utf8_lossy(&r.body).contains(&secret),
        "secrets are shown once: {listed}"
    );
    let delivery = &hooks[0]["deliveries"][0];
    assert_eq!(delivery["id"], header(request, "x-airlock-delivery"));
    assert_eq!(delivery["event"], "staged");
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["nextAttemptAt"], Value::Null);
    assert!(delivery["deliveredAt"].is_string());
}

#[tokio::test]
async fn a_scope_hook_hears_the_approval_that_makes_a_release_live() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("@acme/lib", "1.0.0"))
        .await;
    let secret = "a-secret-chosen-by-the-receiver";
    let r = create_hook(
        &app,
        &alice,
        &json!({ "target": "@acme", "url": "https://hooks.example/acme", "secret": secret }),
    )
    .await;
    assert_status(&r, StatusCode::CREATED);
    assert_eq!(r.json()["secret"], secret);
    let totp = authenticator(&app, &alice).await;

    let capture = Capture::answering(200);
    let id = stage(&app, &alice, &PublishBody::new("@acme/lib", "1.1.0")).await;
    app.registry
        .deliver_webhooks(capture.as_ref())
        .await
        .unwrap();
    assert_eq!(capture.take().len(), 1);

    assert_status(&approve(&app, &alice, &id, &totp).await, StatusCode::OK);
    let round = app
        .registry
        .deliver_webhooks(capture.as_ref())
        .await
        .unwrap();
    assert_eq!(round.delivered, 2);
    let sent = capture.take();
    let events: Vec<&str> = sent.iter().map(|r| header(r, "x-airlock-event")).collect();
    assert_eq!(events, ["approved", "promoted"]);
    for request in &sent {
        assert_signed(request, secret);
        let body = body_json(request);
        assert_eq!(body["package"], "@acme/lib");
        assert_eq!(body["version"], "1.1.0");
        assert_eq!(body["stageId"], id);
        assert_eq!(
            body["factor"], "one-time password",
            "as the gate event records it"
        );
        assert_eq!(body["state"], "live");
    }
    assert_ne!(
        header(&sent[0], "x-airlock-delivery"),
        header(&sent[1], "x-airlock-delivery")
    );
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_backoff_then_given_up() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("lib", "1.0.0"))
        .await;
    let (_, secret) = hook(&app, &alice, "lib", "https://hooks.example/down").await;
    stage(&app, &alice, &PublishBody::new("lib", "1.1.0")).await;
    let capture = Capture::answering(500);

    let first = {
        app.registry
            .deliver_webhooks(capture.as_ref())
            .await
            .unwrap();
        let sent = capture.take();
        assert_eq!(sent.len(), 1);
        sent.into_iter().next().unwrap()
    };
    let waits = [5, 30, 120, 600, 3600, 3600, 3600];
    assert_eq!(waits.len() + 1, MAX_DELIVERY_ATTEMPTS as usize);
    for (attempt, wait) in (2..).zip(waits) {
        app.advance(Duration::from_secs(wait - 1));
        let early = app
            .registry
            .deliver_webhooks(capture.as_ref())
            .await
            .unwrap();
        assert!(early.is_empty(), "attempt {attempt} came early: {early:?}");
        app.advance(Duration::from_secs(1));
        let round = app
            .registry
            .deliver_webhooks(capture.as_ref())
            .await
            .unwrap();
        let sent = capture.take();
        assert_eq!(sent.len(), 1, "attempt {attempt} after {wait} s");
        // The same delivery, the same bytes, the same signature.
        assert_eq!(sent[0].body, first.body);
        assert_eq!(
            header(&sent[0], "x-airlock-delivery"),
            header(&first, "x-airlock-delivery")
        );
        assert_signed(&sent[0], &secret);
        if attempt < MAX_DELIVERY_ATTEMPTS {
            assert_eq!(round.retrying, 1, "{round:?}");
        } else {
            assert_eq!(round.gave_up, 1, "{round:?}");
        }
    }
    app.advance(Duration::from_secs(7 * 86_400));
    assert!(
        app.registry
            .deliver_webhooks(capture.as_ref())
            .await
            .unwrap()
            .is_empty()
    );
    let listed = hooks_of(&app, &alice, "lib").await.json();
    let delivery = &listed["hooks"][0]["deliveries"][0];
    assert_eq!(delivery["attempts"], MAX_DELIVERY_ATTEMPTS);
    assert_eq!(delivery["deliveredAt"], Value::Null);
    assert_eq!(delivery["nextAttemptAt"], Value::Null);
    assert_eq!(delivery["lastError"], "the receiver answered HTTP 500");

    // A receiver that recovers gets the next event at once.
    capture.status.store(200, Ordering::SeqCst);
    stage(&app, &alice, &PublishBody::new("lib", "1.2.0")).await;
    let round = app
        .registry
        .deliver_webhooks(capture.as_ref())
        .await
        .unwrap();
    assert_eq!(round.delivered, 1);
}

#[tokio::test]
async fn a_stalled_receiver_does_not_hold_up_an_approval() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("lib", "1.0.0"))
        .await;
    hook(&app, &alice, "lib", "https://hooks.example/slow").await;
    let totp = authenticator(&app, &alice).await;
    let id = stage(&app, &alice, &PublishBody::new("lib", "1.1.0")).await;

    let stalled = Arc::new(Stalled {
        reached: Notify::new(),
    });
    let worker = {
        let registry = app.registry.clone();
        let stalled = stalled.clone();
        tokio::spawn(async move { registry.deliver_webhooks(stalled.as_ref()).await })
    };
    tokio::time::timeout(Duration::from_secs(10), stalled.reached.notified())
        .await
        .expect("the worker sends the staged event");

    // The worker is stuck on the receiver; the approval does not wait for it.
    let approved = tokio::time::timeout(Duration::from_secs(10), approve(&app, &alice, &id, &totp))
        .await
        .expect("an approval must not wait for webhook receivers");
    assert_status(&approved, StatusCode::OK);
    assert_eq!(approved.json()["state"], "live");
    assert!(!worker.is_finished());
    worker.abort();

    // What the approval queued is still there for the next round.
    let capture = Capture::answering(200);
    app.registry
        .deliver_webhooks(capture.as_ref())
        .await
        .unwrap();
    let events: Vec<String> = capture
        .take()
        .iter()
        .map(|r| header(r, "x-airlock-event").to_owned())
        .collect();
    assert_eq!(events, ["staged", "approved", "promoted"]);
}

#[tokio::test]
async fn only_owners_manage_hooks_and_bad_input_is_refused() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.published(&alice, &PublishBody::new("lib", "1.0.0"))
        .await;
    app.published(&alice, &PublishBody::new("@acme/core", "1.0.0"))
        .await;
    let (id, _) = hook(&app, &alice, "lib", "https://hooks.example/a").await;

    // Not a maintainer of the package nor an owner of the scope.
    let r = create_hook(
        &app,
        &bob,
        &json!({ "target": "lib", "url": "https://evil.example/" }),
    )
    .await;
    assert_status(&r, StatusCode::FORBIDDEN);
    assert!(r.error().contains("webhooks of `lib`"), "{}", r.error());
    let r = create_hook(
        &app,
        &bob,
        &json!({ "target": "@acme", "url": "https://evil.example/" }),
    )
    .await;
    assert_status(&r, StatusCode::FORBIDDEN);
    assert_status(&hooks_of(&app, &bob, "lib").await, StatusCode::FORBIDDEN);
    let r = app
        .send(Req::new(Method::DELETE, &format!("/-/airlock/v1/hooks/{id}")).token(&bob))
        .await;
    assert_status(&r, StatusCode::NOT_FOUND);
    // Anonymous callers are told to log in.
    let r = app
        .send(
            Req::new(Method::POST, "/-/airlock/v1/hooks")
                .json(&json!({ "target": "lib", "url": "https://x.example/" })),
        )
        .await;
    assert_status(&r, StatusCode::UNAUTHORIZED);
    // A package nobody published yet.
    let r = create_hook(
        &app,
        &bob,
        &json!({ "target": "nope", "url": "https://x.example/" }),
    )
    .await;
    assert_status(&r, StatusCode::NOT_FOUND);

    for (spec, needle) in [
        (
            json!({ "target": "lib", "url": "ftp://x.example/" }),
            "https:// or http://",
        ),
        (
            json!({ "target": "lib", "url": "x.example/hook" }),
            "not a valid URL",
        ),
        (
            json!({ "target": "Not A Name", "url": "https://x.example/" }),
            "not a package name or a scope",
        ),
        (
            json!({ "target": "lib", "url": "https://x.example/", "secret": "short" }),
            "secret must be",
        ),
        (json!({ "target": "lib" }), "JSON body like"),
    ] {
        let r = create_hook(&app, &alice, &spec).await;
        assert_status(&r, StatusCode::BAD_REQUEST);
        assert!(r.error().contains(needle), "{spec}: {}", r.error());
    }
    let r = app
        .send(Req::get("/-/airlock/v1/hooks").token(&alice))
        .await;
    assert_status(&r, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("?target="), "{}", r.error());
    let r = app
        .send(Req::new(Method::PUT, "/-/airlock/v1/hooks").token(&alice))
        .await;
    assert_status(&r, StatusCode::METHOD_NOT_ALLOWED);

    // The owner deletes it; its deliveries go with it.
    stage(&app, &alice, &PublishBody::new("lib", "1.1.0")).await;
    let r = app
        .send(Req::new(Method::DELETE, &format!("/-/airlock/v1/hooks/{id}")).token(&alice))
        .await;
    assert_status(&r, StatusCode::OK);
    let listed = hooks_of(&app, &alice, "lib").await.json();
    assert_eq!(listed["hooks"], json!([]));
    let capture = Capture::answering(200);
    assert!(
        app.registry
            .deliver_webhooks(capture.as_ref())
            .await
            .unwrap()
            .is_empty()
    );
    let r = app
        .send(Req::new(Method::DELETE, &format!("/-/airlock/v1/hooks/{id}")).token(&alice))
        .await;
    assert_status(&r, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_auth_and_writes_a_hook_needs_a_code() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    app.published(&alice, &PublishBody::new("lib", "1.0.0"))
        .await;
    let totp = enable_for(&app, "alice", &alice, "auth-and-writes").await.0;
    app.advance(Duration::from_secs(TOTP_STEP_SECS));
    let spec = json!({ "target": "lib", "url": "https://hooks.example/a" });

    let r = create_hook(&app, &alice, &spec).await;
    assert_status(&r, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), Some("OTP"));
    let r = app
        .send(
            Req::new(Method::POST, "/-/airlock/v1/hooks")
                .token(&alice)
                .header("npm-otp", &code_now(&app, &totp))
                .json(&spec),
        )
        .await;
    assert_status(&r, StatusCode::CREATED);
}
