//! SQLite and PostgreSQL stores, saga journals and tenant schema managers for the
//! provisioning SDK.
//!
//! This crate is being built; today it only names its place in the workspace.
