//! Subscribers, enrollment codes, issued certificates, enrollment attempt counters and the
//! locker's rows (`locker`), over SQLite or PostgreSQL (stb-server-common's `sqlx::Any` pool,
//! one set of migrations per backend).

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;
pub use stb_server_common::db::Backend;
use stb_server_common::db::Database;

mod locker;
mod parental;
pub use locker::{Commit, IndexWrite, LockerAccount, LockerObject, LockerUpload};
pub use parental::{Parental, PinAttempt};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A subscriber's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// May enroll and watch.
    Active,
    /// Temporarily refused (unpaid bill).
    Suspended,
    /// Refused for good; every certificate revoked.
    Revoked,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Revoked => "revoked",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "active" => Status::Active,
            "suspended" => Status::Suspended,
            "revoked" => Status::Revoked,
            other => anyhow::bail!("unknown status {other:?} in database"),
        })
    }
}

/// A subscriber row.
#[derive(Debug, Clone, Serialize)]
pub struct Subscriber {
    /// Unique name (certificate CN).
    pub name: String,
    /// Package.
    pub package: String,
    /// Standing.
    pub status: Status,
    /// KS sealed under the KEK.
    #[serde(skip)]
    pub ks_sealed: Vec<u8>,
    /// Certificates issued (for listings).
    pub certificates: i64,
}

/// What a client certificate maps to.
#[derive(Debug, Clone)]
pub struct CertOwner {
    /// The subscriber.
    pub subscriber: Subscriber,
    /// This certificate is revoked.
    pub revoked: bool,
}

/// Why a code did not enroll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefusal {
    /// No such code.
    Unknown,
    /// Used before.
    Used,
    /// Past its expiry.
    Expired,
}

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    /// Connects and migrates.
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

    /// Adds a subscriber. Fails if the name exists.
    pub async fn add_subscriber(
        &self,
        name: &str,
        package: &str,
        ks_sealed: &[u8],
        now_ms: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO subscribers (name, package, status, ks_sealed, created_ms) \
             VALUES ($1, $2, 'active', $3, $4)",
        )
        .bind(name)
        .bind(package)
        .bind(ks_sealed.to_vec())
        .bind(now_ms)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Stores a new enrollment code for a subscriber.
    pub async fn add_code(
        &self,
        subscriber: &str,
        code_hash: &[u8],
        expires_ms: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO enrollment_codes (code_hash, subscriber, expires_ms) VALUES ($1, $2, $3)",
        )
        .bind(code_hash.to_vec())
        .bind(subscriber)
        .bind(expires_ms)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Hands out `count` fresh sequence numbers for live channel `channel`: the first of them.
    /// A channel's first block starts at `floor`. One atomic statement: instances sharing the
    /// database never get overlapping blocks.
    pub async fn reserve_live_sequences(
        &self,
        channel: u16,
        count: u64,
        floor: u64,
    ) -> Result<u64> {
        let (count, floor) = (i64::try_from(count)?, i64::try_from(floor)?);
        let _turn = self.db.write_turn().await;
        let (next,): (i64,) = sqlx::query_as(
            "INSERT INTO live_sequences (channel, next) VALUES ($1, $2 + $3) \
             ON CONFLICT (channel) DO UPDATE SET next = live_sequences.next + $3 \
             RETURNING next",
        )
        .bind(i32::from(channel))
        .bind(floor)
        .bind(count)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(u64::try_from(next - count)?)
    }

    /// A subscriber's favourite channels, in their order.
    pub async fn favourites(&self, subscriber: &str) -> Result<Vec<u16>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT channels FROM favourites WHERE subscriber = $1")
                .bind(subscriber)
                .fetch_optional(&self.db.pool)
                .await?;
        Ok(row.map_or_else(Vec::new, |(list,)| {
            list.split(',').filter_map(|n| n.parse().ok()).collect()
        }))
    }

    /// Replaces a subscriber's favourite channels.
    pub async fn set_favourites(
        &self,
        subscriber: &str,
        channels: &[u16],
        now_ms: i64,
    ) -> Result<()> {
        let list = channels
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "INSERT INTO favourites (subscriber, channels, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (subscriber) DO UPDATE SET channels = $2, updated_ms = $3",
        )
        .bind(subscriber)
        .bind(list)
        .bind(now_ms)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// One subscriber.
    pub async fn subscriber(&self, name: &str) -> Result<Option<Subscriber>> {
        Ok(self.subscribers(Some(name)).await?.pop())
    }

    /// All subscribers (or one), by name.
    pub async fn subscribers(&self, only: Option<&str>) -> Result<Vec<Subscriber>> {
        let rows = sqlx::query(
            "SELECT s.name, s.package, s.status, s.ks_sealed, \
               (SELECT COUNT(*) FROM certificates c WHERE c.subscriber = s.name) \
             FROM subscribers s WHERE $1 = '' OR s.name = $1 ORDER BY s.name",
        )
        .bind(only.unwrap_or(""))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Subscriber {
                    name: r.try_get(0)?,
                    package: r.try_get(1)?,
                    status: Status::parse(&r.try_get::<String, _>(2)?)?,
                    ks_sealed: r.try_get(3)?,
                    certificates: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Changes a subscriber's status; revoking also revokes every certificate. Returns
    /// whether the subscriber exists.
    pub async fn set_status(&self, name: &str, status: Status) -> Result<bool> {
        let mut tx = self.db.pool.begin().await?;
        let done = sqlx::query("UPDATE subscribers SET status = $1 WHERE name = $2")
            .bind(status.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if status == Status::Revoked {
            sqlx::query("UPDATE certificates SET revoked = 1 WHERE subscriber = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Consumes a code (once) and records the certificate `issue` returns, in one
    /// transaction: a failure to issue leaves the code unused.
    pub async fn enroll<F>(
        &self,
        code_hash: &[u8],
        now_ms: i64,
        issue: F,
    ) -> Result<Result<(Subscriber, crate::ca::Issued), CodeRefusal>>
    where
        F: FnOnce(&Subscriber) -> Result<crate::ca::Issued>,
    {
        let mut tx = self.db.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE enrollment_codes SET used_ms = $1 \
             WHERE code_hash = $2 AND used_ms IS NULL AND expires_ms > $1 RETURNING subscriber",
        )
        .bind(now_ms)
        .bind(code_hash.to_vec())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let state = sqlx::query(
                "SELECT used_ms, expires_ms FROM enrollment_codes WHERE code_hash = $1",
            )
            .bind(code_hash.to_vec())
            .fetch_optional(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Ok(Err(match state {
                None => CodeRefusal::Unknown,
                Some(r) if r.try_get::<Option<i64>, _>(0)?.is_some() => CodeRefusal::Used,
                Some(_) => CodeRefusal::Expired,
            }));
        };
        let name: String = row.try_get(0)?;
        let sub = sqlx::query("SELECT package, status, ks_sealed FROM subscribers WHERE name = $1")
            .bind(&name)
            .fetch_one(&mut *tx)
            .await?;
        let subscriber = Subscriber {
            name: name.clone(),
            package: sub.try_get(0)?,
            status: Status::parse(&sub.try_get::<String, _>(1)?)?,
            ks_sealed: sub.try_get(2)?,
            certificates: 0,
        };
        if subscriber.status != Status::Active {
            tx.rollback().await?;
            return Ok(Err(CodeRefusal::Unknown));
        }
        let issued = issue(&subscriber)?;
        sqlx::query(
            "INSERT INTO certificates (serial, subscriber, issued_ms, not_after_ms, revoked) \
             VALUES ($1, $2, $3, $4, 0)",
        )
        .bind(&issued.serial_hex)
        .bind(&name)
        .bind(now_ms)
        .bind(issued.not_after_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok((subscriber, issued)))
    }

    /// Owner and state of a certificate, by serial.
    pub async fn cert_owner(&self, serial_hex: &str) -> Result<Option<CertOwner>> {
        let row = sqlx::query(
            "SELECT s.name, s.package, s.status, s.ks_sealed, c.revoked \
             FROM certificates c JOIN subscribers s ON s.name = c.subscriber WHERE c.serial = $1",
        )
        .bind(serial_hex)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(CertOwner {
            subscriber: Subscriber {
                name: r.try_get(0)?,
                package: r.try_get(1)?,
                status: Status::parse(&r.try_get::<String, _>(2)?)?,
                ks_sealed: r.try_get(3)?,
                certificates: 0,
            },
            revoked: r.try_get::<i64, _>(4)? != 0,
        }))
    }

    /// The database, for what `stb_server_common::db::Database` does itself (attempt budgets).
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// What the CRL lists at `now_ms`: unexpired certificates that are revoked or whose
    /// subscriber is revoked or suspended, with their issue time.
    pub async fn crl_entries(&self, now_ms: i64) -> Result<Vec<CrlEntry>> {
        let rows = sqlx::query(
            "SELECT c.serial, c.issued_ms, c.revoked, s.status \
             FROM certificates c JOIN subscribers s ON s.name = c.subscriber \
             WHERE c.not_after_ms > $1 AND (c.revoked = 1 OR s.status <> 'active') \
             ORDER BY c.serial",
        )
        .bind(now_ms)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let revoked = r.try_get::<i64, _>(2)? != 0;
                let status = Status::parse(&r.try_get::<String, _>(3)?)?;
                Ok(CrlEntry {
                    serial_hex: r.try_get(0)?,
                    since_ms: r.try_get(1)?,
                    on_hold: !revoked && status == Status::Suspended,
                })
            })
            .collect()
    }
}

/// A certificate the CRL lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlEntry {
    /// Serial number, lowercase hex.
    pub serial_hex: String,
    /// When it stopped counting as good (the CRL's revocation date; the issue time is the
    /// earliest the database knows).
    pub since_ms: i64,
    /// Suspended, not revoked: listed as `certificateHold`, dropped again on resume.
    pub on_hold: bool,
}
