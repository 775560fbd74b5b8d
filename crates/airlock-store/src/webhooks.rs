//! Webhook subscriptions and their outbox. Deliveries are written by the transaction that
//! records a gate event (see [`crate::Releases`]), so a committed event always has its
//! notifications queued and a crash loses none; a worker sends them later.

use async_trait::async_trait;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{GateEventRecord, Person, StoreResult, format_time};

/// A webhook as created by its owner.
pub struct NewWebhook {
    pub id: String,
    /// A package name, or `@scope` for every package in the scope.
    pub target: String,
    pub url: String,
    /// The HMAC key. Kept as given: signing needs it, so it cannot be hashed.
    pub secret: String,
    pub created_by: i64,
    pub created_at: OffsetDateTime,
}

#[derive(Clone)]
pub struct WebhookRecord {
    pub id: String,
    pub target: String,
    pub url: String,
    pub secret: String,
    pub created_by: Person,
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for WebhookRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRecord")
            .field("id", &self.id)
            .field("target", &self.target)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A delivery whose time has come, with what is needed to send it.
#[derive(Clone)]
pub struct DueDelivery {
    pub id: String,
    pub webhook_id: String,
    pub url: String,
    pub secret: String,
    pub event_kind: String,
    /// The exact body to send (and sign); the same bytes on every attempt.
    pub payload: String,
    /// Attempts made so far.
    pub attempts: u32,
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("id", &self.id)
            .field("webhook_id", &self.webhook_id)
            .field("event_kind", &self.event_kind)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// A delivery's history, for owners looking at why a hook did (not) fire.
#[derive(Clone, Debug)]
pub struct DeliveryRecord {
    pub id: String,
    pub webhook_id: String,
    pub event_kind: String,
    pub payload: String,
    pub attempts: u32,
    /// `None` once delivered or given up.
    pub next_attempt_at: Option<OffsetDateTime>,
    pub delivered_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
}

/// Webhook subscriptions and the delivery outbox. Every [`crate::Releases`] backend is also a
/// `Webhooks` backend, because its event-recording transactions fill the outbox.
#[async_trait]
pub trait Webhooks: Send + Sync {
    async fn create_webhook(&self, hook: NewWebhook) -> StoreResult<()>;
    async fn webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>>;
    /// Hooks whose target is exactly `target`, oldest first.
    async fn webhooks_for(&self, target: &str) -> StoreResult<Vec<WebhookRecord>>;
    /// Deletes a hook and its pending deliveries; returns whether it existed.
    async fn delete_webhook(&self, id: &str) -> StoreResult<bool>;
    /// Undelivered deliveries whose next attempt is due at `now`, oldest first.
    async fn due_deliveries(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Counts an attempt and records success.
    async fn mark_delivered(&self, id: &str, at: OffsetDateTime) -> StoreResult<()>;
    /// Counts an attempt and records its failure; `next_attempt_at = None` gives up.
    async fn mark_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<OffsetDateTime>,
    ) -> StoreResult<()>;
    /// The latest deliveries of a hook, newest first.
    async fn deliveries(&self, webhook_id: &str, limit: u64) -> StoreResult<Vec<DeliveryRecord>>;
}

/// The targets whose hooks hear about an event on `subject`: the package itself and its
/// `@scope` (or, for a scope's policy event, the scope).
#[must_use]
pub fn webhook_targets(subject: &str) -> Vec<String> {
    let mut targets = vec![subject.to_owned()];
    if let Some((scope, _)) = subject.split_once('/').filter(|_| subject.starts_with('@')) {
        targets.push(scope.to_owned());
    }
    targets
}

/// What a gate event is called on the wire, and what it becomes: an approval that starts the
/// cooling-off is also `pending`, one that makes the release live is also `promoted`.
#[must_use]
pub fn webhook_event_kinds(event: &GateEventRecord) -> Vec<String> {
    let state = event.detail.get("state").and_then(Value::as_str);
    match event.kind.as_str() {
        "staged" | "stage" => vec!["staged".into()],
        "approve" => {
            let mut kinds = vec!["approved".to_owned()];
            match state {
                Some("cooling_off") => kinds.push("pending".into()),
                Some("live") => kinds.push("promoted".into()),
                _ => {}
            }
            kinds
        }
        "promote" => vec!["promoted".into()],
        "reject" => vec!["rejected".into()],
        "expire" => vec!["expired".into()],
        // New kinds are passed on as they are rather than dropped.
        other => vec![other.to_owned()],
    }
}

/// The JSON body of a delivery, built from the gate event alone.
#[must_use]
pub fn webhook_payload(kind: &str, event: &GateEventRecord) -> Value {
    let detail = |key: &str| event.detail.get(key).cloned().unwrap_or(Value::Null);
    let is_package = !event.subject.starts_with('@') || event.subject.contains('/');
    let state = match (event.detail.get("state"), event.kind.as_str()) {
        (Some(state), _) => state.clone(),
        (None, "staged" | "stage") => json!("staged"),
        (None, _) => Value::Null,
    };
    let mut payload = json!({
        "event": kind,
        "subject": event.subject,
        "package": if is_package { json!(event.subject) } else { Value::Null },
        "version": detail("version"),
        "stageId": event.stage_id,
        "actor": event.actor_name,
        "factor": event.factor,
        "at": format_time(event.at),
        "sha512": event.sha512_hex,
        "state": state,
    });
    if event.kind == "policy_changed" {
        payload["policy"] = event.detail.clone();
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, subject: &str, detail: Value) -> GateEventRecord {
        GateEventRecord {
            stage_id: None,
            subject: subject.into(),
            kind: kind.into(),
            actor_id: None,
            actor_name: None,
            at: OffsetDateTime::UNIX_EPOCH,
            sha512_hex: None,
            factor: None,
            detail,
        }
    }

    #[test]
    fn targets_are_the_package_and_its_scope() {
        assert_eq!(webhook_targets("lib"), ["lib"]);
        assert_eq!(webhook_targets("@acme/lib"), ["@acme/lib", "@acme"]);
        assert_eq!(webhook_targets("@acme"), ["@acme"]);
        assert_eq!(webhook_targets("registry"), ["registry"]);
    }

    #[test]
    fn approvals_also_announce_what_they_caused() {
        let kinds = |kind: &str, state: &str| {
            webhook_event_kinds(&event(kind, "lib", json!({ "state": state })))
        };
        assert_eq!(kinds("approve", "staged"), ["approved"]);
        assert_eq!(kinds("approve", "cooling_off"), ["approved", "pending"]);
        assert_eq!(kinds("approve", "live"), ["approved", "promoted"]);
        assert_eq!(kinds("promote", "live"), ["promoted"]);
        assert_eq!(kinds("reject", "rejected"), ["rejected"]);
        assert_eq!(kinds("expire", "expired"), ["expired"]);
        assert_eq!(kinds("staged", "staged"), ["staged"]);
        assert_eq!(kinds("policy_changed", ""), ["policy_changed"]);
    }

    #[test]
    fn a_scope_policy_change_names_no_package() {
        let body = webhook_payload(
            "policy_changed",
            &event("policy_changed", "@acme", json!({ "approvals": 2 })),
        );
        assert_eq!(body["package"], Value::Null);
        assert_eq!(body["subject"], "@acme");
        assert_eq!(body["policy"], json!({ "approvals": 2 }));
        assert_eq!(body["state"], Value::Null);
    }
}
