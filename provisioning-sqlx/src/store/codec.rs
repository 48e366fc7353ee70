//! How records are written to and read from the stores: whole records as JSON
//! (the model's stable field names), enums by their serialized names.

use chrono::{DateTime, SecondsFormat, Utc};
use provisioning_core::saga::JournalBatch;
use provisioning_core::{Entity, Error, JournalRecord, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|source| Error::Serialization {
        what: "store record",
        source,
    })
}

pub(crate) fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|source| Error::Serialization {
        what: "store record",
        source,
    })
}

/// An enum's serialized name (`running`, `compensation_failed`...).
pub(crate) fn name_of<T: Serialize>(value: T) -> Result<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        Ok(other) => Ok(other.to_string()),
        Err(source) => Err(Error::Serialization {
            what: "enum name",
            source,
        }),
    }
}

/// A timestamp of fixed width, so that text order is time order.
pub(crate) fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A batch of journal records as both stores write it: checked to be
/// consecutive records of one run ([`JournalBatch`]), then encoded.
pub(crate) struct EncodedBatch {
    pub(crate) run_id: String,
    /// The position of its first record.
    pub(crate) from: i64,
    pub(crate) count: i64,
    /// The run's status after it, if it changes it.
    pub(crate) status: Option<String>,
    /// Its records as JSON.
    pub(crate) bodies: Vec<String>,
}

impl EncodedBatch {
    /// `records` encoded, or `None` for no records.
    pub(crate) fn new(records: &[JournalRecord]) -> Result<Option<Self>> {
        let Some(batch) = JournalBatch::new(records)? else {
            return Ok(None);
        };
        let run_id = batch.run_id().to_string();
        let from = i64::try_from(batch.from()).map_err(|_| Error::Conflict {
            kind: Entity::Run,
            id: run_id.clone(),
            reason: "journal position overflow".into(),
        })?;
        Ok(Some(EncodedBatch {
            run_id,
            from,
            count: batch.len() as i64,
            status: batch.status_after().map(name_of).transpose()?,
            bodies: records.iter().map(to_json).collect::<Result<_>>()?,
        }))
    }

    /// The positions its records take (PostgreSQL binds them as an array).
    #[cfg(feature = "postgres")]
    pub(crate) fn seqs(&self) -> Vec<i64> {
        (self.from..self.from + self.count).collect()
    }

    /// The conflict of a batch whose first position was not the run's next.
    pub(crate) fn not_next(&self) -> Error {
        Error::Conflict {
            kind: Entity::Run,
            id: self.run_id.clone(),
            reason: format!("journal position {} is not the run's next one", self.from),
        }
    }
}
