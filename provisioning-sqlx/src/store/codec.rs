//! How records are written to and read from the stores: whole records as JSON
//! (the model's stable field names), enums by their serialized names.

use chrono::{DateTime, SecondsFormat, Utc};
use provisioning_core::{Error, Result};
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
