//! A scratch PostgreSQL database per test, on the server of
//! `PROVISIONING_TEST_POSTGRES_URL`, dropped with its guard.
#![allow(dead_code, unreachable_pub)]

#[path = "../../../../provisioning-sqlx/tests/common/pg_url.rs"]
mod pg_url;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// A new empty database on the test server; dropped with the guard.
pub struct Scratch {
    server: String,
    name: String,
    /// The scratch database's URL.
    pub url: String,
}

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        let server = pg_url::url();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("hybrid_{label}_{}_{nanos:08x}", std::process::id());
        exec(&server, &format!("CREATE DATABASE \"{name}\""));
        let base = server.split('?').next().unwrap();
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        Scratch { server, name, url }
    }

    /// Drops the database now (its connections cut), as an outage would.
    pub fn drop_now(&self) {
        exec(
            &self.server,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }

    /// The requests `owner` holds a live lease on, running, in the catalog
    /// (schema `provisioning`) of this database.
    pub fn held_by(&self, owner: &str) -> Vec<String> {
        self.column(&format!(
            "SELECT request_id::text FROM provisioning.requests \
             WHERE lease_owner = '{owner}' AND status = 'running' AND lease_until > now()"
        ))
    }

    /// Waits (at most `within`) until `owner` holds a run; those it holds.
    pub fn until_holding(&self, owner: &str, within: std::time::Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let held = self.held_by(owner);
            if !held.is_empty() {
                return held;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{owner} never claimed a run"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// The first column of the rows `sql` returns, as text.
    pub fn column(&self, sql: &str) -> Vec<String> {
        column_at(&self.url, sql)
    }

    /// The URL of database `name` on the same server.
    pub fn sibling(&self, name: &str) -> String {
        format!("{}/{name}", &self.url[..self.url.rfind('/').unwrap()])
    }

    /// The server's URL, as the tests were given it.
    pub fn server(&self) -> &str {
        &self.server
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        exec(
            &self.server,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

/// Runs `future` on a runtime of its own, on a thread of its own, so that
/// async tests may call the helpers too.
pub fn block_on<T: Send>(future: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(future)
            })
            .join()
            .unwrap()
    })
}

/// The first column of the rows `sql` returns from the database at `url`,
/// as text.
pub fn column_at(url: &str, sql: &str) -> Vec<String> {
    block_on(async {
        let mut conn = PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar::<_, String>(AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut conn)
            .await
            .unwrap()
    })
}

pub fn exec(url: &str, sql: &str) {
    block_on(async {
        let mut conn = PgConnection::connect(url).await.unwrap();
        sqlx::query(AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap();
    });
}
