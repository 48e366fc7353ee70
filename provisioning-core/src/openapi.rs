//! OpenAPI schemas (feature `openapi`) of the types that serialize as a
//! validated string: the UUID ids, [`TenantId`], the short names and
//! [`FailureLimit`]. The structs and enums an HTTP API returns derive
//! `utoipa::ToSchema` where they are defined; these are written by hand so
//! that each carries its rule (pattern and lengths), which a derive on a
//! newtype cannot express, and a short description instead of the rustdoc
//! examples.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::fleet::FailureLimit;
use crate::model::{
    NAME_MAX_LEN, PlanName, Region, RequestId, RolloutId, RunId, ShardId, TENANT_ID_MAX_LEN,
    TENANT_ID_MIN_LEN, TenantId,
};

/// A string schema with `description` and one example.
fn string(description: &str, example: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .examples([example])
}

macro_rules! uuid_schema {
    ($name:ident, $description:literal) => {
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                string(
                    concat!($description, " A UUID, not the nil UUID."),
                    "0190c1a2-7b3e-7c4d-9e5f-0123456789ab",
                )
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                .into()
            }
        }

        impl ToSchema for $name {}
    };
}

uuid_schema!(
    RequestId,
    "The idempotency key of a request: the same id always yields the same receipt."
);
uuid_schema!(
    RunId,
    "One execution of a workflow; its journal is the audit trail."
);
uuid_schema!(RolloutId, "One fleet roll-out of a release.");

/// A tenant id without two hyphens in a row or a trailing one: a letter,
/// then letters and digits, each optionally after one hyphen. Reserved
/// words are refused too, which a pattern without look-ahead cannot say.
const TENANT_ID_PATTERN: &str = "^[a-z](-?[a-z0-9])*$";

impl PartialSchema for TenantId {
    fn schema() -> RefOr<Schema> {
        string(
            "A tenant id: 3 to 63 lowercase ASCII letters, digits and hyphens, starting \
             with a letter, not ending with a hyphen, no two hyphens in a row, and not a \
             reserved word (admin, root, public, shared...).",
            "acme-eu",
        )
        .pattern(Some(TENANT_ID_PATTERN))
        .min_length(Some(TENANT_ID_MIN_LEN))
        .max_length(Some(TENANT_ID_MAX_LEN))
        .into()
    }
}

impl ToSchema for TenantId {}

/// Lowercase ASCII letters, digits, `-` and `_`, starting with a letter or digit.
const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]*$";

macro_rules! name_schema {
    ($name:ident, $description:literal, $example:literal) => {
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                string(
                    concat!(
                        $description,
                        " 1 to 63 lowercase ASCII letters, digits, '-' and '_', \
                         starting with a letter or digit."
                    ),
                    $example,
                )
                .pattern(Some(NAME_PATTERN))
                .min_length(Some(1))
                .max_length(Some(NAME_MAX_LEN))
                .into()
            }
        }

        impl ToSchema for $name {}
    };
}

name_schema!(
    PlanName,
    "A commercial plan (the configured ones, e.g. free, standard, premium, regulated).",
    "premium"
);
name_schema!(Region, "A data region (e.g. eu-west, us-east).", "eu-west");
name_schema!(
    ShardId,
    "A shard: one database server or file root in one region.",
    "eu-west-shared-1"
);

impl PartialSchema for FailureLimit {
    fn schema() -> RefOr<Schema> {
        string(
            "How many failed units a roll-out tolerates before it halts: a count, a \
             percentage from 0% to 100%, or \"unlimited\".",
            "10%",
        )
        .pattern(Some("^(unlimited|[0-9]+|(100|[1-9]?[0-9])%)$"))
        .into()
    }
}

impl ToSchema for FailureLimit {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::str::FromStr;

    use super::*;

    /// The schema of `T` as JSON.
    fn json<T: PartialSchema>() -> serde_json::Value {
        serde_json::to_value(T::schema()).unwrap()
    }

    /// The schema's example parses as a `T`: a client copying it sends a
    /// valid value.
    fn example_parses<T: PartialSchema + FromStr>() -> bool {
        let example = json::<T>()["examples"][0].as_str().unwrap().to_owned();
        example.parse::<T>().is_ok()
    }

    #[test]
    fn examples_are_valid_values() {
        assert!(example_parses::<RequestId>());
        assert!(example_parses::<RunId>());
        assert!(example_parses::<RolloutId>());
        assert!(example_parses::<TenantId>());
        assert!(example_parses::<PlanName>());
        assert!(example_parses::<Region>());
        assert!(example_parses::<ShardId>());
        assert!(example_parses::<FailureLimit>());
    }

    #[test]
    fn schemas_carry_the_rules() {
        assert_eq!(json::<RequestId>()["format"], "uuid");
        let tenant = json::<TenantId>();
        assert_eq!(tenant["pattern"], TENANT_ID_PATTERN);
        assert_eq!(tenant["minLength"], TENANT_ID_MIN_LEN);
        assert_eq!(tenant["maxLength"], TENANT_ID_MAX_LEN);
        assert_eq!(json::<Region>()["maxLength"], NAME_MAX_LEN);
        assert_eq!(TenantId::name(), "TenantId");
        assert_eq!(ShardId::name(), "ShardId");
    }
}
