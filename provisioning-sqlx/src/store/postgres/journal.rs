//! [`SagaJournal`] on PostgreSQL: one atomic statement per append.

use std::str::FromStr;

use async_trait::async_trait;
use provisioning_core::{Error, JournalRecord, Result, RunId, SagaJournal};

use super::{PostgresStore, err, text};
use crate::store::codec::{from_json, name_of, to_json};

#[async_trait]
impl SagaJournal for PostgresStore {
    async fn append(&self, record: JournalRecord) -> Result<()> {
        let run_id = record.run_id.to_string();
        let status = record.entry.status_after().map(name_of).transpose()?;
        let body = to_json(&record)?;
        let conflict = |reason: String| Error::Conflict {
            kind: "run",
            id: run_id.clone(),
            reason,
        };
        let written = if record.seq == 0 {
            sqlx::query(self.sql.start_run.clone())
                .bind(&run_id)
                .bind(status.as_deref().unwrap_or("running"))
                .bind(&body)
                .execute(&self.pool)
                .await
                .map_err(err("starting a run"))?
        } else {
            let seq =
                i64::try_from(record.seq).map_err(|_| conflict("position overflow".into()))?;
            sqlx::query(self.sql.advance_run.clone())
                .bind(&run_id)
                .bind(status.as_deref())
                .bind(seq)
                .bind(&body)
                .execute(&self.pool)
                .await
                .map_err(err("appending to the journal"))?
        };
        if written.rows_affected() == 0 {
            return Err(conflict(format!(
                "journal position {} is not the run's next one",
                record.seq
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
