//! What every schema manager and its builder hold alike: a schema per
//! isolation and the migration hook, checked and looked up the same way.

use provisioning_core::{Error, Isolation, Result};

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
    /// [`crate::Error::MissingPart`] unless a schema is set.
    pub(crate) fn require_one(&self) -> Result<(), crate::Error> {
        if self.dedicated.is_none() && self.shared.is_none() {
            return Err(crate::Error::MissingPart {
                part: "schema",
                setter: "dedicated` or `shared",
            });
        }
        Ok(())
    }

    /// The release these schemas migrate to: `v{last version}-{digest}`,
    /// the digest (SHA-256, 12 hex digits) over every migration's version and
    /// checksum and every seed's name and version, of both schemas, so that
    /// any change of either makes another release.
    pub(crate) fn release(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        let mut last = 0;
        for (tag, schema) in [("dedicated", &self.dedicated), ("shared", &self.shared)] {
            let Some(schema) = schema else { continue };
            hash.update(tag.as_bytes());
            for m in schema.migrator().iter() {
                last = last.max(m.version);
                hash.update(m.version.to_be_bytes());
                hash.update(&*m.checksum);
            }
            for seed in schema.seeds() {
                hash.update(seed.name().as_bytes());
                hash.update(seed.version().to_be_bytes());
            }
        }
        let digest: String = hash
            .finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("v{last}-{digest}")
    }

    /// Checks each schema set (see [`TenantSchema::validate`]).
    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
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
