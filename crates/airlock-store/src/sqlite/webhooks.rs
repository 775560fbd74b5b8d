//! Webhooks on SQLite: subscriptions, and the outbox filled inside gate-event transactions.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;

use super::{SqliteStore, opt_time_col, time_col, to_i64};
use crate::{
    DeliveryRecord, DueDelivery, GateEventRecord, NewWebhook, Person, StoreError, StoreResult,
    WebhookRecord, Webhooks, format_time, webhook_event_kinds, webhook_payload, webhook_targets,
};

/// Queues one delivery per matching hook and event kind. Runs on the caller's transaction, so
/// the deliveries commit (or roll back) with the gate event.
pub(super) async fn enqueue_deliveries(
    conn: &mut SqliteConnection,
    event: &GateEventRecord,
) -> StoreResult<()> {
    let targets = webhook_targets(&event.subject);
    let package = &targets[0];
    let scope = targets.get(1).unwrap_or(package);
    let at = format_time(event.at);
    for kind in webhook_event_kinds(event) {
        let payload = webhook_payload(&kind, event).to_string();
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_kind, payload, attempts, next_attempt_at, created_at)
             SELECT lower(hex(randomblob(16))), id, ?, ?, 0, ?, ? FROM webhooks WHERE target IN (?, ?) ORDER BY created_at, id",
        )
        .bind(&kind)
        .bind(&payload)
        .bind(&at)
        .bind(&at)
        .bind(package)
        .bind(scope)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

const HOOK_SELECT: &str = "SELECT h.id, h.target, h.url, h.secret, h.created_at,
        u.id AS uid, u.name AS uname, u.email AS uemail
    FROM webhooks h JOIN users u ON u.id = h.created_by";

fn hook_from_row(row: &SqliteRow) -> StoreResult<WebhookRecord> {
    Ok(WebhookRecord {
        id: row.try_get("id")?,
        target: row.try_get("target")?,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        created_by: Person {
            id: row.try_get("uid")?,
            name: row.try_get("uname")?,
            email: row.try_get("uemail")?,
        },
        created_at: time_col(row, "created_at")?,
    })
}

fn attempts_col(row: &SqliteRow) -> StoreResult<u32> {
    let n: i64 = row.try_get("attempts")?;
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("delivery attempts {n}")))
}

#[async_trait]
impl Webhooks for SqliteStore {
    async fn create_webhook(&self, hook: NewWebhook) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, target, url, secret, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&hook.id)
        .bind(&hook.target)
        .bind(&hook.url)
        .bind(&hook.secret)
        .bind(hook.created_by)
        .bind(format_time(hook.created_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>> {
        let row = sqlx::query(super::trusted_sql(format!("{HOOK_SELECT} WHERE h.id = ?")))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(hook_from_row).transpose()
    }

    async fn webhooks_for(&self, target: &str) -> StoreResult<Vec<WebhookRecord>> {
        let rows = sqlx::query(super::trusted_sql(format!(
            "{HOOK_SELECT} WHERE h.target = ? ORDER BY h.created_at, h.id"
        )))
        .bind(target)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(hook_from_row).collect()
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<bool> {
        // Deliveries go with it (ON DELETE CASCADE): nothing is sent to a hook that is gone.
        let done = sqlx::query("DELETE FROM webhooks WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn due_deliveries(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> StoreResult<Vec<DueDelivery>> {
        let rows = sqlx::query(
            "SELECT d.id, d.webhook_id, h.url, h.secret, d.event_kind, d.payload, d.attempts, d.created_at
             FROM webhook_deliveries d JOIN webhooks h ON h.id = d.webhook_id
             WHERE d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?
             ORDER BY d.next_attempt_at, d.rowid LIMIT ?",
        )
        .bind(format_time(now))
        .bind(to_i64(limit))
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DueDelivery {
                    id: row.try_get("id")?,
                    webhook_id: row.try_get("webhook_id")?,
                    url: row.try_get("url")?,
                    secret: row.try_get("secret")?,
                    event_kind: row.try_get("event_kind")?,
                    payload: row.try_get("payload")?,
                    attempts: attempts_col(row)?,
                    created_at: time_col(row, "created_at")?,
                })
            })
            .collect()
    }

    async fn mark_delivered(&self, id: &str, at: OffsetDateTime) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, delivered_at = ?, next_attempt_at = NULL, last_error = NULL
             WHERE id = ?",
        )
        .bind(format_time(at))
        .bind(id)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("webhook delivery {id}")));
        }
        Ok(())
    }

    async fn mark_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?
             WHERE id = ? AND delivered_at IS NULL",
        )
        .bind(error)
        .bind(next_attempt_at.map(format_time))
        .bind(id)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("webhook delivery {id}")));
        }
        Ok(())
    }

    async fn deliveries(&self, webhook_id: &str, limit: u64) -> StoreResult<Vec<DeliveryRecord>> {
        let rows = sqlx::query(
            "SELECT id, webhook_id, event_kind, payload, attempts, next_attempt_at, delivered_at, last_error, created_at
             FROM webhook_deliveries WHERE webhook_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
        )
        .bind(webhook_id)
        .bind(to_i64(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DeliveryRecord {
                    id: row.try_get("id")?,
                    webhook_id: row.try_get("webhook_id")?,
                    event_kind: row.try_get("event_kind")?,
                    payload: row.try_get("payload")?,
                    attempts: attempts_col(row)?,
                    next_attempt_at: opt_time_col(row, "next_attempt_at")?,
                    delivered_at: opt_time_col(row, "delivered_at")?,
                    last_error: row.try_get("last_error")?,
                    created_at: time_col(row, "created_at")?,
                })
            })
            .collect()
    }
}
