//! Benchmarks of the provisioning SDK: criterion benches under `benches/`
//! (`saga_overhead`, `shard_resolve`, `fleet_migration`, `fleet_rollout`) and the `compare`
//! binary (`src/bin/compare/`), which measures provisioning throughput end
//! to end against a hand-written floor doing the same database and file work.
//! The reference workload they provision is in `workload/`; `README.md` has
//! the figures and how to rerun them.

pub mod fleet;
