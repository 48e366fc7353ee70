//! A `worker` process of the binary on a catalog, for the tests that run
//! several processes: started, signalled, killed, its exit and report read.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_provisioning-hybrid");

/// A `worker` process on the catalog; killed (and reaped) on drop.
pub struct Worker {
    /// The process.
    pub child: Child,
    /// Where its stderr (the tracing log) goes.
    pub log: PathBuf,
}

impl Worker {
    /// `worker --name NAME --concurrency N --lease 2s` on `url`, over `dir`.
    pub fn start(dir: &Path, url: &str, name: &str, concurrency: &str) -> Worker {
        Self::start_with(dir, url, name, concurrency, &[])
    }

    /// As [`start`](Self::start), with `env` set for the process.
    pub fn start_with(
        dir: &Path,
        url: &str,
        name: &str,
        concurrency: &str,
        env: &[(&str, &str)],
    ) -> Worker {
        let log = dir.join(format!("worker-{name}.log"));
        let child = Command::new(BIN)
            .envs(env.iter().copied())
            .args(["worker", "--name", name, "--concurrency", concurrency])
            .args(["--lease", "2s", "--catalog", url, "--data-dir"])
            .arg(dir)
            .env("RUST_LOG", "info")
            .env_remove("PROVISIONING_INJECT_FAILURE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Worker { child, log }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (at most a minute) for the process to exit; its status and stdout.
    pub fn exited(&mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not stop; its log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut out).unwrap();
        (status, out)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
