//! What every schema manager and its builder hold alike: a schema per
//! isolation and the migration hook, checked and looked up the same way.

use provisioning_core::{Error, Isolation, Result};

use crate::error::SqlxError;
use crate::schema::{MigrationHook, TenantSchema};

/// A manager's schemas (at least one of the two once built) and its hook.
pub(crate) struct Schemas<C> {
    pub(crate) dedicated: Option<TenantSchema<C>>,
    pub(crate) shared: Option<TenantSchema<C>>,
    pub(crate) hook: Option<MigrationHook>,
}

// By hand: a derive would require `C: Default`, which no connection is.
impl<C> Default for Schemas<C> {
    fn default() -> Self {
        Schemas {
            dedicated: None,
            shared: None,
            hook: None,
        }
    }
}

impl<C> Schemas<C> {
    /// [`SqlxError::MissingPart`] unless a schema is set.
    pub(crate) fn require_one(&self) -> Result<(), SqlxError> {
        if self.dedicated.is_none() && self.shared.is_none() {
            return Err(SqlxError::MissingPart {
                part: "schema",
                setter: "dedicated` or `shared",
            });
        }
        Ok(())
    }

    /// Checks each schema set (see [`TenantSchema::validate`]).
    pub(crate) fn validate(&self) -> Result<(), SqlxError> {
        if let Some(schema) = &self.dedicated {
            schema.validate("dedicated", false)?;
        }
        if let Some(schema) = &self.shared {
            schema.validate("shared", true)?;
        }
        Ok(())
    }

    /// The schema of `isolation`; the error names `manager`.
    pub(crate) fn get(&self, isolation: Isolation, manager: &str) -> Result<&TenantSchema<C>> {
        match isolation {
            Isolation::Dedicated => self.dedicated.as_ref(),
            Isolation::Shared => self.shared.as_ref(),
        }
        .ok_or_else(|| {
            Error::invalid(
                "isolation",
                format!("this {manager} has no {isolation} schema configured"),
            )
        })
    }
}
