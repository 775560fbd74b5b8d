//! The SQLite backend: one file in WAL mode, a single writer connection (so writes are
//! serialised in-process and `BEGIN IMMEDIATE` makes other processes wait, not fail) and a small
//! pool of readers that never block on the writer.

mod trust;
mod webhooks;

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use crate::{
    Accounts, GateEventRecord, NewStage, NewToken, NewUser, NewVersion, PackageChange,
    PackageState, Packages, Person, ProfileChange, ProvenanceRecord, ProvenanceSummary,
    PublishPlan, Releases, ScopeOwner, SignableVersion, StageRecord, StageUpdate, StoreError,
    StoreResult, TfaRecord, TokenRecord, User, VersionRecord, VersionSignature, WebLogin,
    WebLoginRedeem, WebOtpRedeem, format_time, parse_time,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another process (say `airlock user add` while the server runs)
/// to finish its transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit that was acknowledged survives power loss, not just a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Database(e.into()))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { reader, writer })
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn time_col(row: &SqliteRow, col: &str) -> StoreResult<OffsetDateTime> {
    let s: String = row.try_get(col)?;
    parse_time(&s).map_err(|_| StoreError::Corrupt(format!("timestamp `{s}` in column {col}")))
}

fn opt_time_col(row: &SqliteRow, col: &str) -> StoreResult<Option<OffsetDateTime>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| {
        parse_time(&s).map_err(|_| StoreError::Corrupt(format!("timestamp `{s}` in column {col}")))
    })
    .transpose()
}

fn json_list_col(row: &SqliteRow, col: &str) -> StoreResult<Option<Vec<String>>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| {
        serde_json::from_str(&s).map_err(|_| StoreError::Corrupt(format!("list in column {col}")))
    })
    .transpose()
}

fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        is_admin: row.try_get("is_admin")?,
        fullname: row.try_get("fullname")?,
        homepage: row.try_get("homepage")?,
        github: row.try_get("github")?,
        twitter: row.try_get("twitter")?,
        freenode: row.try_get("freenode")?,
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
    })
}

fn token_from_row(row: &SqliteRow) -> StoreResult<TokenRecord> {
    Ok(TokenRecord {
        key: row.try_get("key")?,
        user_id: row.try_get("user_id")?,
        display: row.try_get("display")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        readonly: row.try_get("readonly")?,
        cidr_whitelist: json_list_col(row, "cidr_whitelist")?,
        packages: json_list_col(row, "packages")?,
        created_at: time_col(row, "created_at")?,
        expires_at: opt_time_col(row, "expires_at")?,
    })
}

const USER_COLUMNS: &str = "id, name, email, password_hash, is_admin, fullname, homepage, github, twitter, freenode, created_at, updated_at";
const TOKEN_COLUMNS: &str = "key, user_id, display, name, description, readonly, cidr_whitelist, packages, created_at, expires_at";

/// Our dynamic SQL is assembled only from constant fragments and `?` placeholders; every
/// value is bound, never formatted in.
fn trusted_sql(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

async fn insert_token(conn: &mut SqliteConnection, token: &NewToken) -> StoreResult<()> {
    let r = &token.record;
    let list = |l: &Option<Vec<String>>| {
        l.as_ref()
            .map(|l| serde_json::Value::from(l.clone()).to_string())
    };
    sqlx::query(
        "INSERT INTO tokens (key, hash, user_id, display, name, description, readonly, cidr_whitelist, packages, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&r.key)
    .bind(&token.hash)
    .bind(r.user_id)
    .bind(&r.display)
    .bind(&r.name)
    .bind(&r.description)
    .bind(r.readonly)
    .bind(list(&r.cidr_whitelist))
    .bind(list(&r.packages))
    .bind(format_time(r.created_at))
    .bind(r.expires_at.map(format_time))
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Accounts for SqliteStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let now = format_time(user.now);
        let result = sqlx::query(
            "INSERT INTO users (name, email, password_hash, is_admin, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&user.name)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.is_admin)
        .bind(&now)
        .bind(&now)
        .execute(&self.writer)
        .await;
        match result {
            Ok(done) => self
                .user_by_id(done.last_insert_rowid())
                .await?
                .ok_or_else(|| StoreError::NotFound(user.name.clone())),
            Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists(user.name)),
            Err(e) => Err(e.into()),
        }
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(trusted_sql(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE name = ?"
        )))
        .bind(name)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        // The writer pool: callers read their own writes here (create_user).
        let row = sqlx::query(trusted_sql(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(trusted_sql(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY name"
        )))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn update_profile(
        &self,
        user_id: i64,
        change: ProfileChange,
        now: OffsetDateTime,
    ) -> StoreResult<User> {
        let mut tx = self.begin_write().await?;
        let mut sets: Vec<&str> = vec!["updated_at = ?"];
        let mut values: Vec<Option<String>> = vec![Some(format_time(now))];
        if let Some(email) = change.email {
            sets.push("email = ?");
            values.push(Some(email));
        }
        for (col, value) in [
            ("fullname = ?", change.fullname),
            ("homepage = ?", change.homepage),
            ("github = ?", change.github),
            ("twitter = ?", change.twitter),
            ("freenode = ?", change.freenode),
        ] {
            if let Some(v) = value {
                sets.push(col);
                values.push(v);
            }
        }
        if let Some(hash) = change.password_hash {
            sets.push("password_hash = ?");
            values.push(Some(hash));
        }
        let sql = format!("UPDATE users SET {} WHERE id = ?", sets.join(", "));
        let mut query = sqlx::query(trusted_sql(sql.clone()));
        for v in values {
            query = query.bind(v);
        }
        let done = query.bind(user_id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user #{user_id}")));
        }
        let row = sqlx::query(trusted_sql(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = ?"
        )))
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
        let user = user_from_row(&row)?;
        tx.commit().await?;
        Ok(user)
    }

    async fn insert_token(&self, token: NewToken) -> StoreResult<()> {
        let mut conn = self.writer.acquire().await?;
        insert_token(&mut conn, &token).await
    }

    async fn token_by_hash(
        &self,
        hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<(TokenRecord, User)>> {
        let Some(row) = sqlx::query(trusted_sql(format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?"
        )))
        .bind(hash)
        .fetch_optional(&self.reader)
        .await?
        else {
            return Ok(None);
        };
        let token = token_from_row(&row)?;
        if token.expires_at.is_some_and(|t| t <= now) {
            return Ok(None);
        }
        let row = sqlx::query(trusted_sql(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = ?"
        )))
        .bind(token.user_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(match row {
            Some(row) => Some((token, user_from_row(&row)?)),
            None => None,
        })
    }

    async fn list_tokens(&self, user_id: i64) -> StoreResult<Vec<TokenRecord>> {
        let rows = sqlx::query(trusted_sql(format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE user_id = ? ORDER BY created_at, key"
        )))
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn all_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let rows = sqlx::query(trusted_sql(format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, key"
        )))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn delete_token(&self, key: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM tokens WHERE key = ?")
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_web_login(
        &self,
        login_id: &str,
        done_hash: &str,
        create_account: bool,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        // Old, abandoned logins are swept whenever a new one starts.
        sqlx::query("DELETE FROM web_logins WHERE expires_at <= ?")
            .bind(format_time(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO web_logins (login_id, done_hash, create_account, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(login_id)
        .bind(done_hash)
        .bind(create_account)
        .bind(format_time(now))
        .bind(format_time(expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn web_login(
        &self,
        login_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<WebLogin>> {
        let row = sqlx::query("SELECT login_id, create_account, user_id, expires_at FROM web_logins WHERE login_id = ?")
            .bind(login_id)
            .fetch_optional(&self.writer)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let login = WebLogin {
            login_id: row.try_get("login_id")?,
            create_account: row.try_get("create_account")?,
            user_id: row.try_get("user_id")?,
            expires_at: time_col(&row, "expires_at")?,
        };
        Ok((login.expires_at > now).then_some(login))
    }

    async fn complete_web_login(
        &self,
        login_id: &str,
        user_id: i64,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE web_logins SET user_id = ? WHERE login_id = ? AND user_id IS NULL AND expires_at > ?",
        )
        .bind(user_id)
        .bind(login_id)
        .bind(format_time(now))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn redeem_web_login(
        &self,
        done_hash: &str,
        mut token: NewToken,
        now: OffsetDateTime,
    ) -> StoreResult<WebLoginRedeem> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT login_id, user_id FROM web_logins WHERE done_hash = ? AND expires_at > ?",
        )
        .bind(done_hash)
        .bind(format_time(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(WebLoginRedeem::Unknown);
        };
        let login_id: String = row.try_get("login_id")?;
        let Some(user_id) = row.try_get::<Option<i64>, _>("user_id")? else {
            return Ok(WebLoginRedeem::Pending);
        };
        token.record.user_id = user_id;
        insert_token(&mut tx, &token).await?;
        sqlx::query("DELETE FROM web_logins WHERE login_id = ?")
            .bind(&login_id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(trusted_sql(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = ?"
        )))
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
        let user = user_from_row(&row)?;
        tx.commit().await?;
        Ok(WebLoginRedeem::Redeemed(Box::new(user)))
    }

    async fn tfa(&self, user_id: i64) -> StoreResult<Option<TfaRecord>> {
        let row =
            sqlx::query("SELECT secret, mode, pending, last_step FROM user_tfa WHERE user_id = ?")
                .bind(user_id)
                .fetch_optional(&self.writer)
                .await?;
        row.map(|row| {
            let last_step: Option<i64> = row.try_get("last_step")?;
            Ok(TfaRecord {
                secret: row.try_get("secret")?,
                mode: row.try_get("mode")?,
                pending: row.try_get("pending")?,
                last_step: last_step.and_then(|s| u64::try_from(s).ok()),
            })
        })
        .transpose()
    }

    async fn set_pending_tfa(
        &self,
        user_id: i64,
        secret: &str,
        mode: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO user_tfa (user_id, secret, mode, pending, created_at) VALUES (?, ?, ?, 1, ?)
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, mode = excluded.mode, pending = 1,
                 last_step = NULL, created_at = excluded.created_at",
        )
        .bind(user_id)
        .bind(secret)
        .bind(mode)
        .bind(format_time(now))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn enable_tfa(
        &self,
        user_id: i64,
        recovery_hashes: &[String],
        accepted_step: u64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE user_tfa SET pending = 0, last_step = ? WHERE user_id = ? AND pending = 1",
        )
        .bind(to_i64(accepted_step))
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict);
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for hash in recovery_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, hash) VALUES (?, ?)")
                .bind(user_id)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_tfa_mode(&self, user_id: i64, mode: &str) -> StoreResult<()> {
        sqlx::query("UPDATE user_tfa SET mode = ? WHERE user_id = ?")
            .bind(mode)
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn disable_tfa(&self, user_id: i64) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM user_tfa WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn consume_totp_step(&self, user_id: i64, step: u64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE user_tfa SET last_step = ? WHERE user_id = ? AND pending = 0 AND (last_step IS NULL OR last_step < ?)",
        )
        .bind(to_i64(step))
        .bind(user_id)
        .bind(to_i64(step))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn consume_recovery_code(&self, user_id: i64, hash: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM recovery_codes WHERE user_id = ? AND hash = ?")
            .bind(user_id)
            .bind(hash)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_web_otp(
        &self,
        otp_id: &str,
        done_hash: &str,
        user_id: i64,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM web_otps WHERE expires_at <= ?")
            .bind(format_time(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO web_otps (otp_id, done_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
            .bind(otp_id)
            .bind(done_hash)
            .bind(user_id)
            .bind(format_time(now))
            .bind(format_time(expires_at))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn web_otp_user(&self, otp_id: &str, now: OffsetDateTime) -> StoreResult<Option<i64>> {
        let row = sqlx::query(
            "SELECT user_id FROM web_otps WHERE otp_id = ? AND verified = 0 AND expires_at > ?",
        )
        .bind(otp_id)
        .bind(format_time(now))
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(|r| r.try_get("user_id")).transpose()?)
    }

    async fn verify_web_otp(&self, otp_id: &str, now: OffsetDateTime) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE web_otps SET verified = 1 WHERE otp_id = ? AND verified = 0 AND expires_at > ?",
        )
        .bind(otp_id)
        .bind(format_time(now))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn redeem_web_otp(
        &self,
        done_hash: &str,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<WebOtpRedeem> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT otp_id, verified, token_hash FROM web_otps WHERE done_hash = ? AND expires_at > ?")
            .bind(done_hash)
            .bind(format_time(now))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(WebOtpRedeem::Unknown);
        };
        let verified: bool = row.try_get("verified")?;
        let existing: Option<String> = row.try_get("token_hash")?;
        if !verified {
            return Ok(WebOtpRedeem::Pending);
        }
        if existing.is_some() {
            // The token was handed out already: never twice.
            return Ok(WebOtpRedeem::Unknown);
        }
        let otp_id: String = row.try_get("otp_id")?;
        sqlx::query("UPDATE web_otps SET token_hash = ? WHERE otp_id = ?")
            .bind(token_hash)
            .bind(&otp_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(WebOtpRedeem::Redeemed)
    }

    async fn consume_web_otp_token(
        &self,
        user_id: i64,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM web_otps WHERE user_id = ? AND token_hash = ? AND verified = 1 AND expires_at > ?")
            .bind(user_id)
            .bind(token_hash)
            .bind(format_time(now))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

async fn load_package(
    conn: &mut SqliteConnection,
    name: &str,
) -> StoreResult<Option<PackageState>> {
    let Some(row) = sqlx::query(
        "SELECT id, name, access, rev, created_at, modified_at, unpublished_at FROM packages WHERE name = ?",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let id: i64 = row.try_get("id")?;
    let mut state = PackageState {
        id,
        name: row.try_get("name")?,
        access: row.try_get("access")?,
        rev: row.try_get("rev")?,
        created_at: time_col(&row, "created_at")?,
        modified_at: time_col(&row, "modified_at")?,
        unpublished_at: opt_time_col(&row, "unpublished_at")?,
        versions: Vec::new(),
        dist_tags: BTreeMap::new(),
        maintainers: Vec::new(),
    };
    let mut rows = sqlx::query(
        "SELECT v.version, v.manifest, v.integrity, v.shasum, v.sha512_hex, v.size, v.file_count, v.unpacked_size,
                v.published_at, v.deprecated, v.unpublished_at, v.signature_keyid, v.signature,
                pr.predicate_type AS provenance_type, pr.summary AS provenance_summary,
                u.id AS uid, u.name AS uname, u.email AS uemail
         FROM versions v JOIN users u ON u.id = v.publisher_id
         LEFT JOIN provenance pr ON pr.package_id = v.package_id AND pr.version = v.version
         WHERE v.package_id = ? ORDER BY v.published_at, v.rowid",
    )
    .bind(id)
    // Row by row, not all at once: a package of thousands of versions has megabytes of
    // manifests, and the connection's thread would keep a buffer of that size for good.
    .fetch(&mut *conn);
    while let Some(row) = futures::TryStreamExt::try_next(&mut rows).await? {
        let row = &row;
        let version: String = row.try_get("version")?;
        let manifest: String = row.try_get("manifest")?;
        let manifest = match serde_json::from_str(&manifest) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(StoreError::Corrupt(format!("manifest of {name}@{version}"))),
        };
        let what = format!("{name}@{version}");
        let count = |col: &str| count_col(row, col, &what);
        state.versions.push(VersionRecord {
            manifest,
            integrity: row.try_get("integrity")?,
            shasum: row.try_get("shasum")?,
            sha512_hex: row.try_get("sha512_hex")?,
            size: count("size")?,
            file_count: count("file_count")?,
            unpacked_size: count("unpacked_size")?,
            publisher: person_cols(row)?,
            published_at: time_col(row, "published_at")?,
            deprecated: row.try_get("deprecated")?,
            unpublished_at: opt_time_col(row, "unpublished_at")?,
            signature: signature_cols(row)?,
            provenance: provenance_cols(row, &what)?,
            version,
        });
    }
    drop(rows);
    for row in sqlx::query("SELECT tag, version FROM dist_tags WHERE package_id = ?")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
    {
        state
            .dist_tags
            .insert(row.try_get("tag")?, row.try_get("version")?);
    }
    for row in sqlx::query(
        "SELECT u.id, u.name, u.email FROM maintainers m JOIN users u ON u.id = m.user_id
         WHERE m.package_id = ? ORDER BY u.name",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    {
        state.maintainers.push(Person {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
        });
    }
    Ok(Some(state))
}

/// The provenance summary joined to a version row, if the version has provenance.
fn provenance_cols(row: &SqliteRow, what: &str) -> StoreResult<Option<ProvenanceSummary>> {
    let predicate_type: Option<String> = row.try_get("provenance_type")?;
    let summary: Option<String> = row.try_get("provenance_summary")?;
    let (Some(predicate_type), Some(summary)) = (predicate_type, summary) else {
        return Ok(None);
    };
    let summary = serde_json::from_str(&summary)
        .map_err(|_| StoreError::Corrupt(format!("provenance summary of {what}")))?;
    Ok(Some(ProvenanceSummary {
        predicate_type,
        summary,
    }))
}

/// Stores a version's verified provenance (publish or stage), in the caller's transaction.
async fn insert_provenance(
    conn: &mut SqliteConnection,
    package_id: i64,
    version: &NewVersion,
    now: &str,
) -> StoreResult<()> {
    let Some(provenance) = &version.provenance else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO provenance (package_id, version, predicate_type, bundle, summary, created_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(package_id)
    .bind(&version.version)
    .bind(&provenance.predicate_type)
    .bind(&provenance.bundle)
    .bind(provenance.summary.to_string())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The stored signature of a version row: both columns or neither.
fn signature_cols(row: &SqliteRow) -> StoreResult<Option<VersionSignature>> {
    let keyid: Option<String> = row.try_get("signature_keyid")?;
    let sig: Option<String> = row.try_get("signature")?;
    Ok(keyid
        .zip(sig)
        .map(|(keyid, sig)| VersionSignature { keyid, sig }))
}

async fn record_event(
    conn: &mut SqliteConnection,
    package_id: i64,
    kind: &str,
    version: Option<&str>,
    actor_id: i64,
    now: &str,
    detail: serde_json::Value,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO package_events (package_id, kind, version, actor_id, at, detail) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(package_id)
        .bind(kind)
        .bind(version)
        .bind(actor_id)
        .bind(now)
        .bind(detail.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

async fn bump_rev(conn: &mut SqliteConnection, package_id: i64, now: &str) -> StoreResult<i64> {
    let row = sqlx::query(
        "UPDATE packages SET rev = rev + 1, modified_at = ? WHERE id = ? RETURNING rev",
    )
    .bind(now)
    .bind(package_id)
    .fetch_one(conn)
    .await?;
    Ok(row.try_get("rev")?)
}

/// Which package a publish or stage writes to, and what it may create.
struct PackageTarget<'a> {
    name: &'a str,
    scope: Option<&'a str>,
    expected_rev: Option<i64>,
    claim_scope: Option<&'a str>,
    access: Option<&'a str>,
    /// The maintainer of a package created here.
    owner_id: i64,
}

/// The package's id, creating it (with its first maintainer and scope claim) when
/// `expected_rev` is `None`; `Conflict` when the package is not as the caller saw it.
async fn ensure_package(
    conn: &mut SqliteConnection,
    target: &PackageTarget<'_>,
    now: &str,
) -> StoreResult<i64> {
    let existing = sqlx::query("SELECT id, rev FROM packages WHERE name = ?")
        .bind(target.name)
        .fetch_optional(&mut *conn)
        .await?;
    let package_id = match (existing, target.expected_rev) {
        (None, None) => {
            let row = sqlx::query(
                "INSERT INTO packages (name, scope, access, rev, created_at, modified_at) VALUES (?, ?, ?, 0, ?, ?) RETURNING id",
            )
            .bind(target.name)
            .bind(target.scope)
            .bind(target.access.unwrap_or("public"))
            .bind(now)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
            let id: i64 = row.try_get("id")?;
            sqlx::query("INSERT INTO maintainers (package_id, user_id) VALUES (?, ?)")
                .bind(id)
                .bind(target.owner_id)
                .execute(&mut *conn)
                .await?;
            id
        }
        (Some(row), Some(expected)) if row.try_get::<i64, _>("rev")? == expected => {
            let id: i64 = row.try_get("id")?;
            if let Some(access) = target.access {
                sqlx::query("UPDATE packages SET access = ? WHERE id = ?")
                    .bind(access)
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            }
            id
        }
        _ => return Err(StoreError::Conflict),
    };
    if let Some(scope) = target.claim_scope {
        let claimed = sqlx::query("SELECT 1 FROM scope_owners WHERE scope = ?")
            .bind(scope)
            .fetch_optional(&mut *conn)
            .await?;
        if claimed.is_some() {
            return Err(StoreError::Conflict);
        }
        sqlx::query("INSERT INTO scope_owners (scope, user_id, assigned_by_admin, created_at) VALUES (?, ?, 0, ?)")
            .bind(scope)
            .bind(target.owner_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(package_id)
}

/// Refuses a version number that was ever published or staged for this package.
async fn ensure_version_free(
    conn: &mut SqliteConnection,
    package_id: i64,
    version: &str,
) -> StoreResult<()> {
    let published = sqlx::query("SELECT 1 FROM versions WHERE package_id = ? AND version = ?")
        .bind(package_id)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?;
    let staged = sqlx::query("SELECT 1 FROM stages WHERE package_id = ? AND version = ?")
        .bind(package_id)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?;
    if published.is_some() || staged.is_some() {
        return Err(StoreError::VersionExists(version.to_owned()));
    }
    Ok(())
}

/// A version going live, with the dist-tag it takes.
struct LiveVersion<'a> {
    version: &'a NewVersion,
    tag: &'a str,
    description: Option<&'a str>,
    keywords: &'a [String],
    signature: Option<&'a VersionSignature>,
}

/// Inserts a live version (its `published_at` is `now`), moves its tag, bumps the revision
/// and records the package event. Returns the new revision.
async fn insert_live_version(
    conn: &mut SqliteConnection,
    package_id: i64,
    live: &LiveVersion<'_>,
    now: &str,
    event: &str,
) -> StoreResult<i64> {
    let v = live.version;
    sqlx::query("UPDATE packages SET unpublished_at = NULL WHERE id = ?")
        .bind(package_id)
        .execute(&mut *conn)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO versions (package_id, version, manifest, integrity, shasum, sha512_hex, size, file_count,
                               unpacked_size, publisher_id, published_at, signature_keyid, signature)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(package_id)
    .bind(&v.version)
    .bind(serde_json::Value::Object(v.manifest.clone()).to_string())
    .bind(&v.integrity)
    .bind(&v.shasum)
    .bind(&v.sha512_hex)
    .bind(to_i64(v.size))
    .bind(to_i64(v.file_count))
    .bind(to_i64(v.unpacked_size))
    .bind(v.publisher_id)
    .bind(now)
    .bind(live.signature.map(|s| &s.keyid))
    .bind(live.signature.map(|s| &s.sig))
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::VersionExists(v.version.clone()));
        }
        Err(e) => return Err(e.into()),
    }
    sqlx::query(
        "INSERT INTO dist_tags (package_id, tag, version) VALUES (?, ?, ?)
         ON CONFLICT (package_id, tag) DO UPDATE SET version = excluded.version",
    )
    .bind(package_id)
    .bind(live.tag)
    .bind(&v.version)
    .execute(&mut *conn)
    .await?;
    if live.tag == "latest" {
        sqlx::query("UPDATE packages SET description = ?, keywords = ? WHERE id = ?")
            .bind(live.description)
            .bind(serde_json::Value::from(live.keywords.to_vec()).to_string())
            .bind(package_id)
            .execute(&mut *conn)
            .await?;
    }
    let rev = bump_rev(conn, package_id, now).await?;
    record_event(
        conn,
        package_id,
        event,
        Some(&v.version),
        v.publisher_id,
        now,
        serde_json::json!({ "tag": live.tag, "integrity": v.integrity, "sha512": v.sha512_hex }),
    )
    .await?;
    Ok(rev)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl Packages for SqliteStore {
    async fn package(&self, name: &str) -> StoreResult<Option<PackageState>> {
        let mut tx = self.reader.begin().await?;
        let state = load_package(&mut tx, name).await?;
        tx.commit().await?;
        Ok(state)
    }

    async fn publish(&self, plan: PublishPlan) -> StoreResult<i64> {
        let now = format_time(plan.now);
        let mut tx = self.begin_write().await?;
        let target = PackageTarget {
            name: &plan.name,
            scope: plan.scope.as_deref(),
            expected_rev: plan.expected_rev,
            claim_scope: plan.claim_scope.as_deref(),
            access: plan.access.as_deref(),
            owner_id: plan.version.publisher_id,
        };
        let package_id = ensure_package(&mut tx, &target, &now).await?;
        ensure_version_free(&mut tx, package_id, &plan.version.version).await?;
        let live = LiveVersion {
            version: &plan.version,
            tag: &plan.tag,
            description: plan.description.as_deref(),
            keywords: &plan.keywords,
            signature: plan.signature.as_ref(),
        };
        let rev = insert_live_version(&mut tx, package_id, &live, &now, "publish").await?;
        insert_provenance(&mut tx, package_id, &plan.version, &now).await?;
        tx.commit().await?;
        Ok(rev)
    }

    async fn update_package(
        &self,
        name: &str,
        expected_rev: i64,
        change: PackageChange,
        actor_id: i64,
        now: OffsetDateTime,
    ) -> StoreResult<i64> {
        let now = format_time(now);
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query("SELECT id, rev FROM packages WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(StoreError::NotFound(name.to_owned()));
        };
        let package_id: i64 = row.try_get("id")?;
        if row.try_get::<i64, _>("rev")? != expected_rev {
            return Err(StoreError::Conflict);
        }
        let detail;
        match &change {
            PackageChange::SetDeprecations(map) => {
                for (version, message) in map {
                    sqlx::query("UPDATE versions SET deprecated = ? WHERE package_id = ? AND version = ? AND unpublished_at IS NULL")
                        .bind(message)
                        .bind(package_id)
                        .bind(version)
                        .execute(&mut *tx)
                        .await?;
                }
                detail = serde_json::json!({ "deprecations": map });
            }
            PackageChange::UnpublishVersions {
                versions,
                dist_tags,
            } => {
                for version in versions {
                    sqlx::query("UPDATE versions SET unpublished_at = ? WHERE package_id = ? AND version = ? AND unpublished_at IS NULL")
                        .bind(&now)
                        .bind(package_id)
                        .bind(version)
                        .execute(&mut *tx)
                        .await?;
                }
                replace_tags(&mut tx, package_id, dist_tags).await?;
                detail = serde_json::json!({ "versions": versions, "dist-tags": dist_tags });
            }
            PackageChange::UnpublishPackage => {
                sqlx::query("UPDATE versions SET unpublished_at = ? WHERE package_id = ? AND unpublished_at IS NULL")
                    .bind(&now)
                    .bind(package_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE packages SET unpublished_at = ? WHERE id = ?")
                    .bind(&now)
                    .bind(package_id)
                    .execute(&mut *tx)
                    .await?;
                replace_tags(&mut tx, package_id, &BTreeMap::new()).await?;
                detail = serde_json::json!({});
            }
            PackageChange::SetMaintainers(ids) => {
                sqlx::query("DELETE FROM maintainers WHERE package_id = ?")
                    .bind(package_id)
                    .execute(&mut *tx)
                    .await?;
                for id in ids {
                    sqlx::query(
                        "INSERT OR IGNORE INTO maintainers (package_id, user_id) VALUES (?, ?)",
                    )
                    .bind(package_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                detail = serde_json::json!({ "maintainers": ids });
            }
            PackageChange::SetDistTag { tag, version } => {
                sqlx::query("INSERT INTO dist_tags (package_id, tag, version) VALUES (?, ?, ?)
                             ON CONFLICT (package_id, tag) DO UPDATE SET version = excluded.version")
                    .bind(package_id)
                    .bind(tag)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                detail = serde_json::json!({ "tag": tag, "version": version });
            }
            PackageChange::RemoveDistTag(tag) => {
                sqlx::query("DELETE FROM dist_tags WHERE package_id = ? AND tag = ?")
                    .bind(package_id)
                    .bind(tag)
                    .execute(&mut *tx)
                    .await?;
                detail = serde_json::json!({ "tag": tag });
            }
            PackageChange::SetAccess(access) => {
                sqlx::query("UPDATE packages SET access = ? WHERE id = ?")
                    .bind(access)
                    .bind(package_id)
                    .execute(&mut *tx)
                    .await?;
                detail = serde_json::json!({ "access": access });
            }
        }
        let rev = bump_rev(&mut tx, package_id, &now).await?;
        record_event(
            &mut tx,
            package_id,
            change.kind(),
            None,
            actor_id,
            &now,
            detail,
        )
        .await?;
        tx.commit().await?;
        Ok(rev)
    }

    async fn scope_owners(&self, scope: &str) -> StoreResult<Vec<ScopeOwner>> {
        let rows = sqlx::query("SELECT user_id, assigned_by_admin FROM scope_owners WHERE scope = ? ORDER BY created_at")
            .bind(scope)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ScopeOwner {
                    user_id: row.try_get("user_id")?,
                    assigned_by_admin: row.try_get("assigned_by_admin")?,
                })
            })
            .collect()
    }

    async fn assign_scope(
        &self,
        scope: &str,
        user_id: i64,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO scope_owners (scope, user_id, assigned_by_admin, created_at) VALUES (?, ?, 1, ?)
                     ON CONFLICT (scope, user_id) DO UPDATE SET assigned_by_admin = 1")
            .bind(scope)
            .bind(user_id)
            .bind(format_time(now))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn search(
        &self,
        terms: &[String],
        from: u64,
        size: u64,
    ) -> StoreResult<(Vec<String>, u64)> {
        // Public packages with a live version: one that is only staged does not exist yet.
        let mut filter = String::from(
            "unpublished_at IS NULL AND access = 'public'
             AND EXISTS (SELECT 1 FROM versions v WHERE v.package_id = packages.id AND v.unpublished_at IS NULL)",
        );
        for _ in terms {
            filter.push_str(
                " AND (instr(name, ?) > 0 OR instr(lower(coalesce(description, '')), ?) > 0 OR instr(lower(coalesce(keywords, '')), ?) > 0)",
            );
        }
        let count_sql = format!("SELECT count(*) AS n FROM packages WHERE {filter}");
        let list_sql = format!(
            "SELECT name FROM packages WHERE {filter}
             ORDER BY (name = ?) DESC, length(name), name LIMIT ? OFFSET ?"
        );
        let mut count = sqlx::query(trusted_sql(count_sql.clone()));
        let mut list = sqlx::query(trusted_sql(list_sql.clone()));
        for term in terms {
            count = count.bind(term).bind(term).bind(term);
            list = list.bind(term).bind(term).bind(term);
        }
        let total: i64 = count.fetch_one(&self.reader).await?.try_get("n")?;
        let rows = list
            .bind(terms.join(" "))
            .bind(to_i64(size))
            .bind(to_i64(from))
            .fetch_all(&self.reader)
            .await?;
        let names = rows
            .iter()
            .map(|r| r.try_get("name"))
            .collect::<Result<Vec<String>, _>>()?;
        Ok((names, u64::try_from(total).unwrap_or(0)))
    }

    async fn packages_of(&self, user_id: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT p.name FROM packages p JOIN maintainers m ON m.package_id = p.id
             WHERE m.user_id = ? AND p.unpublished_at IS NULL ORDER BY p.name",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("name"))
            .collect::<Result<Vec<String>, _>>()?)
    }

    async fn versions_not_signed_by(&self, keyid: &str) -> StoreResult<Vec<SignableVersion>> {
        let rows = sqlx::query(
            "SELECT p.name, v.version, v.integrity, v.published_at, v.signature_keyid, v.signature
             FROM versions v JOIN packages p ON p.id = v.package_id
             WHERE v.unpublished_at IS NULL
               AND (v.signature_keyid IS NULL OR v.signature IS NULL OR v.signature_keyid != ?)
             ORDER BY p.name, v.rowid",
        )
        .bind(keyid)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SignableVersion {
                    package: row.try_get("name")?,
                    version: row.try_get("version")?,
                    integrity: row.try_get("integrity")?,
                    published_at: time_col(row, "published_at")?,
                    signature: signature_cols(row)?,
                })
            })
            .collect()
    }

    async fn set_version_signatures(
        &self,
        signatures: &[(SignableVersion, VersionSignature)],
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for (version, signature) in signatures {
            sqlx::query(
                "UPDATE versions SET signature_keyid = ?, signature = ?
                 WHERE package_id = (SELECT id FROM packages WHERE name = ?) AND version = ? AND integrity = ?",
            )
            .bind(&signature.keyid)
            .bind(&signature.sig)
            .bind(&version.package)
            .bind(&version.version)
            .bind(&version.integrity)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn provenance(&self, name: &str, version: &str) -> StoreResult<Option<ProvenanceRecord>> {
        let row = sqlx::query(
            "SELECT pr.predicate_type, pr.bundle, pr.summary, pr.created_at
             FROM provenance pr JOIN packages p ON p.id = pr.package_id
             WHERE p.name = ? AND pr.version = ?",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let summary: String = row.try_get("summary")?;
        Ok(Some(ProvenanceRecord {
            predicate_type: row.try_get("predicate_type")?,
            bundle: row.try_get("bundle")?,
            summary: serde_json::from_str(&summary).map_err(|_| {
                StoreError::Corrupt(format!("provenance summary of {name}@{version}"))
            })?,
            created_at: time_col(&row, "created_at")?,
        }))
    }
}

async fn replace_tags(
    conn: &mut SqliteConnection,
    package_id: i64,
    tags: &BTreeMap<String, String>,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM dist_tags WHERE package_id = ?")
        .bind(package_id)
        .execute(&mut *conn)
        .await?;
    for (tag, version) in tags {
        sqlx::query("INSERT INTO dist_tags (package_id, tag, version) VALUES (?, ?, ?)")
            .bind(package_id)
            .bind(tag)
            .bind(version)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A non-negative count column (sizes, file counts) of the row describing `what`.
fn count_col(row: &SqliteRow, col: &str, what: &str) -> StoreResult<u64> {
    let n: i64 = row.try_get(col)?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{col} of {what}")))
}

/// The user joined in as `uid`, `uname`, `uemail` (publisher of a version, stager of a stage).
fn person_cols(row: &SqliteRow) -> StoreResult<Person> {
    Ok(Person {
        id: row.try_get("uid")?,
        name: row.try_get("uname")?,
        email: row.try_get("uemail")?,
    })
}

fn stage_from_row(row: &SqliteRow) -> StoreResult<StageRecord> {
    let id: String = row.try_get("id")?;
    let manifest: String = row.try_get("manifest")?;
    let manifest = match serde_json::from_str(&manifest) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(StoreError::Corrupt(format!("manifest of stage {id}"))),
    };
    let state: String = row.try_get("state")?;
    let state = serde_json::from_str(&state)
        .map_err(|_| StoreError::Corrupt(format!("state of stage {id}")))?;
    let what = format!("stage {id}");
    let count = |col: &str| count_col(row, col, &what);
    Ok(StageRecord {
        package: row.try_get("package")?,
        version: row.try_get("version")?,
        tag: row.try_get("tag")?,
        manifest,
        integrity: row.try_get("integrity")?,
        shasum: row.try_get("shasum")?,
        sha512_hex: row.try_get("sha512_hex")?,
        size: count("size")?,
        file_count: count("file_count")?,
        unpacked_size: count("unpacked_size")?,
        stager: person_cols(row)?,
        created_at: time_col(row, "created_at")?,
        state_kind: row.try_get("state_kind")?,
        state,
        seq: row.try_get("seq")?,
        due_at: opt_time_col(row, "due_at")?,
        id,
    })
}

const STAGE_SELECT: &str = "SELECT s.id, p.name AS package, s.version, s.tag, s.manifest, s.integrity, s.shasum, s.sha512_hex,
        s.size, s.file_count, s.unpacked_size, s.created_at, s.state_kind, s.state, s.seq, s.due_at,
        u.id AS uid, u.name AS uname, u.email AS uemail
    FROM stages s JOIN packages p ON p.id = s.package_id JOIN users u ON u.id = s.stager_id";

async fn record_gate_event(
    conn: &mut SqliteConnection,
    event: &GateEventRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO gate_events (stage_id, subject, kind, actor_id, actor_name, at, sha512_hex, factor, detail)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&event.stage_id)
    .bind(&event.subject)
    .bind(&event.kind)
    .bind(event.actor_id)
    .bind(&event.actor_name)
    .bind(format_time(event.at))
    .bind(&event.sha512_hex)
    .bind(&event.factor)
    .bind(event.detail.to_string())
    .execute(&mut *conn)
    .await?;
    webhooks::enqueue_deliveries(conn, event).await
}

#[async_trait]
impl Releases for SqliteStore {
    async fn policy(&self, subject: &str) -> StoreResult<Option<serde_json::Value>> {
        let row = sqlx::query("SELECT patch FROM release_policies WHERE subject = ?")
            .bind(subject)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| {
            let patch: String = r.try_get("patch")?;
            serde_json::from_str(&patch)
                .map_err(|_| StoreError::Corrupt(format!("policy of {subject}")))
        })
        .transpose()
    }

    async fn set_policy(
        &self,
        subject: &str,
        patch: serde_json::Value,
        event: GateEventRecord,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        if patch.as_object().is_some_and(serde_json::Map::is_empty) {
            sqlx::query("DELETE FROM release_policies WHERE subject = ?")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO release_policies (subject, patch, updated_at, updated_by) VALUES (?, ?, ?, ?)
                 ON CONFLICT (subject) DO UPDATE SET patch = excluded.patch, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            )
            .bind(subject)
            .bind(patch.to_string())
            .bind(format_time(event.at))
            .bind(event.actor_id)
            .execute(&mut *tx)
            .await?;
        }
        record_gate_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_stage(&self, stage: NewStage) -> StoreResult<()> {
        let now = format_time(stage.now);
        let mut tx = self.begin_write().await?;
        let target = PackageTarget {
            name: &stage.name,
            scope: stage.scope.as_deref(),
            expected_rev: stage.expected_rev,
            claim_scope: stage.claim_scope.as_deref(),
            access: stage.access.as_deref(),
            owner_id: stage.version.publisher_id,
        };
        let package_id = ensure_package(&mut tx, &target, &now).await?;
        let v = &stage.version;
        ensure_version_free(&mut tx, package_id, &v.version).await?;
        sqlx::query(
            "INSERT INTO stages (id, package_id, version, tag, manifest, integrity, shasum, sha512_hex, size, file_count,
                                 unpacked_size, stager_id, created_at, state_kind, state, seq, due_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
        )
        .bind(&stage.id)
        .bind(package_id)
        .bind(&v.version)
        .bind(&stage.tag)
        .bind(serde_json::Value::Object(v.manifest.clone()).to_string())
        .bind(&v.integrity)
        .bind(&v.shasum)
        .bind(&v.sha512_hex)
        .bind(to_i64(v.size))
        .bind(to_i64(v.file_count))
        .bind(to_i64(v.unpacked_size))
        .bind(v.publisher_id)
        .bind(&now)
        .bind(&stage.state_kind)
        .bind(stage.state.to_string())
        .bind(stage.due_at.map(format_time))
        .execute(&mut *tx)
        .await?;
        insert_provenance(&mut tx, package_id, v, &now).await?;
        record_gate_event(&mut tx, &stage.event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn stage(&self, id: &str) -> StoreResult<Option<StageRecord>> {
        let row = sqlx::query(trusted_sql(format!("{STAGE_SELECT} WHERE s.id = ?")))
            .bind(id)
            .fetch_optional(&self.writer)
            .await?;
        row.as_ref().map(stage_from_row).transpose()
    }

    async fn stages_for_maintainer(
        &self,
        user_id: i64,
        package: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<StageRecord>, u64)> {
        let filter = "s.package_id IN (SELECT package_id FROM maintainers WHERE user_id = ?) AND (? IS NULL OR p.name = ?)";
        let total: i64 = sqlx::query(trusted_sql(format!(
            "SELECT count(*) AS n FROM stages s JOIN packages p ON p.id = s.package_id WHERE {filter}"
        )))
        .bind(user_id)
        .bind(package)
        .bind(package)
        .fetch_one(&self.reader)
        .await?
        .try_get("n")?;
        let rows = sqlx::query(trusted_sql(format!(
            "{STAGE_SELECT} WHERE {filter} ORDER BY s.created_at DESC, s.id LIMIT ? OFFSET ?"
        )))
        .bind(user_id)
        .bind(package)
        .bind(package)
        .bind(to_i64(limit))
        .bind(to_i64(offset))
        .fetch_all(&self.reader)
        .await?;
        let stages = rows
            .iter()
            .map(stage_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((stages, u64::try_from(total).unwrap_or(0)))
    }

    async fn update_stage(&self, update: StageUpdate) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(trusted_sql(format!("{STAGE_SELECT} WHERE s.id = ?")))
            .bind(&update.id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(format!("stage {}", update.id)));
        };
        let stage = stage_from_row(&row)?;
        if stage.seq != update.expected_seq {
            return Err(StoreError::Conflict);
        }
        sqlx::query(
            "UPDATE stages SET state_kind = ?, state = ?, seq = seq + 1, due_at = ? WHERE id = ?",
        )
        .bind(&update.state_kind)
        .bind(update.state.to_string())
        .bind(update.due_at.map(format_time))
        .bind(&update.id)
        .execute(&mut *tx)
        .await?;
        record_gate_event(&mut tx, &update.event).await?;
        if let Some(promotion) = &update.promote {
            let package_id: i64 = sqlx::query("SELECT package_id FROM stages WHERE id = ?")
                .bind(&update.id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("package_id")?;
            let version = NewVersion {
                version: stage.version.clone(),
                manifest: promotion.manifest.clone(),
                integrity: stage.integrity.clone(),
                shasum: stage.shasum.clone(),
                sha512_hex: stage.sha512_hex.clone(),
                size: stage.size,
                file_count: stage.file_count,
                unpacked_size: stage.unpacked_size,
                publisher_id: stage.stager.id,
                // Stored when the version was staged, under the same name and version.
                provenance: None,
            };
            let live = LiveVersion {
                version: &version,
                tag: &stage.tag,
                description: promotion.description.as_deref(),
                keywords: &promotion.keywords,
                signature: Some(&promotion.signature),
            };
            insert_live_version(
                &mut tx,
                package_id,
                &live,
                &format_time(promotion.at),
                "promote",
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn due_stages(&self, now: OffsetDateTime) -> StoreResult<Vec<StageRecord>> {
        let rows = sqlx::query(trusted_sql(format!(
            "{STAGE_SELECT} WHERE s.due_at IS NOT NULL AND s.due_at <= ? ORDER BY s.due_at"
        )))
        .bind(format_time(now))
        .fetch_all(&self.writer)
        .await?;
        rows.iter().map(stage_from_row).collect()
    }

    async fn gate_events(&self, stage_id: &str) -> StoreResult<Vec<GateEventRecord>> {
        let rows = sqlx::query(
            "SELECT stage_id, subject, kind, actor_id, actor_name, at, sha512_hex, factor, detail FROM gate_events WHERE stage_id = ? ORDER BY id",
        )
        .bind(stage_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let detail: String = row.try_get("detail")?;
                Ok(GateEventRecord {
                    stage_id: row.try_get("stage_id")?,
                    subject: row.try_get("subject")?,
                    kind: row.try_get("kind")?,
                    actor_id: row.try_get("actor_id")?,
                    actor_name: row.try_get("actor_name")?,
                    at: time_col(row, "at")?,
                    sha512_hex: row.try_get("sha512_hex")?,
                    factor: row.try_get("factor")?,
                    detail: serde_json::from_str(&detail)
                        .map_err(|_| StoreError::Corrupt("gate event detail".into()))?,
                })
            })
            .collect()
    }
}
