//! Where a tenant's data is: what its placement records, else what the shard
//! map says; and the URL [`locate`](provisioning_core::TenantSchemaManager::locate)
//! records.

use std::str::FromStr;

use provisioning_core::{Entity, Error, Isolation, Placement, Result};
use sqlx::postgres::PgConnectOptions;

use super::template::{ADMIN_DATABASE, Layout, SCHEMA_PARAM, ShardConn};
use super::url::{PgServer, UrlParts};
use super::{PostgresDedicatedMode, PostgresSchemaManager};

/// Where one tenant's data is, resolved from its placement.
pub(crate) struct Target {
    /// The server database: server-level statements run on it, and schema
    /// and shared tenants live in it.
    pub(super) server: PgServer,
    pub(super) kind: TargetKind,
}

/// What of the server the tenant has.
pub(crate) enum TargetKind {
    /// A database of its own, by name.
    Database(String),
    /// A schema of its own in the server database, by name.
    Schema(String),
    /// `tenant_id` rows in the server database.
    Shared,
}

impl Target {
    /// Whether the tenant's rows sit beside other tenants' (`tenant_id` rows).
    pub(super) fn shares_rows(&self) -> bool {
        matches!(self.kind, TargetKind::Shared)
    }

    /// The schema a tenant's connection works in: its own, or the
    /// database's default.
    pub(super) fn schema(&self) -> Option<&str> {
        match &self.kind {
            TargetKind::Schema(name) => Some(name),
            TargetKind::Database(_) | TargetKind::Shared => None,
        }
    }

    /// Where the data is, without credentials: the dry run's location, the
    /// key of the locks taken on it.
    pub(super) fn location(&self) -> String {
        let (host, port) = (
            self.server.options.get_host(),
            self.server.options.get_port(),
        );
        match &self.kind {
            TargetKind::Database(name) => format!("{host}:{port}/{name}"),
            TargetKind::Schema(name) => format!("{} schema {name}", self.server.address()),
            TargetKind::Shared => format!("{} (shared)", self.server.address()),
        }
    }

    /// The connect options of the database the tenant's tables are in.
    pub(super) fn data_options(&self) -> PgConnectOptions {
        match &self.kind {
            TargetKind::Database(name) => self.server.options.clone().database(name),
            TargetKind::Schema(_) | TargetKind::Shared => self.server.options.clone(),
        }
    }

    /// Whether both tenants' tables are in one database, reached as one
    /// user: one connection then sees both.
    pub(super) fn same_database(&self, other: &Target) -> bool {
        let (a, b) = (self.data_options(), other.data_options());
        same_server(&a, &b) && a.get_database() == b.get_database()
    }
}

/// Same host, port (or socket) and user: credentials for one serve the other.
fn same_server(a: &PgConnectOptions, b: &PgConnectOptions) -> bool {
    a.get_host() == b.get_host()
        && a.get_port() == b.get_port()
        && a.get_socket() == b.get_socket()
        && a.get_username() == b.get_username()
}

/// A placement resolved against the shard map: the server database's URL
/// and what the tenant has there.
struct Mapped {
    server: UrlParts,
    kind: TargetKind,
}

impl PostgresSchemaManager {
    /// Where `placement`'s data is: what it records when located (see
    /// [`locate`](provisioning_core::TenantSchemaManager::locate)), so an
    /// edited shard map moves no existing tenant; else the shard map.
    pub(super) fn target(&self, placement: &Placement) -> Result<Target> {
        match &placement.database {
            Some(recorded) => self.recorded(placement, recorded),
            None => {
                let mapped = self.mapped(placement)?;
                let server = self.server(&mapped.server)?;
                Ok(Target {
                    server,
                    kind: mapped.kind,
                })
            }
        }
    }

    /// The URL, redacted, of where the shard map puts `placement`'s data:
    /// its own database, the server database with `?schema=`, or the shared
    /// database.
    pub(super) fn located(&self, placement: &Placement) -> Result<String> {
        let Mapped { mut server, kind } = self.mapped(placement)?;
        match &kind {
            TargetKind::Database(name) => server.set_database(Some(name)),
            TargetKind::Schema(name) => server.push_param(SCHEMA_PARAM, name),
            TargetKind::Shared => {}
        }
        Ok(server.redacted())
    }

    fn shard_conn(&self, placement: &Placement) -> Result<&ShardConn> {
        self.shards
            .get(&placement.shard)
            .ok_or_else(|| Error::NotFound {
                kind: Entity::Shard,
                id: placement.shard.to_string(),
            })
    }

    /// `placement` under the shard map.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `connection` for a shared tenant on a
    /// shard whose connection names a database or schema per tenant.
    fn mapped(&self, placement: &Placement) -> Result<Mapped> {
        let shard = self.shard_conn(placement)?;
        let server = shard.server_url(&placement.tenant_id, &placement.region);
        let kind = match (placement.isolation, shard.layout()) {
            (Isolation::Shared, Layout::Fixed) => TargetKind::Shared,
            (Isolation::Shared, Layout::Database | Layout::Schema) => {
                return Err(Error::invalid(
                    "connection",
                    format!(
                        "shard {} holds shared tenant {}, so its connection {} must name one \
                         database, without {{tenant}}",
                        placement.shard,
                        placement.tenant_id,
                        shard.redacted()
                    ),
                ));
            }
            (Isolation::Dedicated, Layout::Database) => {
                TargetKind::Database(self.dedicated_name(&placement.tenant_id)?)
            }
            (Isolation::Dedicated, Layout::Schema) => {
                TargetKind::Schema(self.dedicated_name(&placement.tenant_id)?)
            }
            (Isolation::Dedicated, Layout::Fixed) => {
                let name = self.dedicated_name(&placement.tenant_id)?;
                match self.mode {
                    PostgresDedicatedMode::Database => TargetKind::Database(name),
                    PostgresDedicatedMode::Schema => TargetKind::Schema(name),
                }
            }
        };
        Ok(Mapped { server, kind })
    }

    /// `placement` at its recorded location. The recorded URL has no
    /// password: the connect options (password, TLS) come from a configured
    /// shard on the same server as the same user, the placement's own shard
    /// first.
    fn recorded(&self, placement: &Placement, recorded: &str) -> Result<Target> {
        let shown = provisioning_core::model::redact_secrets(recorded);
        let invalid = |rule: String| Error::invalid("placement.database", rule);
        let not_url = || invalid(format!("{shown} is not a PostgreSQL URL"));
        let mut parts = UrlParts::split(recorded).ok_or_else(not_url)?;
        let schema = parts.take_param(SCHEMA_PARAM).pop();
        let wanted = PgConnectOptions::from_str(&parts.join()).map_err(|_| not_url())?;
        let database = parts.database().map(str::to_owned);

        let mut shards: Vec<&ShardConn> = self.shards.values().collect();
        shards.sort_by_key(|s| (s.shard() != &placement.shard, s.shard().clone()));
        let mut found = None;
        for shard in shards {
            let server = shard.server_url(&placement.tenant_id, &placement.region);
            if same_server(&self.server(&server)?.options, &wanted) {
                found = Some((shard, server));
                break;
            }
        }
        let Some((shard, mut server)) = found else {
            return Err(invalid(format!(
                "no configured shard has credentials for the server of {shown} ({}:{} as {})",
                wanted.get_host(),
                wanted.get_port(),
                wanted.get_username()
            )));
        };
        let kind = match (schema, placement.isolation) {
            (Some(_), Isolation::Shared) => {
                return Err(invalid(format!(
                    "{shown} names a schema, but tenant {} is shared: its rows are in the \
                     database's default schema",
                    placement.tenant_id
                )));
            }
            (Some(name), Isolation::Dedicated) => {
                server.set_database(database.as_deref());
                TargetKind::Schema(name)
            }
            (None, Isolation::Shared) => {
                server.set_database(database.as_deref());
                TargetKind::Shared
            }
            (None, Isolation::Dedicated) => {
                let name = wanted.get_database().map(str::to_owned).ok_or_else(|| {
                    invalid(format!(
                        "{shown} names no database for dedicated tenant {}",
                        placement.tenant_id
                    ))
                })?;
                // Server-level statements run where the shard runs them,
                // never on the tenant's own database (it could not be dropped).
                let admin = match shard.layout() {
                    Layout::Database => Some(ADMIN_DATABASE.to_owned()),
                    Layout::Fixed | Layout::Schema => server.database().map(str::to_owned),
                };
                if admin.as_deref() == Some(name.as_str()) {
                    server.set_database(Some(ADMIN_DATABASE));
                }
                TargetKind::Database(name)
            }
        };
        Ok(Target {
            server: self.server(&server)?,
            kind,
        })
    }

    /// The server database `url` names, with its pool: one per URL, made
    /// on first use and kept.
    fn server(&self, url: &UrlParts) -> Result<PgServer> {
        let key = url.join();
        let mut servers = self
            .servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(server) = servers.get(&key) {
            return Ok(server.clone());
        }
        let options = PgConnectOptions::from_str(&key).map_err(|_| {
            Error::invalid(
                "connection",
                format!("{} is not a PostgreSQL URL", url.redacted()),
            )
        })?;
        let server = PgServer::new(options, &key, self.pool_size);
        servers.insert(key, server.clone());
        Ok(server)
    }
}
