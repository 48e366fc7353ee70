//! [`SagaJournal`] on PostgreSQL: one atomic statement per append.

use std::str::FromStr;

use async_trait::async_trait;
use provisioning_core::{Error, JournalRecord, Result, RunId, SagaJournal};

use super::{PostgresStore, err, text};
use crate::store::codec::{from_json, name_of, to_json};

#[async_trait]
impl SagaJournal for PostgresStore {
    async fn append(&self, record: JournalRecord) -> Result<()> {
        self.append_batch(vec![record]).await
    }

    /// One statement, one commit, however many records.
    async fn append_batch(&self, records: Vec<JournalRecord>) -> Result<()> {
        let Some(first) = records.first() else {
            return Ok(());
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
        let start = i64::try_from(from).map_err(|_| conflict("position overflow".into()))?;
        let count = records.len() as i64;
        // The run's status after the batch: that of its last record that sets one.
        let status = records
            .iter()
            .rev()
            .find_map(|r| r.entry.status_after())
            .map(name_of)
            .transpose()?;
        let seqs: Vec<i64> = (start..start + count).collect();
        let bodies = records.iter().map(to_json).collect::<Result<Vec<_>>>()?;
        let written = if from == 0 {
            sqlx::query(self.sql.start_run.clone())
                .bind(&run_id)
                .bind(status.as_deref().unwrap_or("running"))
                .bind(count)
                .bind(seqs)
                .bind(bodies)
                .execute(&self.pool)
                .await
                .map_err(err("starting a run"))?
        } else {
            sqlx::query(self.sql.advance_run.clone())
                .bind(&run_id)
                .bind(status.as_deref())
                .bind(start)
                .bind(count)
                .bind(seqs)
                .bind(bodies)
                .execute(&self.pool)
                .await
                .map_err(err("appending to the journal"))?
        };
        if written.rows_affected() == 0 {
            return Err(conflict(format!(
                "journal position {from} is not the run's next one"
            )));
        }
        Ok(())
    }

    async fn load(&self, run_id: RunId) -> Result<Vec<JournalRecord>> {
        let rows = sqlx::query(self.sql.load_run.clone())
            .bind(run_id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(err("loading a run"))?;
        rows.iter().map(|r| from_json(text(r, "record")?)).collect()
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunId>> {
        let rows = sqlx::query(self.sql.unfinished_runs.clone())
            .fetch_all(&self.pool)
            .await
            .map_err(err("listing unfinished runs"))?;
        rows.iter()
            .map(|r| RunId::from_str(text(r, "run_id")?))
            .collect()
    }
}
