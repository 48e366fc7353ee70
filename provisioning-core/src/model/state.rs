//! The tenant lifecycle: states and the one transition table.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where a tenant is in its lifecycle.
///
/// ```text
/// Requested -> Validating -> Provisioning -> Active <-> Suspended -> Deleting -> Deleted
///                  |              |          |  ^ |                       ^
///                  +--> Failed <--+          v  | +-----------------------+
///                         |               Moving (from and back to Active,
///                         |                       or Suspended in a drain)
///                         |  (retry: -> Validating; or -> Deleting)
/// ```
///
/// Every legal move is one row of [`TRANSITIONS`]; [`TenantState::transition_to`]
/// refuses the rest with [`Error::IllegalTransition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TenantState {
    /// Submitted and recorded; nothing created yet.
    Requested,
    /// Checking the request: id, uniqueness, plan and region.
    Validating,
    /// Placed on a shard; database, schema, seeds and storage being made.
    Provisioning,
    /// Provisioned and serving.
    Active,
    /// Provisioned but switched off; resumable.
    Suspended,
    /// Active (or Suspended, moved by a drain), with its writes held while
    /// its data is copied to another database and the placement cut over;
    /// back to the state it came from when the move ends, on the target or,
    /// rolled back, on the source.
    Moving,
    /// Being removed.
    Deleting,
    /// Removed; a tombstone kept for the audit trail. Terminal.
    Deleted,
    /// Provisioning failed and was rolled back; may be retried or deleted.
    Failed,
}

/// The lifecycle's transition table: `(from, to)` pairs, and nothing else is legal.
pub const TRANSITIONS: &[(TenantState, TenantState)] = {
    use TenantState::*;
    &[
        (Requested, Validating),
        (Validating, Provisioning),
        (Validating, Failed),
        (Provisioning, Active),
        (Provisioning, Failed),
        (Active, Suspended),
        (Active, Deleting),
        (Active, Moving),
        (Moving, Active),
        (Suspended, Moving),
        (Moving, Suspended),
        (Suspended, Active),
        (Suspended, Deleting),
        (Deleting, Deleted),
        (Failed, Validating),
        (Failed, Deleting),
    ]
};

impl TenantState {
    /// Every state, in lifecycle order.
    pub const ALL: [TenantState; 9] = [
        TenantState::Requested,
        TenantState::Validating,
        TenantState::Provisioning,
        TenantState::Active,
        TenantState::Suspended,
        TenantState::Moving,
        TenantState::Deleting,
        TenantState::Deleted,
        TenantState::Failed,
    ];

    /// Whether the table allows moving from `self` to `to`.
    ///
    /// ```
    /// use provisioning_core::TenantState;
    ///
    /// assert!(TenantState::Active.can_transition_to(TenantState::Suspended));
    /// assert!(!TenantState::Deleted.can_transition_to(TenantState::Active));
    /// ```
    pub fn can_transition_to(self, to: TenantState) -> bool {
        TRANSITIONS.contains(&(self, to))
    }

    /// The state after moving to `to`, if the table allows it.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] naming both states.
    pub fn transition_to(self, to: TenantState) -> Result<TenantState> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(Error::IllegalTransition { from: self, to })
        }
    }

    /// The states reachable from `self` in one move.
    pub fn next_states(self) -> impl Iterator<Item = TenantState> {
        TRANSITIONS
            .iter()
            .filter(move |(from, _)| *from == self)
            .map(|(_, to)| *to)
    }

    /// Whether no transition leaves this state ([`TenantState::Deleted`] only).
    pub fn is_terminal(self) -> bool {
        self.next_states().next().is_none()
    }

    /// The lowercase name used in JSON, the CLI and the stores.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantState::Requested => "requested",
            TenantState::Validating => "validating",
            TenantState::Provisioning => "provisioning",
            TenantState::Active => "active",
            TenantState::Suspended => "suspended",
            TenantState::Moving => "moving",
            TenantState::Deleting => "deleting",
            TenantState::Deleted => "deleted",
            TenantState::Failed => "failed",
        }
    }
}

impl fmt::Display for TenantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for TenantState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TenantState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "state",
                    format!(
                        "must be one of requested, validating, provisioning, active, \
                         suspended, moving, deleting, deleted, failed (got {s:?})"
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_is_the_only_terminal_state() {
        let terminal: Vec<_> = TenantState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, vec![TenantState::Deleted]);
    }

    #[test]
    fn failed_can_be_retried() {
        assert!(TenantState::Failed.can_transition_to(TenantState::Validating));
    }

    #[test]
    fn illegal_transition_names_both_states() {
        let err = TenantState::Deleted
            .transition_to(TenantState::Active)
            .unwrap_err();
        assert!(matches!(
            err,
            Error::IllegalTransition {
                from: TenantState::Deleted,
                to: TenantState::Active
            }
        ));
        assert_eq!(
            err.to_string(),
            "illegal tenant state transition from deleted to active"
        );
    }

    #[test]
    fn names_round_trip() {
        for state in TenantState::ALL {
            assert_eq!(state.as_str().parse::<TenantState>().unwrap(), state);
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{}\"", state.as_str())
            );
        }
        assert!("Active".parse::<TenantState>().is_err());
    }
}
