//! Region-aware shard directory and [`ShardResolver`](provisioning_core::ShardResolver)
//! implementations for the provisioning SDK.
//!
//! This crate is being built; today it only names its place in the workspace.
