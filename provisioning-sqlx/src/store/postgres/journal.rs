//! [`SagaJournal`] on PostgreSQL: one atomic statement per append.

use std::str::FromStr;

use async_trait::async_trait;
use provisioning_core::{JournalRecord, Result, RunId, SagaJournal};

use super::{PostgresStore, err, text};
use crate::store::codec::{EncodedBatch, from_json};

#[async_trait]
impl SagaJournal for PostgresStore {
    async fn append(&self, record: JournalRecord) -> Result<()> {
        self.append_batch(vec![record]).await
    }

    /// One statement, one commit, however many records.
    async fn append_batch(&self, records: Vec<JournalRecord>) -> Result<()> {
        let Some(batch) = EncodedBatch::new(&records)? else {
            return Ok(());
        };
        let written = if batch.from == 0 {
            sqlx::query(self.sql.start_run.clone())
                .bind(&batch.run_id)
                .bind(batch.status.as_deref().unwrap_or("running"))
                .bind(batch.count)
                .bind(batch.seqs())
                .bind(&batch.bodies)
                .execute(&self.pool)
                .await
                .map_err(err("starting a run"))?
        } else {
            sqlx::query(self.sql.advance_run.clone())
                .bind(&batch.run_id)
                .bind(batch.status.as_deref())
                .bind(batch.from)
                .bind(batch.count)
                .bind(batch.seqs())
                .bind(&batch.bodies)
                .execute(&self.pool)
                .await
                .map_err(err("appending to the journal"))?
        };
        if written.rows_affected() == 0 {
            return Err(batch.not_next());
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
