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
use crate::store::codec::{from_json, name_of, to_json};

/// One caller's append, ready to be written.
pub(super) struct Append {
    run_id: String,
    /// The position of its first record.
    from: i64,
    count: i64,
    /// The run's status after it, if it changes it.
    status: Option<String>,
    /// Its records as JSON.
    bodies: Vec<String>,
}

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

impl Grouped for Append {
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

/// Checks that `records` are consecutive records of one run and makes them
/// an [`Append`].
fn prepare(records: &[JournalRecord]) -> Result<Option<Append>> {
    let Some(first) = records.first() else {
        return Ok(None);
    };
    let run_id = first.run_id.to_string();
    let conflict = |reason: String| Error::Conflict {
        kind: "run",
        id: run_id.clone(),
        reason,
    };
    let (run, from) = (first.run_id, first.seq);
    if let Some((i, r)) = records
        .iter()
        .enumerate()
        .find(|(i, r)| r.run_id != run || r.seq != from + *i as u64)
    {
        return Err(conflict(format!(
            "journal position {} of run {} at place {i} of a batch from {from}",
            r.seq, r.run_id
        )));
    }
    let from = i64::try_from(from).map_err(|_| conflict("position overflow".into()))?;
    // The run's status after the batch: that of its last record that sets one.
    let status = records
        .iter()
        .rev()
        .find_map(|r| r.entry.status_after())
        .map(name_of)
        .transpose()?;
    let bodies = records.iter().map(to_json).collect::<Result<Vec<_>>>()?;
    Ok(Some(Append {
        run_id,
        from,
        count: records.len() as i64,
        status,
        bodies,
    }))
}

#[async_trait]
impl SagaJournal for SqliteStore {
    async fn append(&self, record: JournalRecord) -> Result<()> {
        self.append_batch(vec![record]).await
    }

    /// Queued, and written with whatever else is queued when the writer lock
    /// comes free (see `group`).
    async fn append_batch(&self, records: Vec<JournalRecord>) -> Result<()> {
        let Some(append) = prepare(&records)? else {
            return Ok(());
        };
        let (run_id, from) = (append.run_id.clone(), append.from);
        if self.journal.write(self, append).await? {
            return Ok(());
        }
        Err(Error::Conflict {
            kind: "run",
            id: run_id,
            reason: format!("journal position {from} is not the run's next one"),
        })
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
