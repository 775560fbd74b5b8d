//! The webhook outbox on SQLite: deliveries are queued by the very transaction that records a
//! gate event (and vanish with it when it rolls back), then leave the queue as they are
//! delivered, retried or given up.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::sync::Arc;
use std::time::Duration;

use airlock_store::{
    Accounts, GateEventRecord, NewStage, NewUser, NewVersion, NewWebhook, Releases, SqliteStore,
    StageUpdate, StoreError, Webhooks,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a valid timestamp")
}

async fn store() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .expect("the database opens");
    (Arc::new(store), dir)
}

async fn user(store: &SqliteStore, name: &str) -> i64 {
    store
        .create_user(NewUser {
            name: name.into(),
            email: format!("{name}@example.com"),
            password_hash: "x".into(),
            is_admin: false,
            now: now(),
        })
        .await
        .expect("a new user")
        .id
}

async fn hook(store: &SqliteStore, id: &str, target: &str, created_by: i64) {
    store
        .create_webhook(NewWebhook {
            id: id.into(),
            target: target.into(),
            url: format!("https://hooks.example/{id}"),
            secret: format!("secret-of-{id}"),
            created_by,
            created_at: now(),
        })
        .await
        .expect("a new hook");
}

fn event(stage_id: &str, subject: &str, kind: &str, actor: i64, detail: Value) -> GateEventRecord {
    GateEventRecord {
        stage_id: Some(stage_id.into()),
        subject: subject.into(),
        kind: kind.into(),
        actor_id: Some(actor),
        actor_name: Some("alice".into()),
        at: now(),
        sha512_hex: Some("a".repeat(128)),
        factor: None,
        detail,
    }
}

fn stage(id: &str, name: &str, version: &str, stager: i64, expected_rev: Option<i64>) -> NewStage {
    NewStage {
        id: id.into(),
        name: name.into(),
        scope: name
            .strip_prefix('@')
            .and_then(|s| s.split_once('/'))
            .map(|(s, _)| s.to_owned()),
        expected_rev,
        claim_scope: None,
        access: None,
        version: NewVersion {
            version: version.into(),
            manifest: serde_json::Map::new(),
            integrity: "sha512-x".into(),
            shasum: "0".repeat(40),
            sha512_hex: "a".repeat(128),
            size: 1,
            file_count: 1,
            unpacked_size: 1,
            publisher_id: stager,
            provenance: None,
        },
        tag: "latest".into(),
        state_kind: "staged".into(),
        state: json!({ "test": true }),
        due_at: None,
        event: event(
            id,
            name,
            "staged",
            stager,
            json!({ "version": version, "tag": "latest" }),
        ),
        now: now(),
    }
}

fn payload(raw: &str) -> Value {
    serde_json::from_str(raw).expect("the payload is JSON")
}

#[tokio::test]
async fn a_gate_event_queues_one_delivery_per_hook_of_the_package_and_its_scope() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    hook(&store, "h-pkg", "@acme/lib", alice).await;
    hook(&store, "h-scope", "@acme", alice).await;
    hook(&store, "h-other", "@acme/other", alice).await;
    hook(&store, "h-prefix", "@acmex", alice).await;

    store
        .create_stage(stage("s1", "@acme/lib", "1.0.0", alice, None))
        .await
        .unwrap();

    let due = store.due_deliveries(now(), 100).await.unwrap();
    let mut hooks: Vec<&str> = due.iter().map(|d| d.webhook_id.as_str()).collect();
    hooks.sort_unstable();
    assert_eq!(hooks, ["h-pkg", "h-scope"]);
    for d in &due {
        assert_eq!(d.event_kind, "staged");
        assert_eq!(d.attempts, 0);
        assert_eq!(d.url, format!("https://hooks.example/{}", d.webhook_id));
        assert_eq!(d.secret, format!("secret-of-{}", d.webhook_id));
        let body = payload(&d.payload);
        assert_eq!(body["event"], "staged");
        assert_eq!(body["package"], "@acme/lib");
        assert_eq!(body["version"], "1.0.0");
        assert_eq!(body["stageId"], "s1");
        assert_eq!(body["actor"], "alice");
        assert_eq!(body["state"], "staged");
        assert_eq!(body["sha512"], "a".repeat(128));
        assert_eq!(body["at"], "2027-01-15T08:00:00.000Z");
    }
    // Nothing is due before the event happened.
    let before = now() - Duration::from_secs(1);
    assert!(store.due_deliveries(before, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn deliveries_roll_back_with_the_gate_event() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    hook(&store, "h", "lib", alice).await;
    store
        .create_stage(stage("s1", "lib", "1.0.0", alice, None))
        .await
        .unwrap();
    assert_eq!(store.due_deliveries(now(), 100).await.unwrap().len(), 1);

    // The version is taken: the stage and its event roll back, and so do the deliveries.
    let rev = {
        use airlock_store::Packages;
        store.package("lib").await.unwrap().unwrap().rev
    };
    let again = store
        .create_stage(stage("s2", "lib", "1.0.0", alice, Some(rev)))
        .await;
    assert!(
        matches!(again, Err(StoreError::VersionExists(_))),
        "{again:?}"
    );
    // A stale update of the first stage loses too.
    let stale = store
        .update_stage(StageUpdate {
            id: "s1".into(),
            expected_seq: 41,
            state_kind: "rejected".into(),
            state: json!({}),
            due_at: None,
            event: event(
                "s1",
                "lib",
                "reject",
                alice,
                json!({ "version": "1.0.0", "state": "rejected" }),
            ),
            promote: None,
        })
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");

    let due = store.due_deliveries(now(), 100).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(payload(&due[0].payload)["stageId"], "s1");
}

#[tokio::test]
async fn an_approval_that_starts_the_cooling_off_is_approved_then_pending() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    hook(&store, "h", "lib", alice).await;
    store
        .create_stage(stage("s1", "lib", "1.0.0", alice, None))
        .await
        .unwrap();
    let first = store.due_deliveries(now(), 100).await.unwrap();
    store.mark_delivered(&first[0].id, now()).await.unwrap();

    let mut approve = event(
        "s1",
        "lib",
        "approve",
        alice,
        json!({ "version": "1.0.0", "state": "cooling_off" }),
    );
    approve.factor = Some("totp".into());
    store
        .update_stage(StageUpdate {
            id: "s1".into(),
            expected_seq: 0,
            state_kind: "cooling_off".into(),
            state: json!({}),
            due_at: None,
            event: approve,
            promote: None,
        })
        .await
        .unwrap();
    let due = store.due_deliveries(now(), 100).await.unwrap();
    let kinds: Vec<&str> = due.iter().map(|d| d.event_kind.as_str()).collect();
    assert_eq!(kinds, ["approved", "pending"]);
    let body = payload(&due[1].payload);
    assert_eq!(body["event"], "pending");
    assert_eq!(body["state"], "cooling_off");
    assert_eq!(body["factor"], "totp");
}

#[tokio::test]
async fn failed_deliveries_wait_for_their_retry_and_delivered_ones_leave_the_queue() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    hook(&store, "h", "lib", alice).await;
    store
        .create_stage(stage("s1", "lib", "1.0.0", alice, None))
        .await
        .unwrap();
    let id = store.due_deliveries(now(), 10).await.unwrap()[0].id.clone();

    let retry_at = now() + Duration::from_secs(30);
    store
        .mark_failed(&id, "the receiver answered HTTP 500", Some(retry_at))
        .await
        .unwrap();
    assert!(store.due_deliveries(now(), 10).await.unwrap().is_empty());
    let later = store.due_deliveries(retry_at, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].attempts, 1);

    store.mark_delivered(&id, retry_at).await.unwrap();
    let far = now() + Duration::from_secs(86_400);
    assert!(store.due_deliveries(far, 10).await.unwrap().is_empty());
    let history = store.deliveries("h", 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].attempts, 2);
    assert_eq!(history[0].delivered_at, Some(retry_at));
    assert_eq!(history[0].next_attempt_at, None);
    assert_eq!(history[0].last_error, None);
    // A delivered one cannot be failed afterwards.
    assert!(matches!(
        store.mark_failed(&id, "late", None).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn giving_up_keeps_the_last_error() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    hook(&store, "h", "lib", alice).await;
    store
        .create_stage(stage("s1", "lib", "1.0.0", alice, None))
        .await
        .unwrap();
    let id = store.due_deliveries(now(), 10).await.unwrap()[0].id.clone();
    store
        .mark_failed(&id, "could not connect", None)
        .await
        .unwrap();
    let far = now() + Duration::from_secs(86_400 * 365);
    assert!(store.due_deliveries(far, 10).await.unwrap().is_empty());
    let history = store.deliveries("h", 10).await.unwrap();
    assert_eq!(history[0].last_error.as_deref(), Some("could not connect"));
    assert_eq!(history[0].delivered_at, None);
}

#[tokio::test]
async fn deleting_a_hook_drops_its_pending_deliveries() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    hook(&store, "h1", "lib", alice).await;
    hook(&store, "h2", "lib", alice).await;
    let listed = store.webhooks_for("lib").await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].created_by.name, "alice");
    store
        .create_stage(stage("s1", "lib", "1.0.0", alice, None))
        .await
        .unwrap();
    assert_eq!(store.due_deliveries(now(), 10).await.unwrap().len(), 2);

    assert!(store.delete_webhook("h1").await.unwrap());
    assert!(!store.delete_webhook("h1").await.unwrap());
    assert!(store.webhook("h1").await.unwrap().is_none());
    let due = store.due_deliveries(now(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].webhook_id, "h2");
}

#[tokio::test]
async fn due_deliveries_respect_the_limit_oldest_first() {
    let (store, _dir) = store().await;
    let alice = user(&store, "alice").await;
    hook(&store, "h", "lib", alice).await;
    let mut rev = None;
    for (i, v) in ["1.0.0", "1.0.1", "1.0.2"].into_iter().enumerate() {
        store
            .create_stage(stage(&format!("s{i}"), "lib", v, alice, rev))
            .await
            .unwrap();
        use airlock_store::Packages;
        rev = Some(store.package("lib").await.unwrap().unwrap().rev);
    }
    let due = store.due_deliveries(now(), 2).await.unwrap();
    let stages: Vec<Value> = due
        .iter()
        .map(|d| payload(&d.payload)["stageId"].clone())
        .collect();
    assert_eq!(stages, [json!("s0"), json!("s1")]);
}
