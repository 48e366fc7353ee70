//! The crate's one error type.

use std::error::Error as StdError;

use crate::model::RunId;
use crate::model::{TenantId, TenantIdRule, TenantState};

/// A boxed error from an adapter, a step or a user's code, kept as the source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result` with this crate's [`enum@Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in provisioning-core and in the traits it defines.
///
/// Adapters (stores, schema managers, storage) map their own failures onto these
/// variants so that callers can match on one type; [`Error::is_transient`] tells
/// whether retrying the same call may succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tenant id broke one of the [`TenantId`] rules.
    #[error("invalid tenant_id {value:?}: {rule}")]
    InvalidTenantId {
        /// The rejected input, as given.
        value: String,
        /// The rule it broke.
        rule: TenantIdRule,
    },

    /// An input field broke a rule; nothing was written.
    #[error("invalid {field}: {rule}")]
    InvalidInput {
        /// The field, as named in the API or the JSON (`plan`, `region`, `retry.multiplier`).
        field: &'static str,
        /// The rule, phrased so that the message tells how to fix the input.
        rule: String,
    },

    /// A lifecycle transition that the state machine forbids.
    #[error("illegal tenant state transition from {from} to {to}")]
    IllegalTransition {
        /// The state the tenant is in.
        from: TenantState,
        /// The state that was asked for.
        to: TenantState,
    },

    /// What was asked needs an Active tenant, and the tenant is not.
    #[error("tenant {tenant} is {state}: {what} needs an Active tenant")]
    NotActive {
        /// The tenant.
        tenant: TenantId,
        /// The state it is in.
        state: TenantState,
        /// What needed it Active (`workflow "service"`).
        what: String,
    },

    /// Something that was looked up does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What was looked up.
        kind: Entity,
        /// Its id.
        id: String,
    },

    /// A write lost a race or contradicts what is stored: a stale version, the same
    /// tenant id under another request, a journal position already taken.
    #[error("conflict on {kind} {id}: {reason}")]
    Conflict {
        /// What the conflict is on.
        kind: Entity,
        /// Its id.
        id: String,
        /// What was expected and what was found.
        reason: String,
    },

    /// The tenant may not be placed: no eligible shard, or data residency forbids it.
    #[error("no placement for tenant {tenant}: {reason}")]
    Placement {
        /// The tenant being placed.
        tenant: TenantId,
        /// Why no shard qualifies (names the region and pool).
        reason: String,
    },

    /// A saga definition on resume does not match the journaled run.
    #[error("run {run} cannot resume: {reason}")]
    RunMismatch {
        /// The journaled run.
        run: RunId,
        /// What differs (workflow name, step list).
        reason: String,
    },

    /// A part of a builder was not supplied.
    #[error("missing {part}: call `{setter}` on the builder")]
    MissingPart {
        /// The part (`journal`, `timer`, `store`...).
        part: &'static str,
        /// The builder method that supplies it.
        setter: &'static str,
    },

    /// A context or record could not be (de)serialized for the journal or store.
    #[error("serialization of {what} failed")]
    Serialization {
        /// What was being (de)serialized.
        what: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },

    /// A backend (database, object store, journal) failed.
    #[error("{component} failed: {message}")]
    Backend {
        /// The component that failed (`sqlite store`, `object store`...).
        component: &'static str,
        /// What it was doing.
        message: String,
        /// Whether retrying may succeed (connection lost, busy, timeout).
        transient: bool,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

/// What an [`Error::NotFound`] or [`Error::Conflict`] is about, for a caller
/// to branch on (`Error::NotFound { kind: Entity::Tenant, .. }`); its
/// `Display` is the word the error message uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Entity {
    /// A tenant's catalog record.
    Tenant,
    /// A provisioning request (by request id).
    Request,
    /// A saga run and its journal.
    Run,
    /// A fleet rollout.
    Rollout,
    /// A shard of the shard map.
    Shard,
    /// A workflow registered on the orchestrator.
    Workflow,
    /// A seed of a tenant schema.
    Seed,
    /// A table of a tenant schema.
    Table,
    /// A tenant's database or schema.
    TenantDatabase,
    /// A tenant's storage folder.
    TenantStorage,
    /// A tenant's rows or files, as a move copies them.
    TenantData,
    /// A quota a tenant's resources count against.
    Quota,
    /// The object store configured for a region.
    RegionStore,
}

impl Entity {
    /// The word for it in messages: `tenant`, `tenant database`...
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Tenant => "tenant",
            Entity::Request => "request",
            Entity::Run => "run",
            Entity::Rollout => "rollout",
            Entity::Shard => "shard",
            Entity::Workflow => "workflow",
            Entity::Seed => "seed",
            Entity::Table => "table",
            Entity::TenantDatabase => "tenant database",
            Entity::TenantStorage => "tenant storage",
            Entity::TenantData => "tenant data",
            Entity::Quota => "quota",
            Entity::RegionStore => "object store for region",
        }
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl Error {
    /// Whether retrying the same operation may succeed.
    ///
    /// Only backend failures flagged transient qualify; invalid input, conflicts and
    /// missing things fail the same way every time.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Backend {
                transient: true,
                ..
            }
        )
    }

    /// The message with its causes, `: `-separated (a backend's own error
    /// says what went wrong: `duplicate column name: estimate_hours`), for a
    /// record that keeps the error as text.
    ///
    /// ```
    /// let e = provisioning_core::Error::backend("db", "migration 11", false, std::io::Error::other("duplicate column"));
    /// assert_eq!(e.report(), "db failed: migration 11: duplicate column");
    /// ```
    pub fn report(&self) -> String {
        Error::report_of(self)
    }

    /// [`report`](Self::report) of any error: its message and causes,
    /// `: `-separated, a cause whose text the message already holds skipped.
    ///
    /// ```
    /// let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device");
    /// assert_eq!(provisioning_core::Error::report_of(&io), "no space left on device");
    /// ```
    pub fn report_of(error: &(dyn StdError + 'static)) -> String {
        let mut text = error.to_string();
        let mut cause = error.source();
        while let Some(e) = cause {
            let more = e.to_string();
            if !text.contains(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            cause = e.source();
        }
        text
    }

    /// [`report_of`](Self::report_of) for a log: secrets redacted, paths kept
    /// (an operator needs them; the request id on the log line ties them to
    /// the run).
    pub(crate) fn log_report_of(error: &(dyn StdError + 'static)) -> String {
        crate::model::redact_secrets(&Error::report_of(error))
    }

    /// [`report_of`](Self::report_of) for what the tenant's owner reads
    /// (journal, receipts, tenant records, events, audit trails): secrets
    /// redacted and the directories of file paths taken out.
    pub(crate) fn record_report_of(error: &(dyn StdError + 'static)) -> String {
        crate::model::redact_paths(&Error::log_report_of(error))
    }

    /// An [`Error::InvalidInput`] for `field` breaking `rule`.
    pub fn invalid(field: &'static str, rule: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            rule: rule.into(),
        }
    }

    /// An [`Error::Backend`] with a source error.
    pub fn backend(
        component: &'static str,
        message: impl Into<String>,
        transient: bool,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Backend {
            component,
            message: message.into(),
            transient,
            source: Some(source.into()),
        }
    }
}
