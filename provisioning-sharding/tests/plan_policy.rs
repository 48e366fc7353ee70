//! The default placement policy: the plan table, residency rules, overrides and
//! the errors for unknown plans and regions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{block_on, spec};
use provisioning_core::{Error, Isolation, PlacementPolicy, Residency, TenantRequest};
use provisioning_sharding::{
    AttributeOverride, Error as ShardingError, PlacementRules, PlanRule, RegionRule,
    RuleBasedPolicy, ShardDirectory,
};

fn request(plan: &str, region: &str) -> TenantRequest {
    TenantRequest::new(
        "acme".parse().unwrap(),
        plan.parse().unwrap(),
        region.parse().unwrap(),
    )
}

fn builder() -> RuleBasedPolicy {
    RuleBasedPolicy::new(
        PlacementRules::default()
            .with_region("eu-west", RegionRule::strict())
            .with_region("us-east", RegionRule::open())
            .with_override(
                AttributeOverride::when("dedicated", "true").isolation(Isolation::Dedicated),
            )
            .with_override(AttributeOverride::when("residency", "strict").strict()),
    )
    .unwrap()
}

#[test]
fn default_table_maps_plans_to_isolation() {
    let b = builder();
    for (plan, isolation, residency) in [
        ("free", Isolation::Shared, Residency::Flexible),
        ("standard", Isolation::Shared, Residency::Flexible),
        ("premium", Isolation::Dedicated, Residency::Flexible),
        ("regulated", Isolation::Dedicated, Residency::Strict),
    ] {
        let d = block_on(b.decide(&request(plan, "us-east"))).unwrap();
        assert_eq!(
            (d.isolation, d.residency),
            (isolation, residency),
            "plan {plan}"
        );
        assert_eq!(d.plan.as_str(), plan);
        assert_eq!(d.region.as_str(), "us-east");
    }
    let d = b.evaluate(&request("regulated", "us-east")).unwrap();
    assert_eq!(
        d.reason,
        "plan regulated maps to dedicated; plan regulated requires strict residency"
    );
}

#[test]
fn a_strict_region_makes_every_tenant_in_it_strict() {
    let d = builder().evaluate(&request("free", "eu-west")).unwrap();
    assert_eq!(d.residency, Residency::Strict);
    assert_eq!(
        d.reason,
        "plan free maps to shared; region eu-west requires strict residency"
    );
}

#[test]
fn overrides_set_isolation_and_tighten_residency() {
    let b = builder();
    let r = request("free", "us-east")
        .with_attribute("dedicated", "true")
        .unwrap();
    let d = b.evaluate(&r).unwrap();
    assert_eq!(d.isolation, Isolation::Dedicated);
    assert_eq!(
        d.reason,
        "plan free maps to shared; attribute dedicated=true sets dedicated"
    );

    let r = request("free", "us-east")
        .with_attribute("residency", "strict")
        .unwrap();
    assert_eq!(b.evaluate(&r).unwrap().residency, Residency::Strict);

    // Non-matching values change nothing.
    let r = request("free", "us-east")
        .with_attribute("dedicated", "yes")
        .unwrap();
    assert_eq!(b.evaluate(&r).unwrap().isolation, Isolation::Shared);
}

#[test]
fn nothing_relaxes_a_strict_rule() {
    let b = RuleBasedPolicy::new(
        PlacementRules::default()
            .with_region("eu-west", RegionRule::strict())
            .with_override(
                AttributeOverride::when("residency", "flexible").residency(Residency::Flexible),
            ),
    )
    .unwrap();
    let r = request("free", "eu-west")
        .with_attribute("residency", "flexible")
        .unwrap();
    assert_eq!(b.evaluate(&r).unwrap().residency, Residency::Strict);
}

#[test]
fn unknown_plan_and_region_are_typed_errors_listing_the_known_ones() {
    let b = builder();
    let err = block_on(b.decide(&request("gold", "eu-west"))).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { field: "plan", .. }));
    assert_eq!(
        err.to_string(),
        r#"invalid plan: unknown plan "gold" (known: free, premium, regulated, standard)"#
    );
    let err = block_on(b.decide(&request("free", "ap-south"))).unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidInput {
            field: "region",
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        r#"invalid region: unknown region "ap-south" (known: eu-west, us-east)"#
    );
}

#[test]
fn regions_can_come_from_the_directory() {
    let dir = ShardDirectory::from_specs([spec("ap-1", "ap-south", Isolation::Shared, 5)]).unwrap();
    let b = RuleBasedPolicy::new(PlacementRules::default()).unwrap();
    assert!(b.evaluate(&request("free", "ap-south")).is_err());
    let b = b.with_directory_regions(&dir);
    assert_eq!(
        b.evaluate(&request("free", "ap-south")).unwrap().residency,
        Residency::Flexible
    );
}

#[test]
fn policy_loads_from_toml_and_json() {
    let toml = r#"
        default_residency = "strict"
        [plans]
        basic = {}
        gold = { isolation = "dedicated" }
        [regions]
        eu-west = {}
        [[overrides]]
        attribute = "tier"
        value = "platinum"
        isolation = "dedicated"
    "#;
    let b = RuleBasedPolicy::new(PlacementRules::from_toml_str(toml).unwrap()).unwrap();
    let d = b.evaluate(&request("basic", "eu-west")).unwrap();
    assert_eq!(
        (d.isolation, d.residency),
        (Isolation::Shared, Residency::Strict)
    );
    assert_eq!(
        d.reason,
        "plan basic maps to shared; residency is strict by default"
    );
    assert_eq!(
        b.evaluate(&request("gold", "eu-west")).unwrap().isolation,
        Isolation::Dedicated
    );

    let policy = PlacementRules::empty()
        .with_plan("basic", PlanRule::shared())
        .with_plan("gold", PlanRule::dedicated().strict())
        .with_region("eu-west", RegionRule::open());
    let json = serde_json::to_string(&policy).unwrap();
    assert_eq!(PlacementRules::from_json_str(&json).unwrap(), policy);

    let err =
        PlacementRules::from_toml_str("[plans]\nfree = { isolaton = \"shared\" }").unwrap_err();
    assert!(matches!(
        err,
        ShardingError::Parse {
            what: "placement policy",
            format: "TOML",
            ..
        }
    ));
}

#[test]
fn invalid_policies_name_section_and_key() {
    let err = RuleBasedPolicy::new(PlacementRules::default().with_plan("Gold", PlanRule::shared()))
        .unwrap_err();
    assert!(
        matches!(err, ShardingError::InvalidPolicy { section: "plans", ref key, .. } if key == "Gold")
    );
    let err = RuleBasedPolicy::new(PlacementRules::default().with_region("", RegionRule::open()))
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid regions.: must not be empty");
    let err = RuleBasedPolicy::new(
        PlacementRules::default().with_override(AttributeOverride::when("tier", "x")),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid overrides.0: sets neither isolation nor residency"
    );
    let core: Error = err.into();
    assert!(matches!(
        core,
        Error::InvalidInput {
            field: "overrides",
            ..
        }
    ));
}
