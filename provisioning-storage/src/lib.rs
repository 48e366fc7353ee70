//! A [`StorageInitializer`](provisioning_core::StorageInitializer) on `object_store`
//! for the provisioning SDK.
//!
//! This crate is being built; today it only names its place in the workspace.
