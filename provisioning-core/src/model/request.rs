//! [`TenantRequest`]: what a caller asks for when onboarding a tenant.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{PlanName, Region, RequestId, TenantId};

/// Longest accepted attribute key.
pub const ATTRIBUTE_KEY_MAX_LEN: usize = 64;
/// Longest accepted attribute value, in bytes.
pub const ATTRIBUTE_VALUE_MAX_LEN: usize = 1024;
/// Most attributes on one request.
pub const ATTRIBUTES_MAX: usize = 64;

/// A request to onboard one tenant.
///
/// `request_id` is the idempotency key: submitting the same request again returns
/// the first outcome. `attributes` are free-form key/value pairs a
/// [`PlacementPolicy`](crate::PlacementPolicy) may read (`tier=gold`,
/// `residency=strict`).
///
/// ```
/// use provisioning_core::TenantRequest;
///
/// let request = TenantRequest::new("acme".parse()?, "premium".parse()?, "eu-west".parse()?)
///     .with_attribute("tier", "gold")?;
/// assert_eq!(request.attributes["tier"], "gold");
/// # Ok::<(), provisioning_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TenantRequest {
    /// The idempotency key.
    pub request_id: RequestId,
    /// The tenant to create.
    pub tenant_id: TenantId,
    /// The commercial plan.
    pub plan: PlanName,
    /// The region the tenant's data must live in.
    pub region: Region,
    /// Free-form attributes for the placement policy and custom steps.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl TenantRequest {
    /// A request with a fresh [`RequestId`] and no attributes.
    pub fn new(tenant_id: TenantId, plan: PlanName, region: Region) -> Self {
        TenantRequest {
            request_id: RequestId::new(),
            tenant_id,
            plan,
            region,
            attributes: BTreeMap::new(),
        }
    }

    /// The same request under the given idempotency key.
    #[must_use]
    pub fn with_request_id(mut self, request_id: RequestId) -> Self {
        self.request_id = request_id;
        self
    }

    /// Adds an attribute.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `attributes` when the key or value breaks
    /// [`validate_attribute`]'s rules.
    pub fn with_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self> {
        let (key, value) = (key.into(), value.into());
        validate_attribute(&key, &value)?;
        if self.attributes.len() >= ATTRIBUTES_MAX && !self.attributes.contains_key(&key) {
            return Err(Error::invalid(
                "attributes",
                format!("at most {ATTRIBUTES_MAX} attributes"),
            ));
        }
        self.attributes.insert(key, value);
        Ok(self)
    }

    /// Checks the parts that the field types cannot: the attributes (a request
    /// deserialized from JSON has not been through [`TenantRequest::with_attribute`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `attributes` and the rule.
    pub fn validate(&self) -> Result<()> {
        if self.attributes.len() > ATTRIBUTES_MAX {
            return Err(Error::invalid(
                "attributes",
                format!("at most {ATTRIBUTES_MAX} attributes"),
            ));
        }
        self.attributes
            .iter()
            .try_for_each(|(k, v)| validate_attribute(k, v))
    }
}

/// An attribute key is 1 to 64 characters of ASCII letters, digits, `-`, `_` and
/// `.`; a value is at most 1024 bytes without control characters.
///
/// # Errors
/// [`Error::InvalidInput`] on `attributes` naming the key and the rule.
pub fn validate_attribute(key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.len() > ATTRIBUTE_KEY_MAX_LEN {
        return Err(Error::invalid(
            "attributes",
            format!("key {key:?} must be 1 to {ATTRIBUTE_KEY_MAX_LEN} characters"),
        ));
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Error::invalid(
            "attributes",
            format!("key {key:?} may contain only ASCII letters, digits, '-', '_' and '.'"),
        ));
    }
    if value.len() > ATTRIBUTE_VALUE_MAX_LEN {
        return Err(Error::invalid(
            "attributes",
            format!("value of {key:?} must be at most {ATTRIBUTE_VALUE_MAX_LEN} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            "attributes",
            format!("value of {key:?} must not contain control characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> TenantRequest {
        TenantRequest::new(
            "acme".parse().unwrap(),
            "free".parse().unwrap(),
            "eu-west".parse().unwrap(),
        )
    }

    #[test]
    fn bad_attributes_are_rejected_by_name() {
        let err = request().with_attribute("", "x").unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "attributes",
                ..
            }
        ));
        assert!(request().with_attribute("a b", "x").is_err());
        assert!(request().with_attribute("k", "line\nbreak").is_err());
        assert!(request().with_attribute("k", "v".repeat(1025)).is_err());
    }

    #[test]
    fn json_field_names_are_stable() {
        let r = request().with_attribute("tier", "gold").unwrap();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["tenant_id"], "acme");
        assert_eq!(json["plan"], "free");
        assert_eq!(json["region"], "eu-west");
        assert_eq!(json["attributes"]["tier"], "gold");
        assert!(json["request_id"].is_string());
        let back: TenantRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn deserialized_invalid_tenant_is_rejected() {
        let json = r#"{"request_id":"0190b6e0-0000-7000-8000-000000000001","tenant_id":"Bad","plan":"free","region":"eu"}"#;
        let err = serde_json::from_str::<TenantRequest>(json).unwrap_err();
        assert!(err.to_string().contains("tenant_id"), "{err}");
    }
}
