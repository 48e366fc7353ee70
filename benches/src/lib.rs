//! Benchmarks of the provisioning SDK: criterion benches under `benches/` and,
//! later, the comparison binary against a hand-written floor.
