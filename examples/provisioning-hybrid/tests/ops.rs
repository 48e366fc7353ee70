//! The operations files in `ops/` name only metrics the SDK exports, so that
//! a renamed metric cannot leave an alert silently watching nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use provisioning_core::saga::metrics as m;

fn ops(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../ops")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `provisioning_*` metric name in `text`, without the Prometheus
/// histogram suffixes.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("provisioning_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(base.to_owned());
        rest = &tail[end..];
    }
    names
}

fn exported() -> BTreeSet<String> {
    [
        m::REQUESTS_TOTAL,
        m::DURATION_SECONDS,
        m::STEP_DURATION_SECONDS,
        m::RETRIES_TOTAL,
        m::COMPENSATIONS_TOTAL,
        m::IN_FLIGHT,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

#[test]
fn alert_rules_watch_exported_metrics() {
    let rules = ops("prometheus/alerts.yml");
    let used = metric_names(&rules);
    assert!(used.len() >= 5, "{used:?}");
    let exported = exported();
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "alerts use unknown metrics: {unknown:?}"
    );
    for alert in [
        "ProvisioningCompensationFailed",
        "ProvisioningFailureRateHigh",
        "ProvisioningStuck",
    ] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert}");
    }
    // Outcome values the executor emits (provisioning-core/src/saga/executor/driver.rs).
    let emitted = [
        "completed",
        "compensated",
        "compensation_failed",
        "error",
        "ok",
        "failed",
        "transient",
        "permanent",
        "cancelled",
        "timeout",
    ];
    let mut checked = 0;
    for matcher in rules.split("outcome").skip(1) {
        // Only label matchers: outcome="...", =~, != or !~.
        let Some(rest) = ["=\"", "=~\"", "!=\"", "!~\""]
            .iter()
            .find_map(|op| matcher.strip_prefix(op))
        else {
            continue;
        };
        let values = rest.split('"').next().unwrap();
        for value in values.split('|') {
            assert!(emitted.contains(&value), "unknown outcome {value:?}");
            checked += 1;
        }
    }
    assert!(checked >= 5, "{checked}");
    // Never a per-tenant label: unbounded cardinality.
    assert!(!rules.contains("tenant_id="));
}

#[test]
fn the_dashboard_is_valid_json_over_every_exported_metric() {
    let text = ops("grafana/provisioning-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    let mut used = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            used.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    assert_eq!(
        used,
        exported(),
        "every exported metric has a panel, and only those"
    );
}
