//! Durable state: accounts, guess counters with the pending confirmation, server secrets.
//!
//! One implementation over `sqlx::Any`, two real backends chosen by the URL: SQLite (embedded
//! default, WAL) and PostgreSQL (several keyserver instances on one database). The SQL is the
//! common subset of both; each backend has its own migrations for its column types. Every
//! state change is one atomic statement, so counters stay right with concurrent instances.

use anyhow::Result;
use sqlx::Row;
use stb_protocol::{Identifier, SealedData, StoredRecord, Suite, Verifier};
pub use stb_server_common::db::Backend;
use stb_server_common::db::Database;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Guess-limit state of one identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuessState {
    /// Consecutive unconfirmed recoveries.
    pub failures: u32,
    /// Time of the last evaluated recovery, Unix milliseconds.
    pub last_attempt_ms: i64,
    /// Locked until an operator unlocks it.
    pub locked: bool,
    /// Unconfirmed recoveries in the current long window (a success does not reset it).
    pub window_failures: u32,
}

/// A confirmation the server waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    /// Suite of the exchange.
    pub suite: u8,
    /// TH.
    pub session_id: [u8; 32],
    /// Expected tag.
    pub tag: [u8; 32],
    /// Expiry, Unix milliseconds.
    pub expires_ms: i64,
}

/// Result of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// A new account.
    Created,
    /// The same subject replaced its record (password change).
    Replaced,
    /// The identifier belongs to another certificate subject: nothing written.
    OtherSubject,
    /// A new identifier, but the subject holds as many as it may: nothing written.
    TooMany,
}

/// The guess limits `record_attempt` enforces, in milliseconds and counts.
#[derive(Debug, Clone, Copy)]
pub struct AttemptRules {
    /// Minimum time between two evaluated attempts.
    pub spacing_ms: i64,
    /// Consecutive unconfirmed attempts that lock.
    pub max_failures: u32,
    /// The long window.
    pub long_window_ms: i64,
    /// Unconfirmed attempts within the long window that lock.
    pub max_failures_long: u32,
}

/// One row of `accounts list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountSummary {
    /// N.
    pub identifier: String,
    /// Certificate subject that owns it.
    pub subject: String,
    /// Creation time, Unix ms.
    pub created_ms: i64,
    /// Last replacement, Unix ms.
    pub updated_ms: i64,
    /// Unconfirmed recoveries.
    pub failures: u32,
    /// Locked.
    pub locked: bool,
}

/// Connection pool plus the backend it speaks to.
#[derive(Clone, Debug)]
pub struct Store {
    db: Database,
}

impl Store {
    /// Connects (creating an SQLite file if needed) and runs the backend's migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let db = Database::open(url, &SQLITE_MIGRATIONS, &POSTGRES_MIGRATIONS).await?;
        Ok(Self { db })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.db.backend
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await
    }

    /// Returns the named secret, storing `candidate` first if there is none. Every instance
    /// on one database gets the same value.
    pub async fn secret(&self, name: &str, candidate: &[u8; 32]) -> Result<[u8; 32]> {
        sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(candidate.to_vec())
            .execute(&self.db.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM meta WHERE name = $1")
            .bind(name)
            .fetch_one(&self.db.pool)
            .await?;
        let value: Vec<u8> = row.try_get(0)?;
        value
            .try_into()
            .map_err(|_| anyhow::anyhow!("stored secret {name} has a bad length"))
    }

    /// The stored record of an identifier.
    pub async fn record(&self, id: &Identifier) -> Result<Option<StoredRecord>> {
        let row = sqlx::query("SELECT suite, verifier, sealed FROM accounts WHERE identifier = $1")
            .bind(id.as_str())
            .fetch_optional(&self.db.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let suite: i64 = row.try_get(0)?;
        let verifier: Vec<u8> = row.try_get(1)?;
        let sealed: Vec<u8> = row.try_get(2)?;
        let record = StoredRecord {
            suite: Suite::from_id(u8::try_from(suite)?)?,
            verifier: Verifier::from_bytes(
                verifier
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("corrupt verifier"))?,
            ),
            sealed: SealedData::from_bytes(&sealed)?,
        };
        Ok(Some(record))
    }

    /// Stores a registration if the identifier is new or belongs to the same subject, and a
    /// new identifier only while the subject holds fewer than `max_identifiers`. One
    /// statement; under concurrent registrations of one subject on several instances the
    /// count may overrun by the number of registrations in flight.
    pub async fn upsert_account(
        &self,
        id: &Identifier,
        record: &StoredRecord,
        subject_der: &[u8],
        subject_name: &str,
        now_ms: i64,
        max_identifiers: u32,
    ) -> Result<Upsert> {
        let row = sqlx::query(
            "INSERT INTO accounts \
               (identifier, suite, verifier, sealed, subject_der, subject_name, created_ms, updated_ms) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $7 \
             WHERE (SELECT COUNT(*) FROM accounts WHERE subject_der = $5) < $8 \
                OR EXISTS (SELECT 1 FROM accounts WHERE identifier = $1 AND subject_der = $5) \
             ON CONFLICT (identifier) DO UPDATE SET \
               suite = excluded.suite, verifier = excluded.verifier, sealed = excluded.sealed, \
               subject_name = excluded.subject_name, updated_ms = excluded.updated_ms \
             WHERE accounts.subject_der = excluded.subject_der \
             RETURNING created_ms",
        )
        .bind(id.as_str())
        .bind(i64::from(record.suite.id()))
        .bind(record.verifier.expose().to_vec())
        .bind(record.sealed.as_bytes().to_vec())
        .bind(subject_der.to_vec())
        .bind(subject_name)
        .bind(now_ms)
        .bind(i64::from(max_identifiers))
        .fetch_optional(&self.db.pool)
        .await?;
        // A subject at its cap is told so whether the identifier is free or taken: otherwise
        // it could tell them apart for free (a "taken" answer costs probe budget, this none).
        Ok(match row {
            Some(row) if row.try_get::<i64, _>(0)? == now_ms => Upsert::Created,
            Some(_) => Upsert::Replaced,
            None if self.held_by(subject_der).await? >= i64::from(max_identifiers) => {
                Upsert::TooMany
            }
            None => Upsert::OtherSubject,
        })
    }

    /// How many identifiers a certificate subject (DER) holds.
    async fn held_by(&self, subject_der: &[u8]) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM accounts WHERE subject_der = $1")
            .bind(subject_der.to_vec())
            .fetch_one(&self.db.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The database, for what `stb_server_common::db::Database` does itself (attempt budgets).
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Deletes what no rule needs any more: counter rows of identifiers (known or not, the
    /// same rule for both, so pruning reveals nothing) neither locked, nor waiting for a
    /// confirmation, nor tried since `idle_since_ms`; and attempt windows started before
    /// `windows_before_ms`. Returns the number of counter rows deleted.
    pub async fn prune(
        &self,
        now_ms: i64,
        idle_since_ms: i64,
        windows_before_ms: i64,
    ) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM guesses WHERE locked = 0 AND last_attempt_ms < $1 \
               AND (pending_expires_ms IS NULL OR pending_expires_ms < $2)",
        )
        .bind(idle_since_ms)
        .bind(now_ms)
        .execute(&self.db.pool)
        .await?;
        self.db.prune_attempts(windows_before_ms).await?;
        Ok(done.rows_affected())
    }

    /// Rows in the counter table (metrics and tests).
    pub async fn count_guess_rows(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM guesses")
            .fetch_one(&self.db.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Current guess state (read only).
    pub async fn guess_state(&self, id: &Identifier) -> Result<Option<GuessState>> {
        let row = sqlx::query(
            "SELECT failures, last_attempt_ms, locked, window_failures \
             FROM guesses WHERE identifier = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|r| guess_from_row(&r)).transpose()
    }

    /// Counts one evaluated recovery and stores its pending confirmation, in one atomic
    /// statement that also re-checks the spacing and the lock (another instance may have
    /// counted an attempt meanwhile). `None` means refused: nothing was changed.
    pub async fn record_attempt(
        &self,
        id: &Identifier,
        now_ms: i64,
        rules: AttemptRules,
        pending: &PendingRow,
    ) -> Result<Option<GuessState>> {
        let row = sqlx::query(
            "INSERT INTO guesses (identifier, failures, last_attempt_ms, locked, \
               pending_suite, pending_session, pending_tag, pending_expires_ms, \
               window_failures, window_start_ms) \
             VALUES ($1, 1, $2, CASE WHEN 1 >= $4 OR 1 >= $10 THEN 1 ELSE 0 END, \
               $5, $6, $7, $8, 1, $2) \
             ON CONFLICT (identifier) DO UPDATE SET \
               failures = guesses.failures + 1, \
               last_attempt_ms = excluded.last_attempt_ms, \
               window_failures = CASE WHEN guesses.window_start_ms + $9 > $2 \
                 THEN guesses.window_failures + 1 ELSE 1 END, \
               window_start_ms = CASE WHEN guesses.window_start_ms + $9 > $2 \
                 THEN guesses.window_start_ms ELSE $2 END, \
               locked = CASE WHEN guesses.failures + 1 >= $4 \
                 OR (guesses.window_start_ms + $9 > $2 AND guesses.window_failures + 1 >= $10) \
                 THEN 1 ELSE 0 END, \
               pending_suite = excluded.pending_suite, \
               pending_session = excluded.pending_session, \
               pending_tag = excluded.pending_tag, \
               pending_expires_ms = excluded.pending_expires_ms \
             WHERE guesses.locked = 0 AND guesses.last_attempt_ms <= $2 - $3 \
             RETURNING failures, last_attempt_ms, locked, window_failures",
        )
        .bind(id.as_str())
        .bind(now_ms)
        .bind(rules.spacing_ms)
        .bind(i64::from(rules.max_failures))
        .bind(i64::from(pending.suite))
        .bind(pending.session_id.to_vec())
        .bind(pending.tag.to_vec())
        .bind(pending.expires_ms)
        .bind(rules.long_window_ms)
        .bind(i64::from(rules.max_failures_long))
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|r| guess_from_row(&r)).transpose()
    }

    /// The pending confirmation of an identifier, if any.
    pub async fn pending(&self, id: &Identifier) -> Result<Option<PendingRow>> {
        let row = sqlx::query(
            "SELECT pending_suite, pending_session, pending_tag, pending_expires_ms \
             FROM guesses WHERE identifier = $1 AND pending_session IS NOT NULL",
        )
        .bind(id.as_str())
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let suite: i64 = row.try_get(0)?;
        let session: Vec<u8> = row.try_get(1)?;
        let tag: Vec<u8> = row.try_get(2)?;
        let bad = || anyhow::anyhow!("corrupt pending confirmation");
        Ok(Some(PendingRow {
            suite: u8::try_from(suite)?,
            session_id: session.try_into().map_err(|_| bad())?,
            tag: tag.try_into().map_err(|_| bad())?,
            expires_ms: row.try_get(3)?,
        }))
    }

    /// Consumes the pending confirmation `session_id` (once): resets the consecutive count and
    /// the lock, and takes this attempt back from the long-window count, which otherwise
    /// stays (so once it is full, each later unconfirmed attempt locks again). Returns
    /// whether it was still there.
    pub async fn confirm(&self, id: &Identifier, session_id: &[u8; 32]) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE guesses SET failures = 0, locked = 0, \
               window_failures = CASE WHEN window_failures > 0 THEN window_failures - 1 ELSE 0 END, \
               pending_suite = NULL, pending_session = NULL, pending_tag = NULL, \
               pending_expires_ms = NULL \
             WHERE identifier = $1 AND pending_session = $2",
        )
        .bind(id.as_str())
        .bind(session_id.to_vec())
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Operator unlock: clears the lock and the counter.
    pub async fn unlock(&self, id: &Identifier) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE guesses SET failures = 0, window_failures = 0, locked = 0 \
             WHERE identifier = $1",
        )
        .bind(id.as_str())
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes an account and its counters.
    pub async fn delete(&self, id: &Identifier) -> Result<bool> {
        let mut tx = self.db.pool.begin().await?;
        let done = sqlx::query("DELETE FROM accounts WHERE identifier = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM guesses WHERE identifier = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Accounts with their counters, by identifier.
    pub async fn list(&self, only: Option<&Identifier>) -> Result<Vec<AccountSummary>> {
        let rows = sqlx::query(
            "SELECT a.identifier, a.subject_name, a.created_ms, a.updated_ms, \
               COALESCE(g.failures, 0), COALESCE(g.locked, 0) \
             FROM accounts a LEFT JOIN guesses g ON g.identifier = a.identifier \
             WHERE $1 = '' OR a.identifier = $1 ORDER BY a.identifier",
        )
        .bind(only.map(Identifier::as_str).unwrap_or(""))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AccountSummary {
                    identifier: r.try_get(0)?,
                    subject: r.try_get(1)?,
                    created_ms: r.try_get(2)?,
                    updated_ms: r.try_get(3)?,
                    failures: u32::try_from(r.try_get::<i64, _>(4)?)?,
                    locked: r.try_get::<i64, _>(5)? != 0,
                })
            })
            .collect()
    }

    /// Number of accounts (for metrics and tests).
    pub async fn count_accounts(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.db.pool)
            .await?;
        Ok(row.try_get(0)?)
    }
}

fn guess_from_row(row: &sqlx::any::AnyRow) -> Result<GuessState> {
    Ok(GuessState {
        failures: u32::try_from(row.try_get::<i64, _>(0)?)?,
        last_attempt_ms: row.try_get(1)?,
        locked: row.try_get::<i64, _>(2)? != 0,
        window_failures: u32::try_from(row.try_get::<i64, _>(3)?)?,
    })
}
