//! Loading a shard directory from TOML and JSON, and the errors that name the
//! shard and the field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use provisioning_core::{Error, Isolation};
use provisioning_sharding::{Error as ShardingError, ShardDirectory, ShardStatus};

const TOML: &str = r#"
[[shards]]
id = "eu-west-1"
region = "eu-west"
capacity = 500
connection = "postgres://app:hunter2@eu1.db/tenants"

[[shards]]
id = "eu-west-gold"
region = "eu-west"
pool = "dedicated"
capacity = 40
status = "draining"
connection = "/srv/{region}/{tenant}.db"
tags = { tier = "gold" }
"#;

#[test]
fn toml_directory_loads_every_field() {
    let dir = ShardDirectory::from_toml_str(TOML).unwrap();
    assert_eq!(dir.len(), 2);
    let shared = dir.get(&"eu-west-1".parse().unwrap()).unwrap();
    assert_eq!(shared.pool(), Isolation::Shared);
    assert_eq!(shared.status(), ShardStatus::Active);
    assert_eq!(shared.capacity(), 500);
    let gold = dir.get(&"eu-west-gold".parse().unwrap()).unwrap();
    assert_eq!(gold.pool(), Isolation::Dedicated);
    assert_eq!(gold.status(), ShardStatus::Draining);
    assert_eq!(gold.tag("tier"), Some("gold"));
    assert_eq!(
        gold.connection_for(&"acme".parse().unwrap()).expose(),
        "/srv/eu-west/acme.db"
    );
}

#[test]
fn json_directory_round_trips_through_config() {
    let dir = ShardDirectory::from_toml_str(TOML).unwrap();
    let json = serde_json::to_string(&dir.to_config()).unwrap();
    let again = ShardDirectory::from_json_str(&json).unwrap();
    assert_eq!(again.to_config(), dir.to_config());
    // The config keeps the real password: it is where the password came from.
    assert!(json.contains("hunter2"));
}

#[test]
fn debug_of_the_directory_never_shows_a_password() {
    let dir = ShardDirectory::from_toml_str(TOML).unwrap();
    let shown = format!("{dir:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("postgres://app:***@eu1.db/tenants"),
        "{shown}"
    );
}

#[test]
fn duplicate_id_is_named() {
    let text = r#"
        [[shards]]
        id = "a"
        region = "eu"
        capacity = 1
        connection = "/x"
        [[shards]]
        id = "a"
        region = "us"
        capacity = 1
        connection = "/y"
    "#;
    let err = ShardDirectory::from_toml_str(text).unwrap_err();
    assert!(matches!(err, ShardingError::DuplicateShard { ref shard } if shard == "a"));
    assert_eq!(
        err.to_string(),
        r#"shard "a": invalid id: defined more than once"#
    );
}

#[test]
fn empty_region_and_zero_capacity_name_shard_and_field() {
    let err = ShardDirectory::from_json_str(
        r#"{"shards":[{"id":"eu-1","region":"","capacity":3,"connection":"/x"}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"shard "eu-1": invalid region: must not be empty"#
    );

    let err = ShardDirectory::from_json_str(
        r#"{"shards":[{"id":"eu-1","region":"eu","connection":"/x"}]}"#,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        ShardingError::InvalidShard { ref shard, field: "capacity", ref rule } if shard == "eu-1" && rule == "must be at least 1"
    ));

    let err =
        ShardDirectory::from_json_str(r#"{"shards":[{"id":"eu-1","region":"eu","capacity":1}]}"#)
            .unwrap_err();
    assert!(matches!(
        err,
        ShardingError::InvalidShard {
            field: "connection",
            ..
        }
    ));
}

#[test]
fn syntax_and_unknown_fields_are_parse_errors() {
    let err = ShardDirectory::from_toml_str("[[shards]]\nid = ").unwrap_err();
    assert!(matches!(err, ShardingError::Parse { format: "TOML", .. }));
    let err = ShardDirectory::from_toml_str(
        "[[shards]]\nid = \"a\"\nregion = \"eu\"\ncapacity = 1\nconnection = \"/x\"\ncapacty = 2",
    )
    .unwrap_err();
    assert!(err.to_string().contains("capacty"), "{err}");
}

#[test]
fn converts_into_a_core_invalid_input() {
    let err = ShardDirectory::from_json_str(
        r#"{"shards":[{"id":"eu-1","region":"EU","capacity":1,"connection":"/x"}]}"#,
    )
    .unwrap_err();
    let core: Error = err.into();
    assert!(matches!(
        core,
        Error::InvalidInput {
            field: "region",
            ..
        }
    ));
    assert!(
        core.to_string()
            .starts_with(r#"invalid region: shard "eu-1": may contain only"#),
        "{core}"
    );
}
