//! The release gate over HTTP: staged publishing (npm's `/-/stage` routes), release policies,
//! N-of-M approvals with second factors, cooling-off with veto, expedite, expiry, the event log,
//! and the promotion job (`Registry::run_due`, driven here by hand on the injectable clock).

use std::cell::Cell;
use std::time::Duration;

use airlock_registry::NewAccount;
use airlock_testkit::{PublishBody, escaped_name};
use airlock_trust::{TOTP_STEP_SECS, TotpSecret};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};
use time::OffsetDateTime;

use crate::app::{BASE, Req, Response, TestApp};
use crate::second_factor::enable_for;

/// A long cooling-off: OTP steps (30 s each) never eat into it by accident.
const HOUR: u64 = 3600;

/// A user with a token and, when enrolled, a TOTP authenticator.
struct Person {
    name: String,
    token: String,
    secret: Option<TotpSecret>,
    /// The last TOTP step this person's codes were handed out for.
    last_step: Cell<u64>,
}

impl Person {
    /// A fresh TOTP code: the earliest step after the last one used that the server accepts
    /// now (it accepts the previous, current and next step). When all three are used up the
    /// clock is moved on to the next step.
    fn otp(&self, app: &TestApp) -> String {
        let secret = self
            .secret
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no authenticator", self.name));
        let now = app.registry_now() / TOTP_STEP_SECS;
        let step = (self.last_step.get() + 1).max(now - 1);
        if step > now + 1 {
            app.advance(Duration::from_secs((step - 1 - now) * TOTP_STEP_SECS));
        }
        self.last_step.set(step);
        secret.code_at_step(step)
    }
}

/// Creates `name` with a token; with `tfa`, enrols a TOTP authenticator in `auth-only` mode
/// (approve, reject and policy changes still need a code; plain writes do not).
async fn person(app: &TestApp, name: &str, tfa: bool) -> Person {
    let token = app.user(name).await;
    let secret = if tfa {
        Some(enable_for(app, name, &token, "auth-only").await.0)
    } else {
        None
    };
    Person {
        name: name.to_owned(),
        token,
        secret,
        // The enrolment used up the current step.
        last_step: Cell::new(app.registry_now() / TOTP_STEP_SECS),
    }
}

fn body_text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[track_caller]
fn assert_status(r: &Response, status: StatusCode) {
    assert_eq!(r.status, status, "{}", body_text(r));
}

/// `ISO` time of the registry clock, as the registry writes it.
fn now_iso(app: &TestApp) -> String {
    let secs = i64::try_from(app.registry_now()).expect("a Unix time");
    let now = OffsetDateTime::from_unix_timestamp(secs).expect("a representable time");
    airlock_store::format_time(now)
}

fn sha512_hex(bytes: &[u8]) -> String {
    hex::encode(Sha512::digest(bytes))
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Publishes `name@1.0.0` directly as `owner` and adds `others` as maintainers (`npm owner add`).
async fn package(app: &TestApp, name: &str, owner: &Person, others: &[&Person]) {
    app.published(&owner.token, &PublishBody::new(name, "1.0.0"))
        .await;
    if others.is_empty() {
        return;
    }
    let doc = app.packument(name).await.json();
    let rev = doc["_rev"].as_str().expect("_rev").to_owned();
    let mut maintainers =
        vec![json!({ "name": owner.name, "email": format!("{}@example.com", owner.name) })];
    maintainers.extend(
        others
            .iter()
            .map(|p| json!({ "name": p.name, "email": format!("{}@example.com", p.name) })),
    );
    let r = app
        .send(
            Req::new(Method::PUT, &format!("/{}/-rev/{rev}", escaped_name(name)))
                .token(&owner.token)
                .json(&json!({ "_id": name, "_rev": rev, "maintainers": maintainers })),
        )
        .await;
    assert!(r.status.is_success(), "owner add: {}", body_text(&r));
}

async fn put_policy(app: &TestApp, who: &Person, subject: &str, policy: &Value) -> Response {
    let code = who.otp(app);
    app.send(
        Req::new(
            Method::PUT,
            &format!("/-/airlock/v1/policy/{}", escaped_name(subject)),
        )
        .token(&who.token)
        .header("npm-otp", &code)
        .json(policy),
    )
    .await
}

/// Sets a policy layer and asserts success.
async fn policy(app: &TestApp, who: &Person, subject: &str, policy: Value) {
    let r = put_policy(app, who, subject, &policy).await;
    assert_status(&r, StatusCode::OK);
}

async fn stage(app: &TestApp, token: &str, body: &PublishBody) -> Response {
    app.send(
        Req::new(
            Method::POST,
            &format!("/-/stage/package/{}", escaped_name(&body.name)),
        )
        .token(token)
        .json(&body.to_json(BASE)),
    )
    .await
}

/// Stages and returns the stage id.
async fn staged(app: &TestApp, token: &str, body: &PublishBody) -> String {
    let r = stage(app, token, body).await;
    assert_status(&r, StatusCode::CREATED);
    let id = r.json()["stageId"].as_str().expect("a stageId").to_owned();
    assert!(is_uuid(&id), "npm only accepts UUID stage ids: {id}");
    id
}

async fn approve_with(app: &TestApp, token: &str, id: &str, otp: Option<&str>) -> Response {
    let mut req = Req::new(Method::POST, &format!("/-/stage/{id}/approve")).token(token);
    if let Some(otp) = otp {
        req = req.header("npm-otp", otp);
    }
    app.send(req).await
}

/// Approves with a fresh code.
async fn approve(app: &TestApp, who: &Person, id: &str) -> Response {
    let code = who.otp(app);
    approve_with(app, &who.token, id, Some(&code)).await
}

async fn reject_with(app: &TestApp, token: &str, id: &str, otp: Option<&str>) -> Response {
    let mut req = Req::new(Method::DELETE, &format!("/-/stage/{id}")).token(token);
    if let Some(otp) = otp {
        req = req.header("npm-otp", otp);
    }
    app.send(req).await
}

async fn reject(app: &TestApp, who: &Person, id: &str) -> Response {
    let code = who.otp(app);
    reject_with(app, &who.token, id, Some(&code)).await
}

async fn view(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app
        .send(Req::get(&format!("/-/stage/{id}")).token(token))
        .await;
    assert_status(&r, StatusCode::OK);
    r.json()
}

/// `[(kind, actor, factor)]` of a stage's events, oldest first; every event carries the staged
/// tarball's sha512.
async fn events(app: &TestApp, token: &str, id: &str, sha512: &str) -> Vec<(String, Value, Value)> {
    let r = app
        .send(Req::get(&format!("/-/stage/{id}/events")).token(token))
        .await;
    assert_status(&r, StatusCode::OK);
    r.json()["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            assert_eq!(
                e["sha512"], sha512,
                "every gate event names the tarball: {e}"
            );
            assert!(e["at"].as_str().is_some_and(|at| at.ends_with('Z')), "{e}");
            (
                e["kind"].as_str().expect("kind").to_owned(),
                e["actor"].clone(),
                e["factor"].clone(),
            )
        })
        .collect()
}

fn ev(kind: &str, actor: Option<&str>, factor: Option<&str>) -> (String, Value, Value) {
    (kind.to_owned(), json!(actor), json!(factor))
}

/// Nobody can see `body`'s version: not in the packument (versions, time, dist-tags), its
/// tarball 404 for anonymous and maintainer alike.
async fn assert_invisible(app: &TestApp, maintainer: &str, body: &PublishBody) {
    let v = &body.version;
    let doc = app.packument(&body.name).await;
    if doc.status == StatusCode::OK {
        let doc = doc.json();
        assert!(doc["versions"].get(v).is_none(), "{v} listed: {doc:#}");
        assert!(doc["time"].get(v).is_none(), "time[{v}] present: {doc:#}");
        assert!(
            doc["dist-tags"]
                .as_object()
                .expect("dist-tags")
                .values()
                .all(|t| t != v.as_str()),
            "a dist-tag points at {v}: {doc:#}"
        );
    } else {
        assert_status(&doc, StatusCode::NOT_FOUND);
    }
    let corgi = app
        .send(
            Req::get(&format!("/{}", escaped_name(&body.name)))
                .header("accept", "application/vnd.npm.install-v1+json"),
        )
        .await;
    if corgi.status == StatusCode::OK {
        assert!(corgi.json()["versions"].get(v).is_none());
    }
    for token in [None, Some(maintainer)] {
        let mut req = Req::get(&body.tarball_path());
        if let Some(t) = token {
            req = req.token(t);
        }
        let r = app.send(req).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "tarball of a version that is not live ({token:?})"
        );
    }
}

/// `body`'s version is public: in the packument with its tag, tarball served with the staged
/// bytes. Returns the packument.
async fn assert_live(app: &TestApp, body: &PublishBody) -> Value {
    let doc = app.packument(&body.name).await;
    assert_status(&doc, StatusCode::OK);
    let doc = doc.json();
    let v = &body.version;
    assert!(doc["versions"].get(v).is_some(), "{v} missing: {doc:#}");
    assert_eq!(doc["dist-tags"][&body.tag], json!(v), "{doc:#}");
    let tarball = app.send(Req::get(&body.tarball_path())).await;
    assert_status(&tarball, StatusCode::OK);
    assert_eq!(tarball.body.as_ref(), body.tarball.as_slice());
    // Signed when it went live, like a direct publish.
    crate::signatures::assert_signed(app, &doc).await;
    doc
}

#[tokio::test]
async fn a_staged_release_is_invisible_until_approved_and_dated_when_it_goes_live() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    package(&app, "gated", &alice, &[]).await;
    policy(&app, &alice, "gated", json!({ "publish": "staged" })).await;

    app.advance(Duration::from_secs(60));
    let staged_at = now_iso(&app);
    let body = PublishBody::new("gated", "1.1.0");
    // Staging needs no second factor.
    let id = staged(&app, &alice.token, &body).await;
    assert_invisible(&app, &alice.token, &body).await;

    let item = view(&app, &alice.token, &id).await;
    assert_eq!(item["id"], id);
    assert_eq!(item["packageName"], "gated");
    assert_eq!(item["version"], "1.1.0");
    assert_eq!(item["tag"], "latest");
    assert_eq!(item["createdAt"], staged_at);
    assert_eq!(item["actor"], "alice");
    assert_eq!(item["actorType"], "user");
    assert_eq!(item["shasum"], body.tarball().shasum());
    assert_eq!(item["state"], "staged");
    assert_eq!(item["approvals"], "0 of 1");

    let list = app
        .send(Req::get("/-/stage?page=0&perPage=100&package=gated").token(&alice.token))
        .await;
    assert_status(&list, StatusCode::OK);
    let list = list.json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], id);

    // Maintainers can download what they are asked to approve.
    let download = app
        .send(Req::get(&format!("/-/stage/{id}/tarball")).token(&alice.token))
        .await;
    assert_status(&download, StatusCode::OK);
    assert_eq!(download.body.as_ref(), body.tarball.as_slice());

    // Approving needs a code: npm gets the OTP challenge and retries.
    app.advance(Duration::from_secs(600));
    let challenged = approve_with(&app, &alice.token, &id, None).await;
    assert_status(&challenged, StatusCode::UNAUTHORIZED);
    assert_eq!(challenged.header("www-authenticate"), Some("OTP"));
    assert_invisible(&app, &alice.token, &body).await;

    let code = alice.otp(&app);
    let live_at = now_iso(&app);
    assert_ne!(live_at, staged_at);
    let r = approve_with(&app, &alice.token, &id, Some(&code)).await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(r.json()["state"], "live");
    assert_eq!(r.json()["liveAt"], live_at);

    let doc = assert_live(&app, &body).await;
    assert_eq!(
        doc["time"]["1.1.0"], live_at,
        "time[version] is when the public could first see it, not when it was staged"
    );
    assert_eq!(doc["dist-tags"]["latest"], "1.1.0");
    assert_eq!(view(&app, &alice.token, &id).await["state"], "live");

    let sha = sha512_hex(&body.tarball);
    assert_eq!(
        events(&app, &alice.token, &id, &sha).await,
        [
            ev("staged", Some("alice"), None),
            ev("approve", Some("alice"), Some("one-time password")),
        ]
    );
}

#[tokio::test]
async fn a_new_package_staged_first_does_not_exist_until_it_is_live() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    let body = PublishBody::new("@newco/first", "1.0.0");
    let id = staged(&app, &alice.token, &body).await;
    assert_invisible(&app, &alice.token, &body).await;
    assert_eq!(
        app.packument("@newco/first").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(view(&app, &alice.token, &id).await["state"], "staged");
    assert_status(&approve(&app, &alice, &id).await, StatusCode::OK);
    assert_live(&app, &body).await;
}

#[tokio::test]
async fn two_approvals_from_distinct_maintainers_other_than_the_stager() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    let bob = person(&app, "bob", true).await;
    let carol = person(&app, "carol", true).await;
    package(&app, "dual", &alice, &[&bob, &carol]).await;
    policy(
        &app,
        &alice,
        "dual",
        json!({ "publish": "staged", "approvals": 2 }),
    )
    .await;

    let body = PublishBody::new("dual", "2.0.0");
    let id = staged(&app, &alice.token, &body).await;

    let r = approve(&app, &alice, &id).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    insta::assert_snapshot!(r.error(), @"you staged this release; with 2 required approvals, two other maintainers must approve it");

    let r = approve(&app, &bob, &id).await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(r.json()["state"], "staged");
    assert_eq!(r.json()["approvals"], "1 of 2");
    assert_eq!(r.json()["approvedBy"], "bob (one-time password)");
    assert_invisible(&app, &alice.token, &body).await;

    let r = approve(&app, &bob, &id).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    insta::assert_snapshot!(r.error(), @"`bob` has already approved this release; each maintainer approves a release once");
    assert_invisible(&app, &alice.token, &body).await;

    let code = carol.otp(&app);
    let live_at = now_iso(&app);
    let r = approve_with(&app, &carol.token, &id, Some(&code)).await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(r.json()["state"], "live");
    let doc = assert_live(&app, &body).await;
    assert_eq!(doc["time"]["2.0.0"], live_at);

    let sha = sha512_hex(&body.tarball);
    assert_eq!(
        events(&app, &bob.token, &id, &sha).await,
        [
            ev("staged", Some("alice"), None),
            ev("approve", Some("bob"), Some("one-time password")),
            ev("approve", Some("carol"), Some("one-time password")),
        ],
        "refused approvals leave no event"
    );
}

#[tokio::test]
async fn cooling_off_keeps_it_invisible_and_any_maintainer_can_veto() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    let bob = person(&app, "bob", true).await;
    let carol = person(&app, "carol", true).await;
    package(&app, "cool", &alice, &[&bob, &carol]).await;
    policy(
        &app,
        &alice,
        "cool",
        json!({ "publish": "staged", "cooling_off_seconds": HOUR }),
    )
    .await;

    // Vetoed during the cooling-off.
    let vetoed = PublishBody::new("cool", "1.1.0");
    let id = staged(&app, &alice.token, &vetoed).await;
    let r = approve(&app, &bob, &id).await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(r.json()["state"], "cooling off");
    assert!(r.json()["coolingOffUntil"].is_string());
    assert_invisible(&app, &alice.token, &vetoed).await;
    app.advance(Duration::from_secs(HOUR / 2));
    assert_eq!(app.registry.run_due().await.unwrap(), 0);
    assert_invisible(&app, &alice.token, &vetoed).await;

    let r = reject(&app, &carol, &id).await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(r.json()["state"], "rejected");
    assert_eq!(r.json()["rejectedBy"], "carol");
    app.advance(Duration::from_secs(2 * HOUR));
    assert_eq!(app.registry.run_due().await.unwrap(), 0);
    assert_invisible(&app, &alice.token, &vetoed).await;
    assert_eq!(view(&app, &alice.token, &id).await["state"], "rejected");
    let r = approve(&app, &alice, &id).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    let sha = sha512_hex(&vetoed.tarball);
    assert_eq!(
        events(&app, &alice.token, &id, &sha).await,
        [
            ev("staged", Some("alice"), None),
            ev("approve", Some("bob"), Some("one-time password")),
            ev("reject", Some("carol"), None),
        ]
    );

    // Left alone, it goes live when the window is over, without any request.
    let body = PublishBody::new("cool", "1.2.0");
    let id = staged(&app, &alice.token, &body).await;
    assert_status(&approve(&app, &bob, &id).await, StatusCode::OK);
    app.advance(Duration::from_secs(HOUR - 120));
    assert_eq!(app.registry.run_due().await.unwrap(), 0);
    assert_invisible(&app, &alice.token, &body).await;
    // An approval during the cooling-off changes nothing without expedite.
    let r = approve(&app, &carol, &id).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    assert!(r.error().contains("cooling-off"), "{}", r.error());

    app.advance(Duration::from_secs(120));
    let live_at = now_iso(&app);
    assert_eq!(app.registry.run_due().await.unwrap(), 1);
    let doc = assert_live(&app, &body).await;
    assert_eq!(doc["time"]["1.2.0"], live_at, "the promotion moment");
    assert_eq!(view(&app, &bob.token, &id).await["liveAt"], live_at);
    let sha = sha512_hex(&body.tarball);
    assert_eq!(
        events(&app, &alice.token, &id, &sha).await,
        [
            ev("staged", Some("alice"), None),
            ev("approve", Some("bob"), Some("one-time password")),
            ev("promote", None, None),
        ]
    );
    // Nothing is due any more.
    app.advance(Duration::from_secs(HOUR));
    assert_eq!(app.registry.run_due().await.unwrap(), 0);
}

#[tokio::test]
async fn expedite_lets_one_more_approval_skip_the_cooling_off() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    let bob = person(&app, "bob", true).await;
    let carol = person(&app, "carol", true).await;
    package(&app, "hotfix", &alice, &[&bob, &carol]).await;
    policy(
        &app,
        &alice,
        "hotfix",
        json!({ "publish": "staged", "cooling_off_seconds": 24 * HOUR, "expedite": true }),
    )
    .await;

    let body = PublishBody::new("hotfix", "1.0.1");
    let id = staged(&app, &alice.token, &body).await;
    let r = approve(&app, &bob, &id).await;
    assert_eq!(r.json()["state"], "cooling off");
    assert_invisible(&app, &alice.token, &body).await;
    // The stager's own approval never expedites.
    let r = approve(&app, &alice, &id).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    insta::assert_snapshot!(r.error(), @"you staged this release; only approvals from other maintainers can expedite it past its cooling-off");
    assert_invisible(&app, &alice.token, &body).await;

    let code = carol.otp(&app);
    let live_at = now_iso(&app);
    let r = approve_with(&app, &carol.token, &id, Some(&code)).await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(r.json()["state"], "live");
    assert_eq!(r.json()["expedited"], "yes", "{}", r.json());
    let doc = assert_live(&app, &body).await;
    assert_eq!(doc["time"]["1.0.1"], live_at);
    let sha = sha512_hex(&body.tarball);
    assert_eq!(
        events(&app, &alice.token, &id, &sha).await,
        [
            ev("staged", Some("alice"), None),
            ev("approve", Some("bob"), Some("one-time password")),
            ev("approve", Some("carol"), Some("one-time password")),
        ]
    );
}

#[tokio::test]
async fn stages_expire_and_cannot_be_approved_after() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    let bob = person(&app, "bob", true).await;
    package(&app, "slow", &alice, &[&bob]).await;
    policy(
        &app,
        &alice,
        "slow",
        json!({ "publish": "staged", "stage_ttl_seconds": HOUR }),
    )
    .await;

    let expired = PublishBody::new("slow", "1.1.0");
    let id = staged(&app, &alice.token, &expired).await;
    let unswept = PublishBody::new("slow", "1.2.0");
    let unswept_id = staged(&app, &alice.token, &unswept).await;
    assert_eq!(
        view(&app, &alice.token, &id).await["expiresAt"],
        airlock_store::format_time(
            OffsetDateTime::from_unix_timestamp(i64::try_from(app.registry_now() + HOUR).unwrap())
                .unwrap()
        )
    );
    app.advance(Duration::from_secs(HOUR - 60));
    assert_eq!(app.registry.run_due().await.unwrap(), 0);
    assert_eq!(view(&app, &alice.token, &id).await["state"], "staged");

    app.advance(Duration::from_secs(61));
    // Past its expiry but not yet swept: the gate still refuses the approval.
    let r = approve(&app, &bob, &unswept_id).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    assert!(r.error().contains("expired"), "{}", r.error());

    assert_eq!(app.registry.run_due().await.unwrap(), 2);
    assert_eq!(view(&app, &alice.token, &id).await["state"], "expired");
    let r = approve(&app, &bob, &id).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    assert!(r.error().contains("expired"), "{}", r.error());
    assert_invisible(&app, &alice.token, &expired).await;
    let sha = sha512_hex(&expired.tarball);
    assert_eq!(
        events(&app, &alice.token, &id, &sha).await,
        [ev("staged", Some("alice"), None), ev("expire", None, None)]
    );
    // The number stays taken.
    assert_status(
        &stage(&app, &alice.token, &expired).await,
        StatusCode::FORBIDDEN,
    );
}

#[tokio::test]
async fn an_authenticator_code_approves_once() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    let bob = person(&app, "bob", true).await;
    package(&app, "replay", &alice, &[&bob]).await;
    let first = staged(&app, &alice.token, &PublishBody::new("replay", "1.1.0")).await;
    let second = staged(&app, &alice.token, &PublishBody::new("replay", "1.2.0")).await;

    let code = bob.otp(&app);
    assert_status(
        &approve_with(&app, &bob.token, &first, Some(&code)).await,
        StatusCode::OK,
    );
    let replay = approve_with(&app, &bob.token, &second, Some(&code)).await;
    assert_status(&replay, StatusCode::UNAUTHORIZED);
    insta::assert_snapshot!(replay.error(), @"that authenticator code was already used: wait for the next code and try again");
    assert_eq!(replay.header("www-authenticate"), None);
    let replay = reject_with(&app, &bob.token, &second, Some(&code)).await;
    assert_status(&replay, StatusCode::UNAUTHORIZED);
    assert_eq!(view(&app, &bob.token, &second).await["state"], "staged");

    // An older code, still inside the drift window, is refused once a newer one was used.
    let secret = bob.secret.as_ref().unwrap();
    let older = secret.code_at_step(bob.last_step.get() - 1);
    let r = approve_with(&app, &bob.token, &second, Some(&older)).await;
    assert_status(&r, StatusCode::UNAUTHORIZED);
    let wrong = approve_with(&app, &bob.token, &second, Some("000000")).await;
    assert_status(&wrong, StatusCode::UNAUTHORIZED);
    assert_eq!(view(&app, &bob.token, &second).await["state"], "staged");

    // A web-OTP token (npm's browser variant) approves once too.
    let challenge = approve_with(&app, &bob.token, &second, None).await.json();
    let path = |key: &str| {
        challenge[key]
            .as_str()
            .unwrap()
            .strip_prefix("http://registry.test")
            .unwrap()
            .to_owned()
    };
    let (auth, done) = (path("authUrl"), path("doneUrl"));
    let code = bob.otp(&app);
    let r = app
        .send(
            Req::new(Method::POST, &auth)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("otp={code}")),
        )
        .await;
    assert_status(&r, StatusCode::OK);
    let token = app.send(Req::get(&done).token(&bob.token)).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = approve_with(&app, &bob.token, &second, Some(&token)).await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(r.json()["approvedBy"], "bob (one-time password on the web)");
    let third = staged(&app, &alice.token, &PublishBody::new("replay", "1.3.0")).await;
    assert_status(
        &approve_with(&app, &bob.token, &third, Some(&token)).await,
        StatusCode::UNAUTHORIZED,
    );
}

#[tokio::test]
async fn approving_or_rejecting_needs_second_factor_enrolment() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    let dave = person(&app, "dave", false).await;
    package(&app, "needs-2fa", &alice, &[&dave]).await;
    let id = staged(&app, &dave.token, &PublishBody::new("needs-2fa", "1.1.0")).await;

    for r in [
        approve_with(&app, &dave.token, &id, None).await,
        approve_with(&app, &dave.token, &id, Some("123456")).await,
        reject_with(&app, &dave.token, &id, None).await,
    ] {
        assert_status(&r, StatusCode::FORBIDDEN);
        assert_eq!(
            r.error(),
            "this operation needs two-factor authentication: enable it with `npm profile enable-2fa auth-and-writes`"
        );
    }
    assert_eq!(view(&app, &dave.token, &id).await["state"], "staged");
    // A maintainer with a second factor may approve what dave staged.
    assert_status(&approve(&app, &alice, &id).await, StatusCode::OK);
}

#[tokio::test]
async fn outsiders_cannot_see_or_touch_a_stage() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    let mallory = person(&app, "mallory", true).await;
    package(&app, "private-stage", &alice, &[]).await;
    let body = PublishBody::new("private-stage", "1.1.0");
    let id = staged(&app, &alice.token, &body).await;

    let code = mallory.otp(&app);
    for req in [
        Req::get(&format!("/-/stage/{id}")),
        Req::get(&format!("/-/stage/{id}/tarball")),
        Req::get(&format!("/-/stage/{id}/events")),
        Req::new(Method::POST, &format!("/-/stage/{id}/approve")).header("npm-otp", &code),
        Req::new(Method::DELETE, &format!("/-/stage/{id}")).header("npm-otp", &code),
    ] {
        let r = app.send(req.token(&mallory.token)).await;
        assert_status(&r, StatusCode::NOT_FOUND);
    }
    let list = app
        .send(Req::get("/-/stage?page=0&perPage=100").token(&mallory.token))
        .await
        .json();
    assert_eq!(list, json!({ "items": [], "total": 0 }));
    let list = app
        .send(Req::get("/-/stage?page=0&perPage=100&package=private-stage").token(&mallory.token))
        .await
        .json();
    assert_eq!(list["total"], 0);
    // Without credentials at all.
    let r = app.send(Req::get(&format!("/-/stage/{id}"))).await;
    assert_status(&r, StatusCode::UNAUTHORIZED);
    let r = app.send(Req::get("/-/stage?page=0&perPage=100")).await;
    assert_status(&r, StatusCode::UNAUTHORIZED);
    // Nor can they stage onto someone else's package.
    let r = stage(
        &app,
        &mallory.token,
        &PublishBody::new("private-stage", "6.6.6"),
    )
    .await;
    assert_status(&r, StatusCode::FORBIDDEN);

    // mallory's code was not consumed by the refused requests.
    let r = approve_with(&app, &alice.token, &id, Some(&alice.otp(&app))).await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(view(&app, &alice.token, &id).await["state"], "live");
}

#[tokio::test]
async fn a_staged_version_reserves_its_number_even_after_rejection() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    package(&app, "reserved", &alice, &[]).await;
    let body = PublishBody::new("reserved", "1.1.0");
    let id = staged(&app, &alice.token, &body).await;

    let r = app.publish(&alice.token, &body).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    insta::assert_snapshot!(r.error(), @"You cannot publish over the previously published versions: 1.1.0.");
    let r = stage(&app, &alice.token, &body).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    let other_bytes =
        PublishBody::new("reserved", "1.1.0").with_files(&[("index.js", b"1".as_slice())]);
    assert_status(
        &stage(&app, &alice.token, &other_bytes).await,
        StatusCode::FORBIDDEN,
    );

    assert_status(&reject(&app, &alice, &id).await, StatusCode::OK);
    assert_status(
        &app.publish(&alice.token, &body).await,
        StatusCode::FORBIDDEN,
    );
    assert_status(
        &stage(&app, &alice.token, &body).await,
        StatusCode::FORBIDDEN,
    );
    assert_invisible(&app, &alice.token, &body).await;
    // Other numbers are free.
    app.published(&alice.token, &PublishBody::new("reserved", "1.1.1"))
        .await;
}

#[tokio::test]
async fn plain_publish_under_a_staged_policy_names_npm_stage_publish() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    let bob = person(&app, "bob", true).await;
    package(&app, "staged-only", &alice, &[&bob]).await;
    policy(&app, &alice, "staged-only", json!({ "publish": "staged" })).await;
    let r = app
        .publish(&alice.token, &PublishBody::new("staged-only", "1.1.0"))
        .await;
    assert_status(&r, StatusCode::FORBIDDEN);
    insta::assert_snapshot!(r.error(), @"`staged-only` only accepts staged releases: run `npm stage publish`, then have a maintainer approve it with `npm stage approve`");

    policy(
        &app,
        &alice,
        "staged-only",
        json!({ "publish": "staged", "approvals": 2 }),
    )
    .await;
    let r = app
        .publish(&bob.token, &PublishBody::new("staged-only", "1.1.0"))
        .await;
    assert_status(&r, StatusCode::FORBIDDEN);
    insta::assert_snapshot!(r.error(), @"`staged-only` only accepts staged releases: run `npm stage publish`, then have 2 maintainers approve it with `npm stage approve`");
    assert_eq!(
        app.packument("staged-only").await.json()["dist-tags"]["latest"],
        "1.0.0"
    );
    // The refused number is still free for the staged route.
    staged(&app, &bob.token, &PublishBody::new("staged-only", "1.1.0")).await;

    // A scope policy applies to every package in the scope, even new ones.
    app.published(&alice.token, &PublishBody::new("@corp/core", "1.0.0"))
        .await;
    policy(&app, &alice, "@corp", json!({ "publish": "staged" })).await;
    let r = app
        .publish(&alice.token, &PublishBody::new("@corp/new-thing", "1.0.0"))
        .await;
    assert_status(&r, StatusCode::FORBIDDEN);
    assert!(r.error().contains("npm stage publish"), "{}", r.error());
}

/// `gate_events` rows that belong to no stage (policy changes): `(subject, kind, actor, factor)`.
async fn policy_events(app: &TestApp) -> Vec<(String, String, String, String)> {
    use sqlx::Row;
    let url = format!(
        "sqlite://{}?mode=ro",
        app.data_dir().join("airlock.db").display()
    );
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("the test database opens read-only");
    sqlx::query(
        "SELECT subject, kind, actor_name, factor FROM gate_events WHERE stage_id IS NULL ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .expect("gate_events is readable")
    .iter()
    .map(|row| {
        (
            row.get::<String, _>(0),
            row.get::<String, _>(1),
            row.get::<String, _>(2),
            row.get::<String, _>(3),
        )
    })
    .collect()
}

#[tokio::test]
async fn policy_changes_need_the_owner_and_a_second_factor_and_are_recorded() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    let dave = person(&app, "dave", false).await;
    let mallory = person(&app, "mallory", true).await;
    package(&app, "owned", &alice, &[&dave]).await;
    let staged_policy = json!({ "publish": "staged", "approvals": 2, "cooling_off_seconds": 3, "expedite": true, "stage_ttl_seconds": HOUR });

    // Reading: the layer and the effective policy.
    let r = app
        .send(Req::get("/-/airlock/v1/policy/owned").token(&mallory.token))
        .await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(r.json()["layer"], json!({}));
    assert_eq!(r.json()["effective"]["publish"], "direct");
    assert_eq!(r.json()["effective"]["approvals"], 1);

    let url = "/-/airlock/v1/policy/owned";
    let r = app
        .send(Req::new(Method::PUT, url).json(&staged_policy))
        .await;
    assert_status(&r, StatusCode::UNAUTHORIZED);
    // Not a maintainer: refused before any code is looked at.
    let r = put_policy(&app, &mallory, "owned", &staged_policy).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    insta::assert_snapshot!(r.error(), @"you may not change the release policy of `owned`: packages by their maintainers, scopes by their owners, `registry` by administrators");
    // A maintainer without a second factor.
    let r = app
        .send(
            Req::new(Method::PUT, url)
                .token(&dave.token)
                .json(&staged_policy),
        )
        .await;
    assert_status(&r, StatusCode::FORBIDDEN);
    // The owner without a code gets the OTP challenge.
    let r = app
        .send(
            Req::new(Method::PUT, url)
                .token(&alice.token)
                .json(&staged_policy),
        )
        .await;
    assert_status(&r, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), Some("OTP"));
    // Nonsense is refused.
    for bad in [
        json!({ "approvals": 0 }),
        json!({ "publish": "sometimes" }),
        json!({ "cooling_off_seconds": -1 }),
        json!({ "stage_ttl_seconds": 60 }),
        json!({ "aprovals": 2 }),
    ] {
        let r = put_policy(&app, &alice, "owned", &bad).await;
        assert_status(&r, StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        app.send(Req::get(url).token(&alice.token)).await.json()["layer"],
        json!({})
    );

    let r = put_policy(&app, &alice, "owned", &staged_policy).await;
    assert_status(&r, StatusCode::OK);
    let shown = r.json();
    assert_eq!(shown["layer"], staged_policy);
    assert_eq!(shown["effective"]["publish"], "staged");
    assert_eq!(shown["effective"]["approvals"], 2);
    assert_eq!(shown["effective"]["cooling_off_seconds"], 3);
    assert_eq!(shown["effective"]["expedite"], true);
    assert_eq!(shown["effective"]["stage_ttl_seconds"], HOUR);

    // Registry-wide: administrators only.
    let r = put_policy(&app, &alice, "registry", &json!({ "approvals": 2 })).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    app.registry
        .create_account(NewAccount {
            name: "root".into(),
            email: "root@example.com".into(),
            password: "root-password".into(),
            is_admin: true,
        })
        .await
        .unwrap();
    let root = person(&app, "root", true).await;
    policy(
        &app,
        &root,
        "registry",
        json!({ "stage_ttl_seconds": 2 * HOUR }),
    )
    .await;
    // Scopes: their owners (the first publisher here), not others.
    app.published(&mallory.token, &PublishBody::new("@mal/thing", "1.0.0"))
        .await;
    let r = put_policy(&app, &alice, "@mal", &json!({ "publish": "staged" })).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    policy(&app, &mallory, "@mal", json!({ "publish": "staged" })).await;
    // A package policy for a package that does not exist.
    let r = put_policy(&app, &alice, "no-such-package", &json!({ "approvals": 2 })).await;
    assert_status(&r, StatusCode::NOT_FOUND);

    assert_eq!(
        policy_events(&app).await,
        [
            ("owned", "policy_changed", "alice", "one-time password"),
            ("registry", "policy_changed", "root", "one-time password"),
            ("@mal", "policy_changed", "mallory", "one-time password"),
        ]
        .map(|(s, k, a, f)| (s.to_owned(), k.to_owned(), a.to_owned(), f.to_owned()))
    );

    // A stage captures the policy in force; the staged event records it.
    let body = PublishBody::new("owned", "2.0.0");
    let id = staged(&app, &dave.token, &body).await;
    let item = view(&app, &dave.token, &id).await;
    assert_eq!(item["approvals"], "0 of 2");
    assert_eq!(
        item["policy"],
        "publish=staged, approvals=2, cooling_off=3s, expedite"
    );
    let r = app
        .send(Req::get(&format!("/-/stage/{id}/events")).token(&dave.token))
        .await
        .json();
    assert_eq!(r["events"][0]["kind"], "staged");
    assert_eq!(r["events"][0]["detail"]["policy"]["approvals"], 2);
}

#[tokio::test]
async fn a_tarball_swapped_after_approval_never_goes_live() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    let bob = person(&app, "bob", true).await;
    package(&app, "swapped", &alice, &[&bob]).await;
    policy(
        &app,
        &alice,
        "swapped",
        json!({ "publish": "staged", "cooling_off_seconds": HOUR }),
    )
    .await;

    let body = PublishBody::new("swapped", "1.1.0");
    let sha = sha512_hex(&body.tarball);
    let blob = app
        .data_dir()
        .join("tarballs/sha512")
        .join(&sha[..2])
        .join(&sha[2..4])
        .join(&sha);
    let id = staged(&app, &alice.token, &body).await;
    assert!(
        blob.is_file(),
        "the staged tarball is at {}",
        blob.display()
    );
    assert_status(&approve(&app, &bob, &id).await, StatusCode::OK);

    // Someone with access to the storage replaces the approved bytes during the cooling-off.
    let evil = PublishBody::new("swapped", "1.1.0").with_files(&[(
        "index.js",
        b"require('child_process').exec('curl evil')".as_slice(),
    )]);
    std::fs::write(&blob, &evil.tarball).unwrap();
    app.advance(Duration::from_secs(HOUR + 1));
    assert_eq!(
        app.registry.run_due().await.unwrap(),
        0,
        "the promotion is refused"
    );
    assert_eq!(view(&app, &alice.token, &id).await["state"], "cooling off");
    assert_invisible(&app, &alice.token, &body).await;
    let doc = app.packument("swapped").await.json();
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    // It keeps being refused on every later run.
    app.advance(Duration::from_secs(60));
    assert_eq!(app.registry.run_due().await.unwrap(), 0);
    assert_invisible(&app, &alice.token, &body).await;
    assert_eq!(
        events(&app, &alice.token, &id, &sha).await,
        [
            ev("staged", Some("alice"), None),
            ev("approve", Some("bob"), Some("one-time password")),
        ]
    );

    // Without a cooling-off the check happens at the approval itself.
    policy(&app, &alice, "swapped", json!({ "publish": "staged" })).await;
    let body = PublishBody::new("swapped", "1.2.0");
    let sha = sha512_hex(&body.tarball);
    let id = staged(&app, &alice.token, &body).await;
    let blob = app
        .data_dir()
        .join("tarballs/sha512")
        .join(&sha[..2])
        .join(&sha[2..4])
        .join(&sha);
    std::fs::write(&blob, b"not the approved bytes").unwrap();
    let r = approve(&app, &bob, &id).await;
    assert_status(&r, StatusCode::CONFLICT);
    insta::assert_snapshot!(r.error(), @"the stored tarball of `swapped@1.2.0` no longer matches what was approved; it will not go live");
    assert_eq!(view(&app, &alice.token, &id).await["state"], "staged");
    assert_invisible(&app, &alice.token, &body).await;
}

#[tokio::test]
async fn the_stage_tag_moves_only_when_the_release_goes_live() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    package(&app, "tagged", &alice, &[]).await;
    let body = PublishBody::new("tagged", "2.0.0-beta.1").tag("next");
    let id = staged(&app, &alice.token, &body).await;
    assert_eq!(view(&app, &alice.token, &id).await["tag"], "next");
    let doc = app.packument("tagged").await.json();
    assert_eq!(doc["dist-tags"], json!({ "latest": "1.0.0" }));
    assert_status(&approve(&app, &alice, &id).await, StatusCode::OK);
    let doc = assert_live(&app, &body).await;
    assert_eq!(
        doc["dist-tags"],
        json!({ "latest": "1.0.0", "next": "2.0.0-beta.1" })
    );
}

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let r = app
        .send(Req::get(&format!("/-/stage?{query}")).token(token))
        .await;
    assert_status(&r, StatusCode::OK);
    r.json()
}

#[tokio::test]
async fn stage_list_filters_by_package_and_pages() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    let bob = person(&app, "bob", true).await;
    package(&app, "@acme/lib", &alice, &[]).await;
    package(&app, "tool", &alice, &[&bob]).await;
    let mut ids = Vec::new();
    for v in ["1.1.0", "1.2.0"] {
        ids.push(staged(&app, &alice.token, &PublishBody::new("@acme/lib", v)).await);
    }
    staged(&app, &alice.token, &PublishBody::new("tool", "1.1.0")).await;

    let all = list(&app, &alice.token, "page=0&perPage=100").await;
    assert_eq!(all["total"], 3);
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    // npm sends the name URL-encoded by URLSearchParams.
    let lib = list(
        &app,
        &alice.token,
        "page=0&perPage=100&package=%40acme%2Flib",
    )
    .await;
    assert_eq!(lib["total"], 2);
    let mut listed: Vec<String> = lib["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);
    let page0 = list(&app, &alice.token, "page=0&perPage=2").await;
    let page1 = list(&app, &alice.token, "page=1&perPage=2").await;
    assert_eq!(page0["items"].as_array().unwrap().len(), 2);
    assert_eq!(page1["items"].as_array().unwrap().len(), 1);
    assert_eq!(page1["total"], 3);
    // bob maintains only `tool`.
    let bobs = list(&app, &bob.token, "page=0&perPage=100").await;
    assert_eq!(bobs["total"], 1);
    assert_eq!(bobs["items"][0]["packageName"], "tool");
    let none = list(
        &app,
        &alice.token,
        "page=0&perPage=100&package=nothing-here",
    )
    .await;
    assert_eq!(none, json!({ "items": [], "total": 0 }));
}

#[tokio::test]
async fn read_only_and_other_package_tokens_cannot_stage_or_decide() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    package(&app, "guarded", &alice, &[]).await;
    let read_only = app
        .user_with(
            "alice",
            airlock_registry::CreateTokenRequest {
                readonly: Some(true),
                ..Default::default()
            },
        )
        .await;
    let elsewhere = app
        .user_with(
            "alice",
            airlock_registry::CreateTokenRequest {
                packages: Some(vec!["something-else".into()]),
                ..Default::default()
            },
        )
        .await;
    let body = PublishBody::new("guarded", "1.1.0");
    for token in [&read_only, &elsewhere] {
        let r = stage(&app, token, &body).await;
        assert_status(&r, StatusCode::FORBIDDEN);
    }
    let id = staged(&app, &alice.token, &body).await;
    let r = approve_with(&app, &read_only, &id, Some(&alice.otp(&app))).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    // A token limited to other packages cannot approve or reject this one either.
    let r = approve_with(&app, &elsewhere, &id, Some(&alice.otp(&app))).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    let r = reject_with(&app, &elsewhere, &id, Some(&alice.otp(&app))).await;
    assert_status(&r, StatusCode::FORBIDDEN);
    assert_eq!(view(&app, &alice.token, &id).await["state"], "staged");
}

#[tokio::test]
async fn a_package_with_only_a_staged_version_is_not_listed_anywhere() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    let body = PublishBody::new("brand-new-thing", "1.0.0");
    let id = staged(&app, &alice.token, &body).await;

    assert_eq!(
        app.packument("brand-new-thing").await.status,
        StatusCode::NOT_FOUND
    );
    let search = app
        .send(Req::get("/-/v1/search?text=brand-new-thing"))
        .await
        .json();
    assert_eq!(search["objects"], json!([]));
    assert_eq!(
        search["total"], 0,
        "a search must not count what it cannot show: {search}"
    );
    let r = app
        .send(Req::get("/-/package/brand-new-thing/dist-tags"))
        .await;
    assert_status(&r, StatusCode::NOT_FOUND);
    let listed = app.send(Req::get("/-/user/alice/package")).await.json();
    assert!(
        listed.get("brand-new-thing").is_none(),
        "anonymous readers learn of the package before it is public: {listed}"
    );

    assert_status(&approve(&app, &alice, &id).await, StatusCode::OK);
    let search = app
        .send(Req::get("/-/v1/search?text=brand-new-thing"))
        .await
        .json();
    assert_eq!(search["total"], 1);
    assert_eq!(search["objects"][0]["package"]["name"], "brand-new-thing");
}

#[tokio::test]
async fn unpublishing_the_package_cancels_a_release_in_its_cooling_off() {
    let app = TestApp::new().await;
    let alice = person(&app, "alice", true).await;
    package(&app, "withdrawn", &alice, &[]).await;
    policy(
        &app,
        &alice,
        "withdrawn",
        json!({ "cooling_off_seconds": HOUR }),
    )
    .await;
    let body = PublishBody::new("withdrawn", "1.1.0");
    let id = staged(&app, &alice.token, &body).await;
    assert_eq!(
        approve(&app, &alice, &id).await.json()["state"],
        "cooling off"
    );

    // `npm unpublish withdrawn --force`: the maintainers take the whole package down.
    let rev = app.packument("withdrawn").await.json()["_rev"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .send(Req::new(Method::DELETE, &format!("/withdrawn/-rev/{rev}")).token(&alice.token))
        .await;
    assert_status(&r, StatusCode::OK);
    assert_eq!(
        app.packument("withdrawn").await.status,
        StatusCode::NOT_FOUND
    );

    // Nobody acts again; the promotion job must not bring the package back.
    app.advance(Duration::from_secs(HOUR + 1));
    app.registry.run_due().await.unwrap();
    assert_eq!(
        app.packument("withdrawn").await.status,
        StatusCode::NOT_FOUND,
        "the gate job re-published a package its maintainers unpublished"
    );
}
