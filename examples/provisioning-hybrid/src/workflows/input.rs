//! The generic workflows' input, parsed before anything is written: an error
//! names the field and the rule.

use provisioning_core::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};

/// Longest service name.
const SERVICE_MAX_LEN: usize = 40;
/// Longest e-mail address (the `users.email` column).
const EMAIL_MAX_LEN: usize = 254;
/// The roles every tenant's seed creates.
pub(crate) const ROLES: [&str; 3] = ["owner", "member", "viewer"];

/// An SLA tier, with the rate limits it grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Tier {
    Basic,
    Standard,
    Enterprise,
}

impl Tier {
    const NAMES: &'static str = "basic, standard or enterprise";
    /// Every tier, cheapest first.
    const ALL: [Tier; 3] = [Tier::Basic, Tier::Standard, Tier::Enterprise];

    fn parse(value: &str) -> Result<Self> {
        match value {
            "basic" => Ok(Tier::Basic),
            "standard" => Ok(Tier::Standard),
            "enterprise" => Ok(Tier::Enterprise),
            other => Err(Error::invalid(
                "tier",
                format!("{other:?} is not a tier: use {}", Self::NAMES),
            )),
        }
    }

    /// The tier's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Tier::Basic => "basic",
            Tier::Standard => "standard",
            Tier::Enterprise => "enterprise",
        }
    }

    /// Requests per minute and burst the tier allows.
    pub(crate) fn rate_limits(self) -> (u32, u32) {
        match self {
            Tier::Basic => (60, 10),
            Tier::Standard => (600, 100),
            Tier::Enterprise => (6000, 1000),
        }
    }
}

/// `service` input: `{"service": "billing", "tier": "standard"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    service: String,
    tier: String,
}

/// `user` input: `{"email": "ana@acme.example", "role": "member"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    email: String,
    role: String,
}

/// A service name, as an OpenAPI schema.
pub(super) fn service_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "The service: lowercase letters, digits and hyphens, starting with a letter",
        ))
        .pattern(Some("^[a-z][a-z0-9-]*$"))
        .min_length(Some(1))
        .max_length(Some(SERVICE_MAX_LEN))
        .examples(["billing"])
}

/// A validated `service` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServiceInput {
    pub(crate) service: String,
    pub(crate) tier: Tier,
}

impl ServiceInput {
    /// The JSON object [`parse`](Self::parse) takes, as an OpenAPI schema
    /// still open for the caller's own fields (it closes it).
    pub(crate) fn schema() -> ObjectBuilder {
        let service = service_schema();
        let tier = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The SLA tier, which sets the rate limits"))
            .enum_values(Some(Tier::ALL.map(Tier::as_str)));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("service", service)
            .required("service")
            .property("tier", tier)
            .required("tier")
    }

    /// Parses and validates `input`.
    pub(crate) fn parse(input: serde_json::Value) -> Result<Self> {
        let raw: RawService = from_json(input)?;
        validate_service(&raw.service)?;
        Ok(ServiceInput {
            service: raw.service,
            tier: Tier::parse(&raw.tier)?,
        })
    }
}

/// A validated `user` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserInput {
    pub(crate) email: String,
    pub(crate) role: String,
}

impl UserInput {
    /// The JSON object [`parse`](Self::parse) takes, as an OpenAPI schema
    /// still open for the caller's own fields (it closes it).
    pub(crate) fn schema() -> ObjectBuilder {
        let email = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "The user's address, local@domain; its domain is compared lowercased",
            ))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .min_length(Some(5))
            .max_length(Some(EMAIL_MAX_LEN))
            .examples(["ana@acme.example"]);
        let role = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("One of the roles every tenant's seed creates"))
            .enum_values(Some(ROLES));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("email", email)
            .required("email")
            .property("role", role)
            .required("role")
    }

    /// Parses and validates `input`; the e-mail is kept as given but compared
    /// case-insensitively in the domain part by lowercasing it.
    pub(crate) fn parse(input: serde_json::Value) -> Result<Self> {
        let raw: RawUser = from_json(input)?;
        let email = validate_email(&raw.email)?;
        if !ROLES.contains(&raw.role.as_str()) {
            return Err(Error::invalid(
                "role",
                format!("{:?} is not a role: use {}", raw.role, ROLES.join(", ")),
            ));
        }
        Ok(UserInput {
            email,
            role: raw.role,
        })
    }
}

pub(super) fn from_json<T: DeserializeOwned>(input: serde_json::Value) -> Result<T> {
    if !input.is_object() {
        return Err(Error::invalid("input", "must be a JSON object"));
    }
    serde_json::from_value(input).map_err(|e| Error::invalid("input", e.to_string()))
}

/// A service name: 1 to 40 lowercase ASCII letters, digits and hyphens,
/// starting with a letter.
pub(super) fn validate_service(name: &str) -> Result<()> {
    let rule = if name.is_empty() {
        Some("must not be empty".to_owned())
    } else if name.len() > SERVICE_MAX_LEN {
        Some(format!("must be at most {SERVICE_MAX_LEN} characters"))
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("must start with a lowercase letter".to_owned())
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            .map(|c| format!("{c:?} is not allowed: use lowercase letters, digits and hyphens"))
    };
    match rule {
        Some(rule) => Err(Error::invalid("service", rule)),
        None => Ok(()),
    }
}

/// An address `local@domain`: at most 254 characters, one `@`, a non-empty
/// local part, a domain with a dot, no whitespace or control characters. The
/// domain is lowercased, so that `Ana@ACME.example` and `Ana@acme.example` are
/// one user.
fn validate_email(email: &str) -> Result<String> {
    let fail = |rule: &str| Err(Error::invalid("email", rule.to_owned()));
    if email.is_empty() {
        return fail("must not be empty");
    }
    if email.len() > EMAIL_MAX_LEN {
        return fail("must be at most 254 characters");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail("must not contain whitespace or control characters");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return fail("must be local@domain");
    };
    if domain.contains('@') {
        return fail("must contain exactly one @");
    }
    if local.is_empty() {
        return fail("must have a local part before the @");
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return fail("must have a domain with a dot, like example.com");
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(error: Error) -> (&'static str, String) {
        match error {
            Error::InvalidInput { field, rule } => (field, rule),
            other => panic!("not InvalidInput: {other}"),
        }
    }

    #[test]
    fn service_input_rules() {
        let ok = ServiceInput::parse(json!({"service": "billing-2", "tier": "gold"}));
        assert_eq!(field(ok.unwrap_err()).0, "tier");
        let ok = ServiceInput::parse(json!({"service": "billing-2", "tier": "standard"})).unwrap();
        assert_eq!(ok.tier.rate_limits(), (600, 100));
        for bad in ["", "Billing", "2fa", "a b", "a/b", &"x".repeat(41)] {
            let e = ServiceInput::parse(json!({"service": bad, "tier": "basic"})).unwrap_err();
            assert_eq!(field(e).0, "service", "{bad:?}");
        }
        let e = ServiceInput::parse(json!({"service": "a", "tier": "basic", "x": 1})).unwrap_err();
        let (name, rule) = field(e);
        assert_eq!(name, "input");
        assert!(rule.contains("unknown field `x`"), "{rule}");
        assert_eq!(
            field(ServiceInput::parse(json!([1])).unwrap_err()).0,
            "input"
        );
    }

    #[test]
    fn user_input_rules() {
        let ok = UserInput::parse(json!({"email": "Ana@ACME.Example", "role": "member"})).unwrap();
        assert_eq!(ok.email, "Ana@acme.example");
        for bad in [
            "",
            "ana",
            "@acme.example",
            "ana@acme",
            "a@b@c.d",
            "a n@x.io",
            "a@.io",
        ] {
            let e = UserInput::parse(json!({"email": bad, "role": "member"})).unwrap_err();
            assert_eq!(field(e).0, "email", "{bad:?}");
        }
        let e = UserInput::parse(json!({"email": "a@b.io", "role": "root"})).unwrap_err();
        assert_eq!(field(e).0, "role");
        let e = UserInput::parse(json!({"email": "a@b.io"})).unwrap_err();
        assert!(field(e).1.contains("missing field `role`"));
    }
}
