//! One pool type (`sqlx::Any`) over two real backends chosen by the URL. Each server keeps its
//! own migrations per backend (column types differ); the SQL it runs is the common subset.

use anyhow::{Context, Result};
use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Which database engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// How long a pooled connection may sit unused before it is pinged when handed out.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

/// Connects (creating an SQLite file if needed) and runs the backend's migrations.
pub async fn open(url: &str, sqlite: &Migrator, postgres: &Migrator) -> Result<(AnyPool, Backend)> {
    sqlx::any::install_default_drivers();
    let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Backend::Postgres
    } else if url.starts_with("sqlite:") {
        Backend::Sqlite
    } else {
        anyhow::bail!("unsupported database URL (use sqlite://PATH or postgres://...)");
    };
    let url = match backend {
        Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
        _ => url.to_owned(),
    };
    let options = AnyConnectOptions::from_str(&url).context("database URL")?;
    // SQLite runs each connection on a thread of its own and writes one at a time (see
    // `write_turn`): more connections than cores add threads to switch between and page
    // caches that each commit makes stale, not throughput. PostgreSQL gets more.
    let connections = match backend {
        Backend::Sqlite => 4,
        Backend::Postgres => 16,
    };
    let pool = AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(5))
        // sqlx pings every connection it hands out by default, and again when it takes it
        // back (that one cannot be turned off; it closes a connection that broke, e.g. when
        // the PostgreSQL server restarted). The first ping is one more round trip to the
        // SQLite worker thread or the PostgreSQL server per query: a connection that answered
        // a moment ago is alive; one idle for a while (a firewall may have dropped it) is
        // still checked first.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_BEFORE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // Per connection. WAL is set once below: it is a property of the file,
                    // and asking for it on every new connection takes a lock that stalls
                    // connections opened in a burst (seen as 1 s stalls under load).
                    // NORMAL: a commit survives the process being killed; a power cut may
                    // lose the last commits.
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .context("connecting to the database")?;
    if backend == Backend::Sqlite {
        // Readers never block the writer.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
    }
    let migrator = match backend {
        Backend::Sqlite => sqlite,
        Backend::Postgres => postgres,
    };
    migrator.run(&pool).await.context("running migrations")?;
    Ok((pool, backend))
}

/// `database` if set, else an SQLite file `file` in `data_dir` (the one-machine default).
pub fn url_or_sqlite(database: &str, data_dir: &std::path::Path, file: &str) -> String {
    if database.is_empty() {
        format!("sqlite://{}", data_dir.join(file).display())
    } else {
        database.to_owned()
    }
}

/// A pool and the backend it speaks to: what each server's store wraps.
#[derive(Debug, Clone)]
pub struct Database {
    /// The pool (SQL is the common subset of both backends).
    pub pool: AnyPool,
    /// The backend.
    pub backend: Backend,
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl Database {
    /// Connects and migrates (see [`open`]).
    pub async fn open(url: &str, sqlite: &Migrator, postgres: &Migrator) -> Result<Self> {
        let (pool, backend) = open(url, sqlite, postgres).await?;
        Ok(Self {
            pool,
            backend,
            writer: Arc::default(),
        })
    }

    /// Take a turn before a write that runs on the request path. SQLite lets one connection
    /// write at a time and makes the others sleep in its busy handler (1, 2, 5, 10 ms...) and
    /// try again: under load that cost a recovery milliseconds of latency and CPU for the
    /// retries. This process's writers queue here instead (another process on the same file
    /// still meets the busy timeout). PostgreSQL locks rows, not the database: no turn.
    pub async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writer.lock().await),
            Backend::Postgres => None,
        }
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Takes one attempt from the fixed-window budget `max` of (`scope`, `item`), in one
    /// atomic statement, before the attempt is evaluated: parallel attempts cannot overrun
    /// the budget, as a check followed by a separate count could. `false`: budget spent, not
    /// counted. Works on the table `attempt_windows (scope, item, attempts, window_start_ms)`
    /// that the server's migrations create.
    pub async fn reserve_attempt(
        &self,
        scope: &str,
        item: &str,
        now_ms: i64,
        window_ms: i64,
        max: i64,
    ) -> Result<bool> {
        if max < 1 {
            return Ok(false);
        }
        let _turn = self.write_turn().await;
        let row = sqlx::query(
            "INSERT INTO attempt_windows (scope, item, attempts, window_start_ms) \
             VALUES ($1, $2, 1, $3) \
             ON CONFLICT (scope, item) DO UPDATE SET \
               attempts = CASE WHEN attempt_windows.window_start_ms + $4 > $3 \
                            THEN attempt_windows.attempts + 1 ELSE 1 END, \
               window_start_ms = CASE WHEN attempt_windows.window_start_ms + $4 > $3 \
                            THEN attempt_windows.window_start_ms ELSE $3 END \
             WHERE attempt_windows.window_start_ms + $4 <= $3 OR attempt_windows.attempts < $5 \
             RETURNING attempts",
        )
        .bind(scope)
        .bind(item)
        .bind(now_ms)
        .bind(window_ms)
        .bind(max)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Gives back an attempt taken by [`Database::reserve_attempt`] (it turned out not to
    /// count, e.g. a success).
    pub async fn refund_attempt(&self, scope: &str, item: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE attempt_windows SET attempts = attempts - 1 \
             WHERE scope = $1 AND item = $2 AND attempts > 0",
        )
        .bind(scope)
        .bind(item)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes attempt windows that started before `before_ms` (they no longer count).
    pub async fn prune_attempts(&self, before_ms: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM attempt_windows WHERE window_start_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
