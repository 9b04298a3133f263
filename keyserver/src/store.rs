//! Durable state: accounts, guess counters with the pending confirmation, server secrets.
//!
//! One implementation over `sqlx::Any`, two real backends chosen by the URL: SQLite (embedded
//! default, WAL) and PostgreSQL (several keyserver instances on one database). The SQL is the
//! common subset of both; each backend has its own migrations for its column types. Every
//! state change is one atomic statement, so counters stay right with concurrent instances.
//!
//! At rest (src/kek.rs): rows are keyed by a keyed hash of the identifier, and VP, the sealed
//! record, the identifier itself and the server secrets are wrapped under the KEK, which
//! never sits in the database.

mod inline;

use crate::kek::{Field, Keyring};
use anyhow::{Context, Result};
use hmac::{Hmac, KeyInit, Mac};
use inline::Param;
use sha2::{Digest, Sha256};
use sqlx::Row;
use stb_protocol::{Identifier, SealedData, SecretArray, StoredRecord, Suite, Verifier};
pub use stb_server_common::db::Backend;
use stb_server_common::db::Database;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The `meta` row that proves at start that the configured KEK is this database's.
const KEK_CHECK: &str = "kek_check";
const KEK_CHECK_VALUE: &[u8] = b"stb-keyserver kek check";
/// Row keys of hashed identifiers start with this; identifiers themselves cannot contain ':'.
const HASHED: &str = "h:";

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

/// What a recovery reads about its identifier ([`Store::recovery_view`]).
#[derive(Debug)]
pub struct RecoveryView {
    /// The identifier's row key (the keyed hash that names its rows).
    pub row_key: String,
    /// Its counters, if it has any.
    pub guess: Option<GuessState>,
    /// Its record, if it has one.
    pub record: Option<StoredRecord>,
}

/// A confirmation the server waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    /// Suite of the exchange.
    pub suite: u8,
    /// TH.
    pub session_id: [u8; 32],
    /// SHA-256 of the expected tag ([`tag_digest`]).
    pub tag_digest: [u8; 32],
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
    /// A conditional replacement found another record than the one it names (or none of
    /// this subject's): nothing written.
    Changed,
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

/// Rows per key-encryption key id (`keyserver kek status`).
pub type KekUsage = BTreeMap<String, u64>;

/// Connection pool, the backend it speaks to, and the keys of what is stored wrapped.
#[derive(Clone, Debug)]
pub struct Store {
    db: Database,
    keys: Arc<AtRest>,
    /// SQLite: the recovery's statements on connections of their own (`store/inline.rs`).
    inline: Option<Arc<inline::Inline>>,
}

#[derive(Debug)]
struct AtRest {
    ring: Keyring,
    /// Key of the identifier hashes (a wrapped server secret, so it survives KEK rotations).
    identifier_key: SecretArray<32>,
}

impl Store {
    /// Connects (creating an SQLite file if needed), runs the backend's migrations, checks
    /// that `ring` opens this database (a clear refusal otherwise), and wraps what an older
    /// version stored in clear.
    pub async fn open(url: &str, ring: Keyring) -> Result<Self> {
        let db = Database::open(url, &SQLITE_MIGRATIONS, &POSTGRES_MIGRATIONS).await?;
        let check = ring.wrap(Field::Secret, KEK_CHECK.as_bytes(), KEK_CHECK_VALUE);
        let stored = meta_insert_get(&db, KEK_CHECK, &check).await?;
        let opened = ring
            .unwrap(Field::Secret, KEK_CHECK.as_bytes(), &stored)
            .context("the configured key-encryption key does not open this database")?;
        anyhow::ensure!(
            opened.expose() == KEK_CHECK_VALUE,
            "corrupt KEK check value"
        );
        let identifier_key =
            meta_secret(&db, &ring, "identifier_key", &stb_protocol::random_array()).await?;
        let inline = match db.backend {
            Backend::Sqlite => inline::Inline::open(url)?.map(Arc::new),
            Backend::Postgres => None,
        };
        let store = Self {
            db,
            keys: Arc::new(AtRest {
                ring,
                identifier_key: SecretArray::new(identifier_key),
            }),
            inline,
        };
        store.wrap_clear_rows().await?;
        Ok(store)
    }

    /// The id of the KEK new values are wrapped under.
    pub fn current_kek_id(&self) -> String {
        self.keys.ring.current_id()
    }

    /// The row key of an identifier: HMAC-SHA256 under the identifier key, hex.
    fn row_key(&self, id: &Identifier) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.keys.identifier_key.expose())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(id.as_str().as_bytes());
        format!("{HASHED}{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Rewrites rows an older version stored in clear (identifier as the key, VP and the
    /// sealed record in clear) into hashed and wrapped ones, one transaction per account.
    async fn wrap_clear_rows(&self) -> Result<()> {
        let rows = sqlx::query(
            "SELECT identifier, verifier, sealed FROM accounts WHERE identifier NOT LIKE 'h:%'",
        )
        .fetch_all(&self.db.pool)
        .await?;
        for row in &rows {
            let clear: String = row.try_get(0)?;
            let id = Identifier::parse(&clear)
                .with_context(|| format!("stored identifier {clear:?}"))?;
            let key = self.row_key(&id);
            let ring = &self.keys.ring;
            let mut tx = self.db.pool.begin().await?;
            sqlx::query(
                "UPDATE accounts SET identifier = $1, identifier_sealed = $2, verifier = $3, \
                   sealed = $4 WHERE identifier = $5",
            )
            .bind(&key)
            .bind(ring.wrap(Field::Identifier, key.as_bytes(), clear.as_bytes()))
            .bind(ring.wrap(
                Field::Verifier,
                key.as_bytes(),
                &row.try_get::<Vec<u8>, _>(1)?,
            ))
            .bind(ring.wrap(
                Field::Sealed,
                key.as_bytes(),
                &row.try_get::<Vec<u8>, _>(2)?,
            ))
            .bind(&clear)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        let guesses = sqlx::query("SELECT identifier FROM guesses WHERE identifier NOT LIKE 'h:%'")
            .fetch_all(&self.db.pool)
            .await?;
        for row in &guesses {
            let clear: String = row.try_get(0)?;
            let key = match Identifier::parse(&clear) {
                Ok(id) => self.row_key(&id),
                // Counters are only kept for parsed identifiers; drop anything else.
                Err(_) => String::new(),
            };
            let mut tx = self.db.pool.begin().await?;
            sqlx::query(
                "DELETE FROM guesses WHERE identifier = $1 \
                   AND ($2 = '' OR EXISTS (SELECT 1 FROM guesses WHERE identifier = $2))",
            )
            .bind(&clear)
            .bind(&key)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE guesses SET identifier = $1 WHERE identifier = $2")
                .bind(&key)
                .bind(&clear)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        if !rows.is_empty() || !guesses.is_empty() {
            if self.db.backend == Backend::Sqlite {
                // The clear values stay in freed pages and WAL frames until the file is
                // rewritten. (PostgreSQL keeps old row versions until VACUUM FULL: docs.)
                for sql in [
                    "PRAGMA wal_checkpoint(TRUNCATE)",
                    "VACUUM",
                    "PRAGMA wal_checkpoint(TRUNCATE)",
                ] {
                    sqlx::query(sql).execute(&self.db.pool).await?;
                }
            }
            tracing::info!(
                accounts = rows.len(),
                counters = guesses.len(),
                "wrapped rows stored in clear by an older version under the KEK"
            );
        }
        Ok(())
    }

    /// Re-wraps every value not under the current KEK (step 3 of a rotation, while serving:
    /// each update applies only if the row is unchanged since it was read). Returns the
    /// number of rows re-wrapped.
    pub async fn rewrap(&self) -> Result<u64> {
        let ring = &self.keys.ring;
        let mut done = 0;
        let rows =
            sqlx::query("SELECT identifier, identifier_sealed, verifier, sealed FROM accounts")
                .fetch_all(&self.db.pool)
                .await?;
        for row in &rows {
            let key: String = row.try_get(0)?;
            let (id, vp, sealed): (Vec<u8>, Vec<u8>, Vec<u8>) =
                (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
            if [&id, &vp, &sealed].iter().all(|w| ring.is_current(w)) {
                continue;
            }
            let k = key.as_bytes();
            let rewrap = |field, w: &[u8]| -> Result<Vec<u8>> {
                Ok(ring.wrap(field, k, ring.unwrap(field, k, w)?.expose()))
            };
            let changed = sqlx::query(
                "UPDATE accounts SET identifier_sealed = $1, verifier = $2, sealed = $3 \
                 WHERE identifier = $4 AND identifier_sealed = $5 AND verifier = $6 AND sealed = $7",
            )
            .bind(rewrap(Field::Identifier, &id)?)
            .bind(rewrap(Field::Verifier, &vp)?)
            .bind(rewrap(Field::Sealed, &sealed)?)
            .bind(&key)
            .bind(&id)
            .bind(&vp)
            .bind(&sealed)
            .execute(&self.db.pool)
            .await?;
            done += changed.rows_affected();
        }
        let metas = sqlx::query("SELECT name, value FROM meta")
            .fetch_all(&self.db.pool)
            .await?;
        for row in &metas {
            let (name, value): (String, Vec<u8>) = (row.try_get(0)?, row.try_get(1)?);
            if ring.is_current(&value) {
                continue;
            }
            let plain = ring.unwrap(Field::Secret, name.as_bytes(), &value)?;
            let changed = sqlx::query("UPDATE meta SET value = $1 WHERE name = $2 AND value = $3")
                .bind(ring.wrap(Field::Secret, name.as_bytes(), plain.expose()))
                .bind(&name)
                .bind(&value)
                .execute(&self.db.pool)
                .await?;
            done += changed.rows_affected();
        }
        Ok(done)
    }

    /// How many wrapped values each KEK id holds (a rotation ends when only the current
    /// one is left).
    pub async fn kek_usage(&self) -> Result<KekUsage> {
        let mut usage = KekUsage::new();
        let mut count = |w: &[u8]| {
            let id = crate::kek::key_id(w).map_or_else(|| "clear".to_owned(), hex::encode);
            *usage.entry(id).or_default() += 1;
        };
        for row in sqlx::query("SELECT identifier_sealed, verifier, sealed FROM accounts")
            .fetch_all(&self.db.pool)
            .await?
        {
            for i in 0..3 {
                count(&row.try_get::<Vec<u8>, _>(i)?);
            }
        }
        for row in sqlx::query("SELECT value FROM meta")
            .fetch_all(&self.db.pool)
            .await?
        {
            count(&row.try_get::<Vec<u8>, _>(0)?);
        }
        Ok(usage)
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
    /// The value is stored wrapped under the KEK; one an older version stored in clear is
    /// wrapped now.
    pub async fn secret(&self, name: &str, candidate: &[u8; 32]) -> Result<[u8; 32]> {
        meta_secret(&self.db, &self.keys.ring, name, candidate).await
    }

    /// The stored record of an identifier.
    pub async fn record(&self, id: &Identifier) -> Result<Option<StoredRecord>> {
        let key = self.row_key(id);
        let row = sqlx::query("SELECT suite, verifier, sealed FROM accounts WHERE identifier = $1")
            .bind(&key)
            .fetch_optional(&self.db.pool)
            .await?;
        row.map(|row| self.record_from_columns(&key, &Columns::of(&row, 0)?))
            .transpose()
            .map(Option::flatten)
    }

    /// What a recovery reads, in one statement: the identifier's counters and its record.
    pub async fn recovery_view(&self, id: &Identifier) -> Result<RecoveryView> {
        const SQL: &str = "SELECT g.failures, g.last_attempt_ms, g.locked, g.window_failures, \
               a.suite, a.verifier, a.sealed \
             FROM (SELECT CAST($1 AS TEXT) AS k) AS q \
             LEFT JOIN guesses g ON g.identifier = q.k \
             LEFT JOIN accounts a ON a.identifier = q.k";
        let row_key = self.row_key(id);
        let params = [Param::Text(&row_key)];
        // The counters (columns 0-3, NULL without a row) and the record (4-6).
        let read = |row: &dyn ReadColumn| -> Result<_> {
            let guess = match row.int(0)? {
                Some(_) => Some(guess_from(row)?),
                None => None,
            };
            Ok((guess, Columns::of(row, 4)?))
        };
        let (guess, record) = match self.inline(|inline| inline.read_one(SQL, &params, |r| read(r)))
        {
            Some(found) => found?.context("the recovery's read returned no row")?,
            None => read(
                &bind_all(sqlx::query(SQL), &params)
                    .fetch_one(&self.db.pool)
                    .await?,
            )?,
        };
        let record = self.record_from_columns(&row_key, &record)?;
        Ok(RecoveryView {
            row_key,
            guess,
            record,
        })
    }

    /// `run` on the inline connections (`store/inline.rs`). None: there are none (PostgreSQL,
    /// an in-memory SQLite), or another writer holds SQLite's lock: the caller runs the
    /// statement through sqlx. Asks sqlx for a WAL checkpoint when one is due (the inline
    /// writer runs none itself: its fsyncs would hold a request thread).
    fn inline<T>(&self, run: impl FnOnce(&inline::Inline) -> Result<T>) -> Option<Result<T>> {
        let inline = self.inline.as_ref()?;
        let result = run(inline);
        if inline.checkpoint_due() {
            let pool = self.db.pool.clone();
            tokio::spawn(async move {
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(error = %e, "WAL checkpoint");
                }
            });
        }
        match result {
            Err(e) if inline::is_busy(&e) => None,
            done => Some(done),
        }
    }

    /// The record in `columns`, `None` when they are NULL (no account).
    fn record_from_columns(&self, key: &str, columns: &Columns) -> Result<Option<StoredRecord>> {
        let (Some(suite), Some(verifier), Some(sealed)) =
            (columns.suite, &columns.verifier, &columns.sealed)
        else {
            return Ok(None);
        };
        let ring = &self.keys.ring;
        let verifier = ring.unwrap(Field::Verifier, key.as_bytes(), verifier)?;
        let sealed = ring.unwrap(Field::Sealed, key.as_bytes(), sealed)?;
        Ok(Some(StoredRecord {
            suite: Suite::from_id(u8::try_from(suite)?)?,
            verifier: Verifier::from_bytes(
                verifier
                    .expose()
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("corrupt verifier"))?,
            ),
            sealed: SealedData::from_bytes(sealed.expose())?,
        }))
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
        let key = self.row_key(id);
        let ring = &self.keys.ring;
        let row = sqlx::query(
            "INSERT INTO accounts \
               (identifier, suite, verifier, sealed, subject_der, subject_name, created_ms, updated_ms, \
                identifier_sealed) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $7, $9 \
             WHERE (SELECT COUNT(*) FROM accounts WHERE subject_der = $5) < $8 \
                OR EXISTS (SELECT 1 FROM accounts WHERE identifier = $1 AND subject_der = $5) \
             ON CONFLICT (identifier) DO UPDATE SET \
               suite = excluded.suite, verifier = excluded.verifier, sealed = excluded.sealed, \
               subject_name = excluded.subject_name, updated_ms = excluded.updated_ms \
             WHERE accounts.subject_der = excluded.subject_der \
             RETURNING created_ms",
        )
        .bind(&key)
        .bind(i64::from(record.suite.id()))
        .bind(ring.wrap(Field::Verifier, key.as_bytes(), record.verifier.expose()))
        .bind(ring.wrap(Field::Sealed, key.as_bytes(), record.sealed.as_bytes()))
        .bind(subject_der.to_vec())
        .bind(subject_name)
        .bind(now_ms)
        .bind(i64::from(max_identifiers))
        .bind(ring.wrap(Field::Identifier, key.as_bytes(), id.as_str().as_bytes()))
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

    /// Replaces the subject's record of `id` only if it is still the one whose sealed data
    /// has SHA-256 `replaces` (a box adding KL to the record it recovered, while another box
    /// may do the same: the second must not replace the first's KL). Compare-and-swap on
    /// the stored (wrapped) bytes, so a change between the read and the write is seen too.
    pub async fn replace_account(
        &self,
        id: &Identifier,
        record: &StoredRecord,
        subject_der: &[u8],
        subject_name: &str,
        now_ms: i64,
        replaces: &[u8; 32],
    ) -> Result<Upsert> {
        let key = self.row_key(id);
        let ring = &self.keys.ring;
        let row =
            sqlx::query("SELECT sealed FROM accounts WHERE identifier = $1 AND subject_der = $2")
                .bind(&key)
                .bind(subject_der.to_vec())
                .fetch_optional(&self.db.pool)
                .await?;
        let Some(row) = row else {
            return Ok(Upsert::Changed);
        };
        let stored: Vec<u8> = row.try_get(0)?;
        let current = ring.unwrap(Field::Sealed, key.as_bytes(), &stored)?;
        if Sha256::digest(current.expose()).as_slice() != replaces {
            return Ok(Upsert::Changed);
        }
        let done = sqlx::query(
            "UPDATE accounts SET suite = $1, verifier = $2, sealed = $3, updated_ms = $4, \
               subject_name = $8 \
             WHERE identifier = $5 AND subject_der = $6 AND sealed = $7",
        )
        .bind(i64::from(record.suite.id()))
        .bind(ring.wrap(Field::Verifier, key.as_bytes(), record.verifier.expose()))
        .bind(ring.wrap(Field::Sealed, key.as_bytes(), record.sealed.as_bytes()))
        .bind(now_ms)
        .bind(&key)
        .bind(subject_der.to_vec())
        .bind(stored)
        .bind(subject_name)
        .execute(&self.db.pool)
        .await?;
        Ok(match done.rows_affected() {
            1 => Upsert::Replaced,
            _ => Upsert::Changed,
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
        .bind(self.row_key(id))
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|r| guess_from(&r)).transpose()
    }

    /// Counts one evaluated recovery and stores its pending confirmation, in one atomic
    /// statement that also re-checks the spacing and the lock (another instance may have
    /// counted an attempt meanwhile). `None` means refused: nothing was changed. Without a
    /// spacing rule nothing is refused for time: two attempts at once take their times
    /// before either is counted, and may be counted in the other order.
    pub async fn record_attempt(
        &self,
        id: &Identifier,
        now_ms: i64,
        rules: AttemptRules,
        pending: &PendingRow,
    ) -> Result<Option<GuessState>> {
        const SQL: &str = "INSERT INTO guesses (identifier, failures, last_attempt_ms, locked, \
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
             WHERE guesses.locked = 0 AND ($3 = 0 OR guesses.last_attempt_ms <= $2 - $3) \
             RETURNING failures, last_attempt_ms, locked, window_failures";
        let key = self.row_key(id);
        let params = [
            Param::Text(&key),
            Param::Int(now_ms),
            Param::Int(rules.spacing_ms),
            Param::Int(i64::from(rules.max_failures)),
            Param::Int(i64::from(pending.suite)),
            Param::Blob(&pending.session_id),
            Param::Blob(&pending.tag_digest),
            Param::Int(pending.expires_ms),
            Param::Int(rules.long_window_ms),
            Param::Int(i64::from(rules.max_failures_long)),
        ];
        let _turn = self.db.write_turn().await;
        if let Some(done) = self.inline(|inline| inline.write_one(SQL, &params, |r| guess_from(r)))
        {
            return done;
        }
        let row = bind_all(sqlx::query(SQL), &params)
            .fetch_optional(&self.db.pool)
            .await?;
        row.map(|r| guess_from(&r)).transpose()
    }

    /// Consumes the pending confirmation of `id` if the box's `suite`, `session_id` and
    /// `tag` match it and it has not expired, in one statement: resets the consecutive count
    /// and the lock, and takes this attempt back from the long-window count, which otherwise
    /// stays (so once it is full, each later unconfirmed attempt locks again). Returns whether
    /// it was consumed; a refusal changes nothing. The row holds SHA-256 of the expected tag
    /// and the statement compares SHA-256 of the box's: the database's comparison is not
    /// constant time, and what its timing could tell is a prefix of a hash, which helps
    /// nobody forge a tag.
    pub async fn confirm(
        &self,
        id: &Identifier,
        suite: u8,
        session_id: &[u8; 32],
        tag: &[u8; 32],
        now_ms: i64,
    ) -> Result<bool> {
        const SQL: &str = "UPDATE guesses SET failures = 0, locked = 0, \
               window_failures = CASE WHEN window_failures > 0 THEN window_failures - 1 ELSE 0 END, \
               pending_suite = NULL, pending_session = NULL, pending_tag = NULL, \
               pending_expires_ms = NULL \
             WHERE identifier = $1 AND pending_session = $2 AND pending_tag = $3 \
               AND pending_suite = $4 AND pending_expires_ms >= $5";
        let key = self.row_key(id);
        let digest = tag_digest(tag);
        let params = [
            Param::Text(&key),
            Param::Blob(session_id),
            Param::Blob(&digest),
            Param::Int(i64::from(suite)),
            Param::Int(now_ms),
        ];
        let _turn = self.db.write_turn().await;
        let changed = match self.inline(|inline| inline.execute(SQL, &params)) {
            Some(changed) => changed?,
            None => {
                let done = bind_all(sqlx::query(SQL), &params)
                    .execute(&self.db.pool)
                    .await?;
                usize::try_from(done.rows_affected())?
            }
        };
        Ok(changed == 1)
    }

    /// Operator unlock: clears the lock and the counter.
    pub async fn unlock(&self, id: &Identifier) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE guesses SET failures = 0, window_failures = 0, locked = 0 \
             WHERE identifier = $1",
        )
        .bind(self.row_key(id))
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes an account and its counters.
    pub async fn delete(&self, id: &Identifier) -> Result<bool> {
        let key = self.row_key(id);
        let mut tx = self.db.pool.begin().await?;
        let done = sqlx::query("DELETE FROM accounts WHERE identifier = $1")
            .bind(&key)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM guesses WHERE identifier = $1")
            .bind(&key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Accounts with their counters, by identifier.
    pub async fn list(&self, only: Option<&Identifier>) -> Result<Vec<AccountSummary>> {
        let rows = sqlx::query(
            "SELECT a.identifier, a.subject_name, a.created_ms, a.updated_ms, \
               COALESCE(g.failures, 0), COALESCE(g.locked, 0), a.identifier_sealed \
             FROM accounts a LEFT JOIN guesses g ON g.identifier = a.identifier \
             WHERE $1 = '' OR a.identifier = $1",
        )
        .bind(only.map(|id| self.row_key(id)).unwrap_or_default())
        .fetch_all(&self.db.pool)
        .await?;
        let mut list = rows
            .iter()
            .map(|r| {
                let key: String = r.try_get(0)?;
                let id = self.keys.ring.unwrap(
                    Field::Identifier,
                    key.as_bytes(),
                    &r.try_get::<Vec<u8>, _>(6)?,
                )?;
                Ok(AccountSummary {
                    identifier: String::from_utf8(id.expose().to_vec())?,
                    subject: r.try_get(1)?,
                    created_ms: r.try_get(2)?,
                    updated_ms: r.try_get(3)?,
                    failures: u32::try_from(r.try_get::<i64, _>(4)?)?,
                    locked: r.try_get::<i64, _>(5)? != 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        list.sort_by(|a, b| a.identifier.cmp(&b.identifier));
        Ok(list)
    }

    /// Number of accounts (for metrics and tests).
    pub async fn count_accounts(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.db.pool)
            .await?;
        Ok(row.try_get(0)?)
    }
}

/// The named server secret, unwrapped, storing `candidate` wrapped if there is none. One an
/// older version stored in clear is wrapped now.
async fn meta_secret(
    db: &Database,
    ring: &Keyring,
    name: &str,
    candidate: &[u8; 32],
) -> Result<[u8; 32]> {
    let wrapped = ring.wrap(Field::Secret, name.as_bytes(), candidate);
    let mut stored = meta_insert_get(db, name, &wrapped).await?;
    if stored.len() == 32 {
        sqlx::query("UPDATE meta SET value = $1 WHERE name = $2 AND value = $3")
            .bind(ring.wrap(Field::Secret, name.as_bytes(), &stored))
            .bind(name)
            .bind(&stored)
            .execute(&db.pool)
            .await?;
        stored = meta_insert_get(db, name, &wrapped).await?;
    }
    let plain = ring.unwrap(Field::Secret, name.as_bytes(), &stored)?;
    plain
        .expose()
        .try_into()
        .map_err(|_| anyhow::anyhow!("stored secret {name} has a bad length"))
}

/// Stores `value` under `name` unless a value is there, and returns what is there.
async fn meta_insert_get(db: &Database, name: &str, value: &[u8]) -> Result<Vec<u8>> {
    sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(value.to_vec())
        .execute(&db.pool)
        .await?;
    let row = sqlx::query("SELECT value FROM meta WHERE name = $1")
        .bind(name)
        .fetch_one(&db.pool)
        .await?;
    Ok(row.try_get(0)?)
}

/// What the guesses table keeps of an expected confirmation tag (see [`Store::confirm`]).
pub fn tag_digest(tag: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(tag).into()
}

/// Binds `params` in order ($1, $2...) to an sqlx query, as the inline path binds them.
fn bind_all<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    params: &[Param<'q>],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    params.iter().fold(query, |query, param| match *param {
        Param::Int(i) => query.bind(i),
        Param::Text(s) => query.bind(s),
        Param::Blob(b) => query.bind(b),
    })
}

/// A result row's columns by index, from sqlx or from rusqlite (the inline statements).
trait ReadColumn {
    fn int(&self, i: usize) -> Result<Option<i64>>;
    fn blob(&self, i: usize) -> Result<Option<Vec<u8>>>;

    fn required_int(&self, i: usize) -> Result<i64> {
        self.int(i)?.with_context(|| format!("column {i} is NULL"))
    }
}

impl ReadColumn for sqlx::any::AnyRow {
    fn int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }

    fn blob(&self, i: usize) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(i)?)
    }
}

impl ReadColumn for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.get(i)?)
    }

    fn blob(&self, i: usize) -> Result<Option<Vec<u8>>> {
        Ok(self.get(i)?)
    }
}

/// Counters from columns 0..4 (failures, last attempt, locked, window failures).
fn guess_from(row: &(impl ReadColumn + ?Sized)) -> Result<GuessState> {
    Ok(GuessState {
        failures: u32::try_from(row.required_int(0)?)?,
        last_attempt_ms: row.required_int(1)?,
        locked: row.required_int(2)? != 0,
        window_failures: u32::try_from(row.required_int(3)?)?,
    })
}

/// An account's stored columns (suite, wrapped verifier, wrapped sealed record), all NULL
/// when the identifier has no account.
struct Columns {
    suite: Option<i64>,
    verifier: Option<Vec<u8>>,
    sealed: Option<Vec<u8>>,
}

impl Columns {
    /// Columns `first..first + 3` of `row`.
    fn of(row: &(impl ReadColumn + ?Sized), first: usize) -> Result<Self> {
        Ok(Self {
            suite: row.int(first)?,
            verifier: row.blob(first + 1)?,
            sealed: row.blob(first + 2)?,
        })
    }
}
