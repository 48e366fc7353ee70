//! Metric names, as DESIGN.md lists them. Labels are workflow, step and outcome,
//! never a tenant id (unbounded cardinality).

/// Runs finished, by `workflow` and `outcome`.
pub const REQUESTS_TOTAL: &str = "provisioning_requests_total";
/// Run duration in seconds, by `workflow` and `outcome`.
pub const DURATION_SECONDS: &str = "provisioning_duration_seconds";
/// Step attempt duration in seconds, by `workflow`, `step` and `outcome`.
pub const STEP_DURATION_SECONDS: &str = "provisioning_step_duration_seconds";
/// Step attempts retried, by `workflow` and `step`.
pub const RETRIES_TOTAL: &str = "provisioning_retries_total";
/// Compensations, by `workflow`, `step` and `outcome`.
pub const COMPENSATIONS_TOTAL: &str = "provisioning_compensations_total";
/// Runs being executed now, by `workflow`.
pub const IN_FLIGHT: &str = "provisioning_in_flight";
