//! Running the built binary and reading what it wrote, for the CLI tests.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;

/// Runs `provisioning-hybrid ARGS --data-dir DIR`: success, stdout, stderr.
pub fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_provisioning-hybrid"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Starts `provisioning-hybrid ARGS --data-dir DIR` in the background, its
/// output discarded: a process for a test to kill mid-run.
pub fn spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_provisioning-hybrid"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Every file under `dir` (none when it does not exist), as strings.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

/// Runs with `--json`, expecting success, and parses the output.
pub fn json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, stdout, stderr) = run(dir, &all);
    assert!(ok, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// Runs with `--json`, expecting failure; returns stderr.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, stdout, stderr) = run(dir, &all);
    assert!(!ok, "{args:?} succeeded: {stdout}");
    stderr
}

/// The rows `sql` returns from the SQLite file `db`, each column as text
/// (`NULL` for null).
pub fn rows(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::{Connection, Row, ValueRef};
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                (0..row.columns().len())
                    .map(|i| {
                        if row.try_get_raw(i).unwrap().is_null() {
                            "NULL".to_owned()
                        } else {
                            row.try_get::<String, _>(i)
                                .or_else(|_| row.try_get::<i64, _>(i).map(|n| n.to_string()))
                                .unwrap()
                        }
                    })
                    .collect()
            })
            .collect()
    })
}

/// A tmpfs mounted for a test, unmounted when dropped: a file system that can
/// fill up or turn read-only. Mounting needs root; `mount` is `None` without it.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`16m`) on `dir`, made if missing.
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Tmpfs(dir.to_owned()))
    }

    /// Remounts it read-only: every later write fails with `EROFS`.
    pub fn make_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "remounting {} read-only",
            self.0.display()
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
