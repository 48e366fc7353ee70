//! [`upgrade`](provisioning_core::TenantSchemaManager::upgrade) on
//! PostgreSQL: the tenant schemas of one server database brought to the
//! release together, in one transaction.
//!
//! A fleet roll-out's cost per schema is mostly per transaction: its round
//! trips, its commit's flush. Schemas of one database are upgraded as a
//! batch in four round trips in all: `BEGIN`; every schema's advisory lock
//! and both ledgers read; every schema's pending migrations and ledger rows;
//! `COMMIT` (at most [`upgrade_batch`](super::PostgresSchemaManagerBuilder::upgrade_batch)
//! schemas a transaction). Anything unusual in the batch (a ledger missing, a migration
//! failing, a migration hook, a `no_tx` migration) rolls the batch back and
//! upgrades its schemas one at a time instead, which gives each its own
//! outcome exactly as [`migrate`](provisioning_core::TenantSchemaManager::migrate)
//! and [`seed`](provisioning_core::TenantSchemaManager::seed) do.

use futures_util::TryStreamExt;
use provisioning_core::traits::{seed_each, upgrade_one};
use provisioning_core::{Isolation, MigrationInfo, Placement, Result, TenantId, Upgrade};
use sqlx::migrate::Migration;
use sqlx::{AssertSqlSafe, Either, Executor, Row};

use super::conn::{self, COMPONENT, applied_with_rows, ledger_of, xact_lock_sql};
use super::{PostgresSchemaManager, Target, TargetKind};
use crate::schema::migrate::{self, LEDGER_TABLE};
use crate::schema::seed::{LedgerRow, pending_seeds};
use crate::schema::sql::{quote_ident, quote_literal};

/// A schema of a batch, with what its ledgers said.
struct Member<'a> {
    /// Its position in the caller's list.
    index: usize,
    placement: &'a Placement,
    tenants: &'a [TenantId],
    schema: String,
    location: String,
}

/// What a batch did to one member, before its seeds.
enum Planned<'m> {
    /// Its pending migrations (applied in the batch), and whether one of
    /// its tenants lacks a seed.
    Upgrade(Vec<&'m Migration>, bool),
    /// Its ledger refused the release (dirty, or a changed migration).
    Refused(provisioning_core::Error),
}

impl PostgresSchemaManager {
    /// Upgrades `databases`: dedicated schemas of one server database in
    /// batches, everything else one at a time.
    pub(super) async fn upgrade_databases(
        &self,
        databases: &[(Placement, Vec<TenantId>)],
    ) -> Vec<Result<Upgrade>> {
        let mut outcomes: Vec<Option<Result<Upgrade>>> = std::iter::repeat_with(|| None)
            .take(databases.len())
            .collect();
        // Batches of schemas, each on one server database.
        let mut batches: Vec<(Target, Vec<Member<'_>>)> = Vec::new();
        let batchable = self.schemas.hook.is_none()
            && self
                .schema(Isolation::Dedicated)
                .is_ok_and(|s| migrate::up_migrations(s.migrator()).all(|m| !m.no_tx));
        for (index, (placement, tenants)) in databases.iter().enumerate() {
            if !batchable || placement.isolation != Isolation::Dedicated {
                continue;
            }
            let Ok(target) = self.target(placement) else {
                continue;
            };
            let TargetKind::Schema(schema) = &target.kind else {
                continue;
            };
            let member = Member {
                index,
                placement,
                tenants,
                schema: schema.clone(),
                location: target.location(),
            };
            match batches.iter_mut().find(|(t, _)| t.same_database(&target)) {
                Some((_, members)) => members.push(member),
                None => batches.push((target, vec![member])),
            }
        }
        for (target, members) in batches {
            for chunk in members.chunks(self.upgrade_batch) {
                if chunk.len() < 2 {
                    continue;
                }
                if let Some(done) = self.upgrade_together(&target, chunk).await {
                    for (member, outcome) in chunk.iter().zip(done) {
                        outcomes[member.index] = Some(outcome);
                    }
                }
            }
        }
        let mut result = Vec::with_capacity(databases.len());
        for ((placement, tenants), outcome) in databases.iter().zip(outcomes) {
            result.push(match outcome {
                Some(outcome) => outcome,
                None => upgrade_one(self, placement, tenants).await,
            });
        }
        result
    }

    /// One batch in one transaction; `None` when it was rolled back and its
    /// schemas are to be upgraded one at a time.
    async fn upgrade_together(
        &self,
        target: &Target,
        members: &[Member<'_>],
    ) -> Option<Vec<Result<Upgrade>>> {
        let schema = self.schema(Isolation::Dedicated).ok()?;
        // In-process turns first, in one order for every batch: no two
        // batches wait on each other.
        let mut locations: Vec<&str> = members.iter().map(|m| m.location.as_str()).collect();
        locations.sort_unstable();
        locations.dedup();
        if locations.len() != members.len() {
            return None;
        }
        let mut guards = Vec::with_capacity(locations.len());
        for location in &locations {
            guards.push(self.locks.lock(*location).await);
        }
        let mut conn = match self.server_conn(target).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "no connection for a batch; one schema at a time");
                return None;
            }
        };
        let what = format!("upgrading {} schemas", members.len());
        let mut tx = conn::begin(&mut conn, None, &what).await.ok()?;

        // Every lock, then both ledgers of each member: one result set per
        // statement, in order.
        let mut read = String::new();
        for location in &locations {
            read.push_str(&xact_lock_sql(location));
            read.push_str(";\n");
        }
        for member in members {
            let s = quote_ident(&member.schema);
            let tenants = if member.tenants.is_empty() {
                "NULL".to_owned()
            } else {
                member
                    .tenants
                    .iter()
                    .map(|t| quote_literal(t.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            read.push_str(&format!(
                "SELECT version, checksum, success FROM {s}.{LEDGER_TABLE} ORDER BY version;\n\
                 SELECT tenant_id::text, name::text, version, checksum::text \
                 FROM {s}._tenant_seeds WHERE tenant_id IN ({tenants});\n"
            ));
        }
        let sets = match result_sets(&mut tx, read).await {
            Ok(sets) if sets.len() == locations.len() + 2 * members.len() => sets,
            Ok(_) => return None,
            Err(e) => {
                // A schema without ledgers (adopted, or never seeded), or
                // gone: one at a time finds out which, and why.
                tracing::debug!(error = %e, "a batch's ledgers could not be read; one schema at a time");
                return None;
            }
        };
        let mut planned = Vec::with_capacity(members.len());
        for (member, ledgers) in members.iter().zip(sets[locations.len()..].chunks(2)) {
            let ledger = ledger_of(&ledgers[0]).ok()?;
            let seeds = seed_ledger(&ledgers[1]).ok()?;
            planned.push(
                match migrate::pending_in(&ledger, schema.migrator(), COMPONENT, &member.location) {
                    Err(e) => Planned::Refused(e),
                    Ok(pending) => {
                        let mut unseeded = false;
                        for tenant in member.tenants {
                            let theirs: Vec<LedgerRow> = seeds
                                .iter()
                                .filter(|(t, _)| t == tenant.as_str())
                                .map(|(_, row)| row.clone())
                                .collect();
                            // A tampered seed is reported by `seed` below.
                            unseeded |= pending_seeds(schema.seeds(), &theirs, tenant)
                                .map_or(true, |p| !p.is_empty());
                        }
                        Planned::Upgrade(pending, unseeded)
                    }
                },
            );
        }

        let mut apply = String::new();
        for (member, plan) in members.iter().zip(&planned) {
            if let Planned::Upgrade(pending, _) = plan
                && !pending.is_empty()
            {
                apply.push_str(&format!(
                    "SET LOCAL search_path TO {};\n{}",
                    quote_ident(&member.schema),
                    applied_with_rows(LEDGER_TABLE, pending)
                ));
            }
        }
        if !apply.is_empty()
            && let Err(e) = tx.execute(sqlx::raw_sql(AssertSqlSafe(apply))).await
        {
            tracing::debug!(error = %e, "a batch's migrations failed together; one schema at a time");
            return None;
        }
        if let Err(e) = tx.commit().await {
            // Rolled back, as a rule. A commit whose reply was lost may have
            // committed: one at a time then finds the schemas up to date and
            // reports nothing applied, which their ledgers contradict.
            tracing::warn!(error = %e, "a batch's commit failed; one schema at a time");
            return None;
        }
        drop(conn);
        drop(guards);

        let mut outcomes = Vec::with_capacity(members.len());
        for (member, plan) in members.iter().zip(planned) {
            outcomes.push(match plan {
                Planned::Refused(e) => Err(e),
                Planned::Upgrade(pending, unseeded) => {
                    let applied = pending
                        .iter()
                        .map(|m| MigrationInfo::new(m.version, m.description.to_string()))
                        .collect();
                    self.seed_member(member, applied, unseeded).await
                }
            });
        }
        Some(outcomes)
    }

    /// A member's outcome: `applied`, and its tenants' seeds when one lacks
    /// one (through [`seed`](provisioning_core::TenantSchemaManager::seed), as ever).
    async fn seed_member(
        &self,
        member: &Member<'_>,
        applied: Vec<MigrationInfo>,
        unseeded: bool,
    ) -> Result<Upgrade> {
        if !unseeded {
            return Ok(Upgrade::new(applied, Vec::new()));
        }
        let seeded = seed_each(self, member.placement, member.tenants).await?;
        Ok(Upgrade::new(applied, seeded))
    }
}

/// The result sets of `sql`'s statements, in order: one per statement, its
/// rows (none for a statement returning none).
async fn result_sets(
    conn: &mut sqlx::PgConnection,
    sql: String,
) -> std::result::Result<Vec<Vec<sqlx::postgres::PgRow>>, sqlx::Error> {
    let mut sets = Vec::new();
    let mut rows = Vec::new();
    let mut stream = conn.fetch_many(sqlx::raw_sql(AssertSqlSafe(sql)));
    while let Some(item) = stream.try_next().await? {
        match item {
            Either::Left(_) => sets.push(std::mem::take(&mut rows)),
            Either::Right(row) => rows.push(row),
        }
    }
    Ok(sets)
}

/// The seed ledger's rows, each with its tenant.
fn seed_ledger(
    rows: &[sqlx::postgres::PgRow],
) -> std::result::Result<Vec<(String, LedgerRow)>, sqlx::Error> {
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get(0)?,
                (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?),
            ))
        })
        .collect()
}
