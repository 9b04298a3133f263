//! Parental control rows: the PIN's keyed hash, the age limit, and the count of wrong PINs
//! that locks the checks for a while.

use super::Store;
use anyhow::Result;

/// A subscriber's parental control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parental {
    /// `OperatorKeys::pin_tag` of the PIN.
    pub pin_tag: Vec<u8>,
    /// Programmes rated above this age are locked; None: none.
    pub max_age: Option<u8>,
}

/// Whether a PIN may be tried now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinAttempt {
    /// No PIN set.
    NoPin,
    /// Too many wrong PINs: no check until then (Unix ms).
    Locked(i64),
    /// Counted as a failure already (so that concurrent guesses cannot exceed the limit);
    /// [`Store::pin_accepted`] takes it back.
    Counted {
        /// The row.
        parental: Parental,
        /// Failures in a row, this one included.
        failures: u32,
        /// Set when this attempt completed the series: locked until then unless right.
        locked_until_ms: i64,
    },
}

impl Store {
    /// A subscriber's parental control, if set.
    pub async fn parental(&self, subscriber: &str) -> Result<Option<Parental>> {
        let row: Option<(String, Option<i64>)> =
            sqlx::query_as("SELECT pin_hash, max_age FROM parental WHERE subscriber = $1")
                .bind(subscriber)
                .fetch_optional(&self.db.pool)
                .await?;
        row.map(|(tag, age)| {
            Ok(Parental {
                pin_tag: hex::decode(tag)?,
                max_age: age.map(u8::try_from).transpose()?,
            })
        })
        .transpose()
    }

    /// Sets the PIN and the age limit (failures forgotten).
    pub async fn set_parental(&self, subscriber: &str, p: &Parental, now_ms: i64) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "INSERT INTO parental (subscriber, pin_hash, max_age, failures, locked_until_ms, \
             updated_ms) VALUES ($1, $2, $3, 0, 0, $4) ON CONFLICT (subscriber) DO UPDATE \
             SET pin_hash = $2, max_age = $3, failures = 0, locked_until_ms = 0, updated_ms = $4",
        )
        .bind(subscriber)
        .bind(hex::encode(&p.pin_tag))
        .bind(p.max_age.map(i64::from))
        .bind(now_ms)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Removes a subscriber's parental control; false: there was none.
    pub async fn clear_parental(&self, subscriber: &str) -> Result<bool> {
        let _turn = self.db.write_turn().await;
        let done = sqlx::query("DELETE FROM parental WHERE subscriber = $1")
            .bind(subscriber)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Counts a PIN attempt before it is compared, unless the checks are locked, in one
    /// statement: concurrent attempts cannot read the same count, and the attempt that
    /// completes a series of `max_failures` locks the checks until `now_ms + lock_ms` at
    /// once (a right PIN then unlocks them, [`Store::pin_accepted`]).
    pub async fn pin_attempt(
        &self,
        subscriber: &str,
        now_ms: i64,
        max_failures: u32,
        lock_ms: i64,
    ) -> Result<PinAttempt> {
        let _turn = self.db.write_turn().await;
        // A lock that has run out (locked_until_ms > 0 but past) starts a new series.
        let row: Option<(String, Option<i64>, i64, i64)> = sqlx::query_as(
            "UPDATE parental SET \
               failures = (CASE WHEN locked_until_ms > 0 THEN 0 ELSE failures END) + 1, \
               locked_until_ms = CASE \
                 WHEN (CASE WHEN locked_until_ms > 0 THEN 0 ELSE failures END) + 1 >= $3 \
                 THEN $2 + $4 ELSE 0 END \
             WHERE subscriber = $1 AND locked_until_ms <= $2 \
             RETURNING pin_hash, max_age, failures, locked_until_ms",
        )
        .bind(subscriber)
        .bind(now_ms)
        .bind(i64::from(max_failures))
        .bind(lock_ms)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some((tag, age, failures, locked_until_ms)) = row else {
            let lock: Option<(i64,)> =
                sqlx::query_as("SELECT locked_until_ms FROM parental WHERE subscriber = $1")
                    .bind(subscriber)
                    .fetch_optional(&self.db.pool)
                    .await?;
            return Ok(lock.map_or(PinAttempt::NoPin, |(until,)| PinAttempt::Locked(until)));
        };
        Ok(PinAttempt::Counted {
            parental: Parental {
                pin_tag: hex::decode(tag)?,
                max_age: age.map(u8::try_from).transpose()?,
            },
            failures: u32::try_from(failures)?,
            locked_until_ms,
        })
    }

    /// The PIN was right: the series of failures ends (and the lock its last attempt set).
    pub async fn pin_accepted(&self, subscriber: &str) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query("UPDATE parental SET failures = 0, locked_until_ms = 0 WHERE subscriber = $1")
            .bind(subscriber)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }
}
