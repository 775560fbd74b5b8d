//! Trusted publishers on SQLite.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use super::{SqliteStore, is_unique_violation, record_gate_event, time_col};
use crate::{
    ExchangeOutcome, GateEventRecord, NewPublisherToken, NewTrustConfig, Person,
    PublisherTokenRecord, StoreError, StoreResult, TrustConfigRecord, TrustedPublishers,
    format_time,
};

fn json_col(row: &SqliteRow, col: &str) -> StoreResult<serde_json::Value> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|_| StoreError::Corrupt(format!("JSON in column {col}")))
}

fn list_col(row: &SqliteRow, col: &str) -> StoreResult<Vec<String>> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|_| StoreError::Corrupt(format!("list in column {col}")))
}

fn config_from_row(row: &SqliteRow) -> StoreResult<TrustConfigRecord> {
    let pinned: Option<String> = row.try_get("pinned_ids")?;
    Ok(TrustConfigRecord {
        id: row.try_get("id")?,
        package: row.try_get("package")?,
        provider: row.try_get("provider")?,
        issuer: row.try_get("issuer")?,
        claims: json_col(row, "claims")?,
        permissions: list_col(row, "permissions")?,
        pinned_ids: pinned
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|_| StoreError::Corrupt("pinned ids of a trust configuration".into()))?,
        created_by: Person {
            id: row.try_get("uid")?,
            name: row.try_get("uname")?,
            email: row.try_get("uemail")?,
        },
        created_at: time_col(row, "created_at")?,
    })
}

#[async_trait]
impl TrustedPublishers for SqliteStore {
    async fn trust_configs(&self, package: &str) -> StoreResult<Vec<TrustConfigRecord>> {
        let rows = sqlx::query(
            "SELECT t.id, p.name AS package, t.provider, t.issuer, t.claims, t.permissions, t.pinned_ids,
                    t.created_at, u.id AS uid, u.name AS uname, u.email AS uemail
             FROM trust_configs t JOIN packages p ON p.id = t.package_id JOIN users u ON u.id = t.created_by
             WHERE p.name = ? AND t.revoked_at IS NULL ORDER BY t.created_at, t.id",
        )
        .bind(package)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(config_from_row).collect()
    }

    async fn create_trust_config(&self, config: NewTrustConfig) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let package_id: Option<i64> = sqlx::query_scalar("SELECT id FROM packages WHERE name = ?")
            .bind(&config.package)
            .fetch_optional(&mut *tx)
            .await?;
        let package_id = package_id.ok_or_else(|| StoreError::NotFound(config.package.clone()))?;
        let inserted = sqlx::query(
            "INSERT INTO trust_configs (id, package_id, provider, issuer, claims, permissions, pinned_ids, created_by, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&config.id)
        .bind(package_id)
        .bind(&config.provider)
        .bind(&config.issuer)
        .bind(config.claims.to_string())
        .bind(serde_json::json!(config.permissions).to_string())
        .bind(config.pinned_ids.as_ref().map(ToString::to_string))
        .bind(config.created_by)
        .bind(format_time(config.event.at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::AlreadyExists(format!(
                    "a trusted publisher for {}",
                    config.package
                )));
            }
            Err(e) => return Err(e.into()),
        }
        record_gate_event(&mut tx, &config.event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_trust_config(
        &self,
        package: &str,
        id: &str,
        event: GateEventRecord,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE trust_configs SET revoked_at = ?
             WHERE id = ? AND revoked_at IS NULL AND package_id = (SELECT id FROM packages WHERE name = ?)",
        )
        .bind(format_time(event.at))
        .bind(id)
        .bind(package)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM publisher_tokens WHERE config_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        record_gate_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_exchange(&self, token: NewPublisherToken) -> StoreResult<ExchangeOutcome> {
        let now = format_time(token.created_at);
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM oidc_token_uses WHERE expires_at < ?")
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM publisher_tokens WHERE expires_at < ?")
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        let live: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM trust_configs WHERE id = ? AND revoked_at IS NULL")
                .bind(&token.config_id)
                .fetch_optional(&mut *tx)
                .await?;
        if live.is_none() {
            return Ok(ExchangeOutcome::ConfigGone);
        }
        let used =
            sqlx::query("INSERT INTO oidc_token_uses (issuer, jti, expires_at) VALUES (?, ?, ?)")
                .bind(&token.token_issuer)
                .bind(&token.token_jti)
                .bind(format_time(token.token_expires_at))
                .execute(&mut *tx)
                .await;
        match used {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(ExchangeOutcome::Replayed),
            Err(e) => return Err(e.into()),
        }
        if let Some(ids) = &token.pin_ids {
            sqlx::query(
                "UPDATE trust_configs SET pinned_ids = ? WHERE id = ? AND pinned_ids IS NULL",
            )
            .bind(ids.to_string())
            .bind(&token.config_id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO publisher_tokens (hash, config_id, package, permissions, identity, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.hash)
        .bind(&token.config_id)
        .bind(&token.package)
        .bind(serde_json::json!(token.permissions).to_string())
        .bind(token.identity.to_string())
        .bind(&now)
        .bind(format_time(token.expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ExchangeOutcome::Issued)
    }

    async fn publisher_token(
        &self,
        hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<PublisherTokenRecord>> {
        let row = sqlx::query(
            "SELECT k.config_id, k.package, k.permissions, k.identity, k.created_at, k.expires_at,
                    t.provider, t.created_by
             FROM publisher_tokens k JOIN trust_configs t ON t.id = k.config_id
             WHERE k.hash = ? AND k.expires_at > ? AND t.revoked_at IS NULL",
        )
        .bind(hash)
        .bind(format_time(now))
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok(PublisherTokenRecord {
                config_id: row.try_get("config_id")?,
                package: row.try_get("package")?,
                permissions: list_col(&row, "permissions")?,
                identity: json_col(&row, "identity")?,
                provider: row.try_get("provider")?,
                configured_by: row.try_get("created_by")?,
                created_at: time_col(&row, "created_at")?,
                expires_at: time_col(&row, "expires_at")?,
            })
        })
        .transpose()
    }
}
