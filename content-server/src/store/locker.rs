//! The locker's rows: committed objects, uploads under way, the sealed index and each
//! subscriber's quota. The bytes are on disk (`crate::locker`); what makes them visible is here.

use super::Store;
use anyhow::Result;
use sqlx::Row;
use std::collections::HashSet;

/// A subscriber's locker as accounted: quota and use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockerAccount {
    /// The subscriber.
    pub subscriber: String,
    /// The operator's quota for them, bytes; `None`: the configured one.
    pub quota_bytes: Option<u64>,
    /// Committed objects, bytes received by unfinished uploads, and the index.
    pub used_bytes: u64,
    /// The index's part of that.
    pub index_bytes: u64,
    /// The index's version (0: none yet).
    pub index_version: u64,
}

/// A committed object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockerObject {
    /// Its id (32 lowercase hex).
    pub id: String,
    /// Bytes.
    pub size: u64,
    /// When it was committed, Unix ms.
    pub created_ms: i64,
}

/// An upload under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockerUpload {
    /// Its id (32 lowercase hex).
    pub id: String,
    /// The object it becomes.
    pub object: String,
    /// Bytes on disk.
    pub received: u64,
}

/// What a conditional index write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexWrite {
    /// Stored as this version.
    Stored(u64),
    /// The stored version was not the one named: this one is.
    Changed(u64),
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The object is listed, the upload gone.
    Committed,
    /// The subscriber has an object of that id already.
    ObjectExists,
    /// The upload was deleted meanwhile (aborted, swept).
    UploadGone,
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i64_of(v: u64) -> Result<i64> {
    Ok(i64::try_from(v)?)
}

impl Store {
    /// Quota and use of one subscriber's locker (`only`), or of every subscriber's, by name.
    /// One statement: the parts are counted in one snapshot.
    pub async fn locker_accounts(&self, only: Option<&str>) -> Result<Vec<LockerAccount>> {
        let rows = sqlx::query(
            "SELECT s.name, s.locker_quota_bytes, \
               CAST(COALESCE((SELECT SUM(o.size) FROM locker_objects o \
                              WHERE o.subscriber = s.name), 0) AS BIGINT), \
               CAST(COALESCE((SELECT SUM(u.received) FROM locker_uploads u \
                              WHERE u.subscriber = s.name), 0) AS BIGINT), \
               COALESCE(i.size, 0), COALESCE(i.version, 0) \
             FROM subscribers s LEFT JOIN locker_index i ON i.subscriber = s.name \
             WHERE $1 = '' OR s.name = $1 ORDER BY s.name",
        )
        .bind(only.unwrap_or(""))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let parts: [i64; 3] = [r.try_get(2)?, r.try_get(3)?, r.try_get(4)?];
                Ok(LockerAccount {
                    subscriber: r.try_get(0)?,
                    quota_bytes: r.try_get::<Option<i64>, _>(1)?.map(u64_of),
                    used_bytes: parts.iter().map(|&p| u64_of(p)).sum(),
                    index_bytes: u64_of(parts[2]),
                    index_version: u64_of(r.try_get(5)?),
                })
            })
            .collect()
    }

    /// Sets a subscriber's quota (`None`: back to the configured one). Returns whether the
    /// subscriber exists.
    pub async fn set_locker_quota(&self, name: &str, quota_bytes: Option<u64>) -> Result<bool> {
        let quota = quota_bytes.map(i64_of).transpose()?;
        let done = sqlx::query("UPDATE subscribers SET locker_quota_bytes = $1 WHERE name = $2")
            .bind(quota)
            .bind(name)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A subscriber's committed objects, oldest first (ties by id).
    pub async fn locker_objects(&self, subscriber: &str) -> Result<Vec<LockerObject>> {
        let rows = sqlx::query(
            "SELECT id, size, created_ms FROM locker_objects WHERE subscriber = $1 \
             ORDER BY created_ms, id",
        )
        .bind(subscriber)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(object_of).collect()
    }

    /// One committed object of a subscriber.
    pub async fn locker_object(&self, subscriber: &str, id: &str) -> Result<Option<LockerObject>> {
        let row = sqlx::query(
            "SELECT id, size, created_ms FROM locker_objects WHERE subscriber = $1 AND id = $2",
        )
        .bind(subscriber)
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(object_of).transpose()
    }

    /// Deletes an object's row (its file goes next). Returns whether there was one.
    pub async fn delete_locker_object(&self, subscriber: &str, id: &str) -> Result<bool> {
        let _turn = self.db.write_turn().await;
        let done = sqlx::query("DELETE FROM locker_objects WHERE subscriber = $1 AND id = $2")
            .bind(subscriber)
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The sealed index and its version, if there is one.
    pub async fn locker_index(&self, subscriber: &str) -> Result<Option<(u64, Vec<u8>)>> {
        let row = sqlx::query("SELECT version, body FROM locker_index WHERE subscriber = $1")
            .bind(subscriber)
            .fetch_optional(&self.db.pool)
            .await?;
        row.map(|r| Ok((u64_of(r.try_get(0)?), r.try_get(1)?)))
            .transpose()
    }

    /// Stores `body` as version `expected + 1` if the stored version is `expected` (0: there
    /// is none yet), in one conditional statement: of two writers that read the same version,
    /// one stores and the other is told the index changed.
    pub async fn put_locker_index(
        &self,
        subscriber: &str,
        expected: u64,
        body: &[u8],
        now_ms: i64,
    ) -> Result<IndexWrite> {
        let next = expected
            .checked_add(1)
            .ok_or_else(|| anyhow::anyhow!("index version overflow"))?;
        let size = i64_of(body.len() as u64)?;
        let _turn = self.db.write_turn().await;
        let done = if expected == 0 {
            sqlx::query(
                "INSERT INTO locker_index (subscriber, version, body, size, updated_ms) \
                 VALUES ($1, 1, $2, $3, $4) ON CONFLICT (subscriber) DO NOTHING",
            )
            .bind(subscriber)
            .bind(body.to_vec())
            .bind(size)
            .bind(now_ms)
            .execute(&self.db.pool)
            .await?
        } else {
            sqlx::query(
                "UPDATE locker_index SET version = $1, body = $2, size = $3, updated_ms = $4 \
                 WHERE subscriber = $5 AND version = $6",
            )
            .bind(i64_of(next)?)
            .bind(body.to_vec())
            .bind(size)
            .bind(now_ms)
            .bind(subscriber)
            .bind(i64_of(expected)?)
            .execute(&self.db.pool)
            .await?
        };
        if done.rows_affected() == 1 {
            return Ok(IndexWrite::Stored(next));
        }
        let current: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM locker_index WHERE subscriber = $1")
                .bind(subscriber)
                .fetch_optional(&self.db.pool)
                .await?;
        Ok(IndexWrite::Changed(current.map_or(0, |(v,)| u64_of(v))))
    }

    /// Unfinished uploads of a subscriber.
    pub async fn locker_upload_count(&self, subscriber: &str) -> Result<u64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM locker_uploads WHERE subscriber = $1")
                .bind(subscriber)
                .fetch_one(&self.db.pool)
                .await?;
        Ok(u64_of(n))
    }

    /// Records a new upload, nothing received.
    pub async fn add_locker_upload(
        &self,
        subscriber: &str,
        upload: &str,
        object: &str,
        now_ms: i64,
    ) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "INSERT INTO locker_uploads (id, subscriber, object, received, created_ms, updated_ms) \
             VALUES ($1, $2, $3, 0, $4, $4)",
        )
        .bind(upload)
        .bind(subscriber)
        .bind(object)
        .bind(now_ms)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// One of a subscriber's uploads (another subscriber's is `None`, like an unknown one).
    pub async fn locker_upload(
        &self,
        subscriber: &str,
        upload: &str,
    ) -> Result<Option<LockerUpload>> {
        let row = sqlx::query(
            "SELECT id, object, received FROM locker_uploads WHERE id = $1 AND subscriber = $2",
        )
        .bind(upload)
        .bind(subscriber)
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|r| {
            Ok(LockerUpload {
                id: r.try_get(0)?,
                object: r.try_get(1)?,
                received: u64_of(r.try_get(2)?),
            })
        })
        .transpose()
    }

    /// Moves an upload's count from `from` to `to` bytes (after the file holds them, or to
    /// follow a file found shorter). `false`: it was deleted, or counts otherwise now.
    pub async fn set_locker_received(
        &self,
        upload: &str,
        from: u64,
        to: u64,
        now_ms: i64,
    ) -> Result<bool> {
        let _turn = self.db.write_turn().await;
        let done = sqlx::query(
            "UPDATE locker_uploads SET received = $1, updated_ms = $2 \
             WHERE id = $3 AND received = $4",
        )
        .bind(i64_of(to)?)
        .bind(now_ms)
        .bind(upload)
        .bind(i64_of(from)?)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Lists the object and drops the upload in one transaction (the file is in place and on
    /// disk already): a crash leaves one or the other, never both or neither.
    pub async fn commit_locker_upload(
        &self,
        subscriber: &str,
        upload: &LockerUpload,
        now_ms: i64,
    ) -> Result<Commit> {
        let _turn = self.db.write_turn().await;
        let mut tx = self.db.pool.begin().await?;
        let listed = sqlx::query(
            "INSERT INTO locker_objects (subscriber, id, size, created_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (subscriber, id) DO NOTHING",
        )
        .bind(subscriber)
        .bind(&upload.object)
        .bind(i64_of(upload.received)?)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if listed.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(Commit::ObjectExists);
        }
        let dropped = sqlx::query(
            "DELETE FROM locker_uploads WHERE id = $1 AND subscriber = $2 AND received = $3",
        )
        .bind(&upload.id)
        .bind(subscriber)
        .bind(i64_of(upload.received)?)
        .execute(&mut *tx)
        .await?;
        if dropped.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(Commit::UploadGone);
        }
        tx.commit().await?;
        Ok(Commit::Committed)
    }

    /// Deletes an upload's row (its staging file goes next). Returns whether there was one.
    pub async fn delete_locker_upload(&self, subscriber: &str, upload: &str) -> Result<bool> {
        let _turn = self.db.write_turn().await;
        let done = sqlx::query("DELETE FROM locker_uploads WHERE id = $1 AND subscriber = $2")
            .bind(upload)
            .bind(subscriber)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the uploads untouched since `before_ms`; returns their ids.
    pub async fn delete_idle_locker_uploads(&self, before_ms: i64) -> Result<Vec<String>> {
        let _turn = self.db.write_turn().await;
        let rows: Vec<(String,)> =
            sqlx::query_as("DELETE FROM locker_uploads WHERE updated_ms < $1 RETURNING id")
                .bind(before_ms)
                .fetch_all(&self.db.pool)
                .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Every upload's id.
    pub async fn locker_upload_ids(&self) -> Result<HashSet<String>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM locker_uploads")
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The object ids a subscriber's files may hold: committed objects and uploads' objects
    /// (a commit in progress has its file in place before its row). One statement, so one
    /// snapshot: a commit moves an id from one to the other in one transaction.
    pub async fn locker_ids_in_use(&self, subscriber: &str) -> Result<HashSet<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM locker_objects WHERE subscriber = $1 \
             UNION SELECT object FROM locker_uploads WHERE subscriber = $1",
        )
        .bind(subscriber)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}

fn object_of(r: &sqlx::any::AnyRow) -> Result<LockerObject> {
    Ok(LockerObject {
        id: r.try_get(0)?,
        size: u64_of(r.try_get(1)?),
        created_ms: r.try_get(2)?,
    })
}
