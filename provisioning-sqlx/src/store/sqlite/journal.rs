//! [`SagaJournal`] on SQLite, with group commit (see `group`): appends that
//! queue up while another write holds the writer lock are written together.
//!
//! The appends travel as one JSON parameter, loaded into a temporary table
//! by the script's first statement; a fixed handful of set-based statements
//! then checks every append's position, starts or advances the runs and
//! inserts the records of the appends whose position was right, so an
//! append's own outcome is the one it would have had alone (a conflict when
//! its position is taken). The script's text never changes, so SQLite
//! compiles it once per connection, and its cost barely grows with the batch:
//! sqlx hands every statement's outcome across threads, so a few set-based
//! statements cost less than a few per append.

use std::str::FromStr;

use async_trait::async_trait;
use provisioning_core::{Error, JournalRecord, Result, RunId, SagaJournal};
use sqlx::Row;

use super::group::Grouped;
use super::{SqliteStore, err};
use crate::store::codec::{EncodedBatch, from_json};

/// Writes a batch of appends (see the module's documentation): `?1` is the
/// JSON array of appends; it returns, per append, its place and whether it
/// was written.
const SCRIPT: &str = "\
    CREATE TEMP TABLE IF NOT EXISTS journal_ops ( \
        i INTEGER PRIMARY KEY, run_id TEXT NOT NULL, start INTEGER NOT NULL, \
        count INTEGER NOT NULL, status TEXT, bodies TEXT NOT NULL, ok INTEGER); \
    BEGIN IMMEDIATE; \
    INSERT INTO temp.journal_ops (i, run_id, start, count, status, bodies) \
        SELECT key, value ->> 'r', value ->> 'f', value ->> 'c', value ->> 's', value ->> 'b' \
        FROM json_each(?1); \
    UPDATE temp.journal_ops AS o SET ok = CASE WHEN o.start = 0 \
        THEN NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = o.run_id) \
        ELSE EXISTS (SELECT 1 FROM runs r WHERE r.run_id = o.run_id AND r.next_seq = o.start) \
        END; \
    INSERT INTO runs (run_id, status, next_seq, started) \
        SELECT o.run_id, COALESCE(o.status, 'running'), o.count, \
               (SELECT COALESCE(MAX(started), 0) FROM runs) + o.i + 1 \
        FROM temp.journal_ops o WHERE o.start = 0 AND o.ok ORDER BY o.i; \
    UPDATE runs SET next_seq = next_seq + o.count, status = COALESCE(o.status, runs.status) \
        FROM temp.journal_ops o \
        WHERE o.start > 0 AND o.ok AND runs.run_id = o.run_id; \
    INSERT INTO journal (run_id, seq, record) \
        SELECT o.run_id, o.start + b.key, b.value \
        FROM temp.journal_ops o, json_each(o.bodies) b WHERE o.ok; \
    SELECT i, ok FROM temp.journal_ops ORDER BY i; \
    DELETE FROM temp.journal_ops; \
    COMMIT;";

impl Grouped for EncodedBatch {
    /// Whether it was written (else its position was not the run's next).
    type Outcome = bool;

    const SCRIPT: &'static str = SCRIPT;
    const WHAT: &'static str = "appending to the journal";
    const READING: &'static str = "reading a journal write";

    fn conflicts(&self, other: &Self) -> bool {
        self.run_id == other.run_id
    }

    fn op(&self) -> Result<serde_json::Value> {
        // The records go as one JSON text (an array of strings), so that
        // SQLite stores each exactly as serialized here.
        let bodies =
            serde_json::to_string(&self.bodies).map_err(|source| Error::Serialization {
                what: "journal records",
                source,
            })?;
        Ok(serde_json::json!({
            "r": self.run_id, "f": self.from, "c": self.count, "s": self.status, "b": bodies,
        }))
    }
}

#[async_trait]
impl SagaJournal for SqliteStore {
    async fn append(&self, record: JournalRecord) -> Result<()> {
        self.append_batch(vec![record]).await
    }

    /// Queued, and written with whatever else is queued when the writer lock
    /// comes free (see `group`).
    async fn append_batch(&self, records: Vec<JournalRecord>) -> Result<()> {
        let Some(batch) = EncodedBatch::new(&records)? else {
            return Ok(());
        };
        let not_next = batch.not_next();
        if self.journal.write(self, batch).await? {
            return Ok(());
        }
        Err(not_next)
    }

    async fn load(&self, run_id: RunId) -> Result<Vec<JournalRecord>> {
        let rows = sqlx::query("SELECT record FROM journal WHERE run_id = ?1 ORDER BY seq")
            .bind(run_id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(err("loading a run"))?;
        rows.iter().map(|r| from_json(r.get("record"))).collect()
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunId>> {
        let rows = sqlx::query(
            "SELECT run_id FROM runs WHERE status IN ('running', 'compensating') ORDER BY started",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err("listing unfinished runs"))?;
        rows.iter()
            .map(|r| RunId::from_str(r.get::<&str, _>("run_id")))
            .collect()
    }
}
