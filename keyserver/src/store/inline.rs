//! SQLite only: the three statements of a recovery (read the counters and the record, count
//! the attempt, consume the confirmation) on connections of their own, run inline on the
//! request's thread.
//!
//! sqlx runs each SQLite connection on a worker thread and hands every statement to it and
//! the answer back: two thread switches and futex wake-ups per statement, about a tenth of a
//! recovery's CPU. The statements themselves take tens of microseconds on a local file (a
//! read from the page cache; a WAL append with `synchronous = NORMAL`, no fsync), less than
//! the hand-off. A commit that reaches the WAL's checkpoint threshold (1000 pages) takes
//! longer, a millisecond or so, once in hundreds of recoveries. Everything else (migrations,
//! registrations, the operator's commands) stays on sqlx.
//!
//! These connections never wait for a lock: when another process (an operator's command on
//! the same file) holds SQLite's write lock, a statement fails at once as busy and the
//! caller runs it through sqlx instead, which waits without holding a request thread.
//!
//! The SQL is the same text sqlx runs for PostgreSQL, `$N` parameters included: SQLite takes
//! them as named parameters, bound here by number.

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags, Statement, ToSql};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Connections of this process to the key server's SQLite file.
#[derive(Debug)]
pub(crate) struct Inline {
    /// Readers: one per core, so requests on different threads do not wait for each other.
    readers: Vec<Mutex<Connection>>,
    /// The writer, used within the process's write turn (`Database::write_turn`): no other
    /// writer of this process holds SQLite's write lock meanwhile.
    writer: Mutex<Connection>,
}

impl Inline {
    /// Opens the file of `url` (`sqlite://PATH`, `sqlite:PATH`, options after `?`), which
    /// sqlx has created and migrated. None for an in-memory database (each connection would
    /// see a database of its own).
    pub(crate) fn open(url: &str) -> Result<Option<Self>> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .context("not an SQLite URL")?;
        let (path, options) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() || path == ":memory:" || options.contains("mode=memory") {
            return Ok(None);
        }
        let connect = || -> Result<Connection> {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .with_context(|| format!("opening {path}"))?;
            // Busy at once rather than waiting on a request thread (see above); as sqlx's
            // connections (stb_server_common::db), a commit survives the process being
            // killed.
            conn.busy_timeout(Duration::ZERO)?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            Ok(conn)
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        Ok(Some(Self {
            readers: (0..cores)
                .map(|_| connect().map(Mutex::new))
                .collect::<Result<_>>()?,
            writer: Mutex::new(connect()?),
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

    /// Runs the query `sql` with `params` on a reader; `row` reads the first row, if any.
    pub(crate) fn read_one<T>(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        row: impl FnOnce(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let conn = self.reader();
        let mut statement = conn.prepare_cached(sql)?;
        query_one(&mut statement, params, row)
    }

    /// Like [`Inline::read_one`], on the writer (a statement that writes and returns rows).
    pub(crate) fn write_one<T>(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        row: impl FnOnce(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let conn = self.writer();
        let mut statement = conn.prepare_cached(sql)?;
        query_one(&mut statement, params, row)
    }

    /// Runs `sql` on the writer; returns the rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[&dyn ToSql]) -> Result<usize> {
        let conn = self.writer();
        let mut statement = conn.prepare_cached(sql)?;
        bind(&mut statement, params)?;
        Ok(statement.raw_execute()?)
    }
}

/// Whether `error` is SQLite's "busy" (another process holds the lock): run it on sqlx.
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
    statement: &mut Statement<'_>,
    params: &[&dyn ToSql],
    row: impl FnOnce(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    bind(statement, params)?;
    let mut rows = statement.raw_query();
    let first = match rows.next()? {
        Some(r) => Some(row(r)?),
        None => None,
    };
    // Runs the statement to its end: a write with RETURNING commits only then.
    while rows.next()?.is_some() {}
    Ok(first)
}

/// Binds `params[i]` to the parameter `$i+1` wherever it appears.
fn bind(statement: &mut Statement<'_>, params: &[&dyn ToSql]) -> Result<()> {
    for (i, value) in params.iter().enumerate() {
        let name = format!("${}", i + 1);
        let index = statement
            .parameter_index(&name)?
            .with_context(|| format!("no parameter {name} in the statement"))?;
        statement.raw_bind_parameter(index, value)?;
    }
    Ok(())
}
