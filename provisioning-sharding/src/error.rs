//! [`Error`]: the one error of this crate's configuration API.

use provisioning_core::Error as CoreError;

/// A boxed parser error kept as the source of [`Error::Parse`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can be wrong with a shard directory, a pin table, fallback regions or a
/// placement policy.
///
/// Every variant names the thing at fault (the shard, the config section and
/// key) and the field, so an operator can fix the config from the message alone.
/// It converts into [`provisioning_core::Error::InvalidInput`] with `?` where a
/// core result is expected.
///
/// Resolvers do not return this type: at placement time they return core's
/// [`provisioning_core::Error::Placement`] or
/// [`provisioning_core::Error::InvalidInput`], as the
/// [`ShardResolver`](provisioning_core::ShardResolver) contract says.
///
/// ```
/// use provisioning_sharding::{Error, ShardSpec};
///
/// let err = ShardSpec::new("eu-1").with_region("eu-west").with_connection("/data").build().unwrap_err();
/// assert!(matches!(err, Error::InvalidShard { field: "capacity", .. }));
/// assert_eq!(err.to_string(), r#"shard "eu-1": invalid capacity: must be at least 1"#);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field of one shard breaks a rule.
    #[error("shard {shard:?}: invalid {field}: {rule}")]
    InvalidShard {
        /// The shard's id, as written in the config.
        shard: String,
        /// The field (`id`, `region`, `capacity`, `connection`, `tags`).
        field: &'static str,
        /// The rule broken, phrased so that it says how to fix the value.
        rule: String,
    },

    /// Two shards share one id.
    #[error("shard {shard:?}: invalid id: defined more than once")]
    DuplicateShard {
        /// The repeated id.
        shard: String,
    },

    /// A pin or a status change names a shard the directory does not hold.
    #[error("shard {shard:?} named in {field} is not in the directory")]
    UnknownShard {
        /// The missing shard's id.
        shard: String,
        /// Where it was named (`pins`, `status`).
        field: &'static str,
    },

    /// An entry of a placement policy or fallback table breaks a rule.
    #[error("invalid {section}.{key}: {rule}")]
    InvalidPolicy {
        /// The config section (`plans`, `regions`, `overrides`, `fallbacks`).
        section: &'static str,
        /// The key within the section (a plan or region name, an override's index).
        key: String,
        /// The rule broken.
        rule: String,
    },

    /// The config text is not valid TOML or JSON, or does not have the expected shape.
    #[error("cannot parse {what} from {format}: {source}")]
    Parse {
        /// What was being read (`shard directory`, `placement policy`).
        what: &'static str,
        /// `TOML` or `JSON`.
        format: &'static str,
        /// The parser's error, with line and column where it has them.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// An [`Error::InvalidShard`] for `shard`'s `field` breaking `rule`.
    pub(crate) fn shard(shard: &str, field: &'static str, rule: impl Into<String>) -> Self {
        Error::InvalidShard {
            shard: shard.to_owned(),
            field,
            rule: rule.into(),
        }
    }

    /// An [`Error::InvalidPolicy`] for `section.key` breaking `rule`.
    pub(crate) fn policy(
        section: &'static str,
        key: impl Into<String>,
        rule: impl Into<String>,
    ) -> Self {
        Error::InvalidPolicy {
            section,
            key: key.into(),
            rule: rule.into(),
        }
    }
}

/// The rule text of a core validation error, without core's `invalid <field>:` prefix,
/// so that it can be re-attached to the shard or policy key it came from.
pub(crate) fn rule_of(error: CoreError) -> String {
    match error {
        CoreError::InvalidInput { rule, .. } => rule,
        other => other.to_string(),
    }
}

impl From<Error> for CoreError {
    /// Maps onto [`CoreError::InvalidInput`]: every sharding error is a bad config
    /// value; the rule text keeps the shard or key it names.
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidShard { shard, field, rule } => {
                CoreError::invalid(field, format!("shard {shard:?}: {rule}"))
            }
            Error::DuplicateShard { shard } => {
                CoreError::invalid("id", format!("shard {shard:?} is defined more than once"))
            }
            Error::UnknownShard { shard, field } => {
                CoreError::invalid(field, format!("shard {shard:?} is not in the directory"))
            }
            Error::InvalidPolicy { section, key, rule } => {
                CoreError::invalid(section, format!("{key}: {rule}"))
            }
            error @ Error::Parse { .. } => CoreError::invalid("config", error.to_string()),
        }
    }
}

/// A TOML error as it may be shown: its line and message, without the
/// source line the parser quotes (a `connection` there may hold a
/// password), and with any secret in the message redacted.
///
/// ```
/// let text = "[x]\nconnection = \"postgres://app:s3cret@db/main\" trailing\n";
/// let error = toml::from_str::<toml::Table>(text).unwrap_err();
/// assert!(error.to_string().contains("s3cret"), "the parser quotes the line");
/// let shown = provisioning_sharding::redacted_toml_error(&error, text);
/// assert!(!shown.contains("s3cret"), "{shown}");
/// assert!(shown.starts_with("line 2: "), "{shown}");
/// ```
pub fn redacted_toml_error(error: &toml::de::Error, text: &str) -> String {
    let message = provisioning_core::model::redact_secrets(error.message());
    let line = error
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| before.matches('\n').count() + 1);
    match line {
        Some(line) => format!("line {line}: {message}"),
        None => message,
    }
}

impl Error {
    /// [`Error::Parse`] of TOML `text`, shown without secrets.
    pub(crate) fn toml(what: &'static str, text: &str, error: &toml::de::Error) -> Self {
        Error::Parse {
            what,
            format: "TOML",
            source: redacted_toml_error(error, text).into(),
        }
    }

    /// [`Error::Parse`] of JSON, its message without secrets.
    pub(crate) fn json(what: &'static str, error: &serde_json::Error) -> Self {
        Error::Parse {
            what,
            format: "JSON",
            source: provisioning_core::model::redact_secrets(&error.to_string()).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_core_invalid_input_keeping_the_shard() {
        let core: CoreError = Error::shard("eu-1", "capacity", "must be at least 1").into();
        assert!(matches!(
            core,
            CoreError::InvalidInput {
                field: "capacity",
                ..
            }
        ));
        assert_eq!(
            core.to_string(),
            r#"invalid capacity: shard "eu-1": must be at least 1"#
        );

        let core: CoreError = Error::DuplicateShard { shard: "a".into() }.into();
        assert_eq!(
            core.to_string(),
            r#"invalid id: shard "a" is defined more than once"#
        );

        let core: CoreError = Error::policy("plans", "Gold", "bad name").into();
        assert_eq!(core.to_string(), "invalid plans: Gold: bad name");
    }
}
