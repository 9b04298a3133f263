//! SQLite only: the three statements of a recovery (read the counters and the record, count
//! the attempt, consume the confirmation) on connections of their own, run inline on the
//! request's thread.
//!
//! sqlx runs each SQLite connection on a worker thread and hands every statement to it and
//! the answer back: two thread switches and futex wake-ups per statement, about a quarter of
//! a recovery's CPU (BENCHMARKS.md, 2026-11-29). The statements themselves take tens of
//! microseconds on a local file: a read from the page cache, a WAL append with
//! `synchronous = NORMAL` (no fsync). The checkpoints that copy the WAL into the database
//! (and fsync) are not run here: [`Inline::checkpoint_due`] tells the store when to run one
//! through sqlx, off the request threads. Everything else (migrations, registrations, the
//! operator's commands) stays on sqlx.
//!
//! These connections never wait for a lock: when another writer holds SQLite's write lock
//! (another process on the same file, or a write of this process outside the write turn,
//! such as a registration) a statement fails at once as busy and the caller runs it through
//! sqlx instead, which waits for the lock off the request threads.
//!
//! The SQL is the same text sqlx runs for PostgreSQL, `$N` parameters included: SQLite takes
//! them as named parameters, bound here by number.

use anyhow::{Context, Result};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, Statement, ToSql};
use sqlx::sqlite::SqliteConnectOptions;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Inline commits between two checkpoints: about SQLite's own 1,000-page threshold, at the
/// two or three pages a recovery's write adds to the WAL.
const COMMITS_PER_CHECKPOINT: u64 = 400;

/// A statement parameter, bound alike by rusqlite here and by sqlx (`store::bind_all`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    /// INTEGER.
    Int(i64),
    /// TEXT.
    Text(&'a str),
    /// BLOB.
    Blob(&'a [u8]),
}

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Self::Int(i) => ValueRef::Integer(i),
            Self::Text(s) => ValueRef::Text(s.as_bytes()),
            Self::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// Connections of this process to the key server's SQLite file.
#[derive(Debug)]
pub(crate) struct Inline {
    /// Readers, one per core up to four, so that requests on different threads do not wait
    /// for each other.
    readers: Vec<Mutex<Connection>>,
    /// The writer, used within the process's write turn (`Database::write_turn`).
    writer: Mutex<Connection>,
    /// Commits since the last checkpoint was asked for.
    commits: AtomicU64,
}

impl Inline {
    /// Opens the file of `url` as sqlx reads it (`sqlite://PATH`, percent-decoded, options
    /// after `?`), which sqlx has created and migrated. None for an in-memory database (each
    /// connection would see one of its own) or one opened read-only.
    pub(crate) fn open(url: &str) -> Result<Option<Self>> {
        let options = SqliteConnectOptions::from_str(url).context("SQLite URL")?;
        let path = options.get_filename().to_owned();
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let in_memory = path.to_string_lossy().starts_with("file:sqlx-in-memory-")
            || query.contains("mode=memory");
        if in_memory || query.contains("mode=ro") {
            return Ok(None);
        }
        let connect = || -> Result<Connection> {
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .with_context(|| format!("opening {}", path.display()))?;
            // Busy at once rather than waiting on a request thread (see above); as sqlx's
            // connections (stb_server_common::db), a commit survives the process being
            // killed.
            conn.busy_timeout(Duration::ZERO)?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            Ok(conn)
        };
        let writer = connect()?;
        // Checkpoints go through sqlx (checkpoint_due).
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        Ok(Some(Self {
            readers: (0..cores)
                .map(|_| connect().map(Mutex::new))
                .collect::<Result<_>>()?,
            writer: Mutex::new(writer),
            commits: AtomicU64::new(0),
        }))
    }

    /// A reader nobody is using, else the first one (after its current statement).
    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.readers
            .iter()
            .find_map(|r| r.try_lock().ok())
            .unwrap_or_else(|| {
                self.readers[0]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
            })
    }

    /// The writer. The caller holds the process's write turn.
    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether enough has been written since the last checkpoint for the store to run one
    /// (`PRAGMA wal_checkpoint(PASSIVE)` through sqlx); true once per
    /// [`COMMITS_PER_CHECKPOINT`].
    pub(crate) fn checkpoint_due(&self) -> bool {
        let commits = self.commits.load(Ordering::Relaxed);
        commits >= COMMITS_PER_CHECKPOINT
            && self
                .commits
                .compare_exchange(commits, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Runs the query `sql` on a reader; `row` reads the first row, if any.
    pub(crate) fn read_one<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        row: impl FnOnce(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        query_one(&self.reader(), sql, params, row)
    }

    /// Like [`Inline::read_one`], on the writer (a statement that writes and returns rows).
    pub(crate) fn write_one<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        row: impl FnOnce(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let found = query_one(&self.writer(), sql, params, row)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(found)
    }

    /// Runs `sql` on the writer; returns the rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<usize> {
        let conn = self.writer();
        let mut statement = conn.prepare_cached(sql)?;
        bind(&mut statement, params)?;
        let changed = statement.raw_execute()?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(changed)
    }
}

/// Whether `error` is SQLite's "busy" or "locked" (another writer holds the lock): the
/// statement is then run through sqlx.
pub(crate) fn is_busy(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<rusqlite::Error>()
        .and_then(rusqlite::Error::sqlite_error_code)
        .is_some_and(|code| {
            matches!(
                code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
        })
}

fn query_one<T>(
    conn: &Connection,
    sql: &str,
    params: &[Param<'_>],
    row: impl FnOnce(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    bind(&mut statement, params)?;
    let mut rows = statement.raw_query();
    let first = match rows.next()? {
        Some(r) => Some(row(r)?),
        None => None,
    };
    // Runs the statement to its end: a write with RETURNING commits only then.
    while rows.next()?.is_some() {}
    Ok(first)
}

/// Binds `params[i]` to the parameter `$i+1` wherever it appears; every parameter of the
/// statement must be given (an unbound one would be NULL on this path only).
fn bind(statement: &mut Statement<'_>, params: &[Param<'_>]) -> Result<()> {
    anyhow::ensure!(
        statement.parameter_count() == params.len(),
        "{} parameters given for a statement of {}",
        params.len(),
        statement.parameter_count()
    );
    // The names of $1..$16: no string built per parameter on the request path.
    const NAMES: [&str; 16] = [
        "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14",
        "$15", "$16",
    ];
    anyhow::ensure!(params.len() <= NAMES.len(), "more than 16 parameters");
    for (name, value) in NAMES.iter().zip(params) {
        let index = statement
            .parameter_index(name)?
            .with_context(|| format!("no parameter {name} in the statement"))?;
        statement.raw_bind_parameter(index, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_and_read_only_databases_have_no_inline_connections() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://keys.db?mode=memory",
            "sqlite://keys.db?mode=ro",
        ] {
            assert!(Inline::open(url).expect(url).is_none(), "{url}");
        }
    }

    #[test]
    fn a_file_is_found_as_sqlx_finds_it_and_parameters_are_bound_by_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("key server.db");
        let setup = Connection::open(&file).expect("create");
        setup
            .execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c BLOB)")
            .expect("table");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("key%20server.db").display()
        );
        let inline = Inline::open(&url).expect("open").expect("a file");
        let sql = "INSERT INTO t VALUES ($2, $1, $3) RETURNING a, b, c";
        let row = inline
            .write_one(
                sql,
                &[Param::Text("b"), Param::Int(7), Param::Blob(&[1, 2])],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .expect("insert");
        assert_eq!(row, Some((7, "b".to_owned(), vec![1, 2])));
        // Committed: another connection sees it.
        let count: i64 = setup
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(count, 1);
        assert!(
            inline.execute(sql, &[Param::Int(1)]).is_err(),
            "a parameter left out"
        );
    }
}
