//! The server under test: `provisioning-hybrid serve` as a child process on
//! a free port over a temp data dir, killed when dropped; a client for it; and
//! the CLI, to read what the server wrote from the same data dir.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_provisioning-hybrid");

/// A running `serve`; killed (and reaped) on drop.
pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// Where its stderr (the tracing log) goes.
    pub(crate) log: PathBuf,
    token: Option<String>,
    client: reqwest::Client,
}

impl Server {
    /// `serve` over `dir`, unprotected, no faults injected.
    pub(crate) fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[], &[])
    }

    /// `serve` over `dir` with extra `args` and `env`. A `--token` in `args`
    /// or `PROVISIONING_HYBRID_TOKEN` in `env` makes [`Server::req`] send it.
    pub(crate) fn start_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_logging_to(dir, dir, args, env)
    }

    /// As [`Server::start_with`], with the log in `logs` rather than in the
    /// data dir (which a test may fill up).
    pub(crate) fn start_logging_to(
        dir: &Path,
        logs: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let log = logs.join(format!(
            "serve-{}.log",
            STARTS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir).unwrap();
        std::fs::create_dir_all(logs).unwrap();
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(args)
            .env_remove("PROVISIONING_HYBRID_TOKEN")
            .env_remove("PROVISIONING_INJECT_FAILURE")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the address, then keeps draining stdout so the server never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "serve did not announce its address; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let token = args
            .iter()
            .position(|a| *a == "--token")
            .map(|i| args[i + 1].to_owned())
            .or_else(|| {
                env.iter()
                    .find(|(k, _)| *k == "PROVISIONING_HYBRID_TOKEN")
                    .map(|(_, v)| (*v).to_owned())
            });
        Server {
            child,
            base,
            log,
            token,
            client: reqwest::Client::new(),
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits (at most `within`) for a clean exit.
    pub(crate) fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        self.sigterm();
        self.exited_within(within)
    }

    /// Sends SIGTERM, without waiting (a server that has exited already
    /// is not an error: `exited_within` tells how it ended).
    pub(crate) fn sigterm(&self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// Waits (at most `within`) for the server to exit; its status.
    pub(crate) fn exited_within(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop within {within:?}; its log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's `127.0.0.1:PORT`, for raw sockets.
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        self.base.trim_start_matches("http://").parse().unwrap()
    }

    /// The server's log so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// A request carrying the token, when the server has one.
    pub(crate) fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.anon(method, path);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A request without the token.
    pub(crate) fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// `POST /api/v1/tenants?wait=true`; asserts the run succeeded.
    pub(crate) async fn create(&self, tenant: &str, plan: &str, region: &str) -> Value {
        let body = serde_json::json!({ "tenant_id": tenant, "plan": plan, "region": region });
        let (status, receipt) = send(
            self.req(Method::POST, "/api/v1/tenants?wait=true")
                .json(&body),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{receipt}");
        assert_eq!(receipt["status"], "succeeded", "{receipt}");
        receipt
    }

    /// The tenant record.
    pub(crate) async fn tenant(&self, tenant: &str) -> Value {
        let (status, record) =
            send(self.req(Method::GET, &format!("/api/v1/tenants/{tenant}"))).await;
        assert_eq!(status, StatusCode::OK, "{record}");
        record
    }

    /// Polls the request's status until its run has ended; the receipt.
    pub(crate) async fn finished(&self, request_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let path = format!("/api/v1/provisioning/{request_id}/status");
            let (status, receipt) = send(self.req(Method::GET, &path)).await;
            assert_eq!(status, StatusCode::OK, "{receipt}");
            if receipt["status"] != "running" {
                return receipt;
            }
            assert!(Instant::now() < deadline, "{request_id} still running");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `request`; the status and the body as JSON (`Null` when empty).
pub(crate) async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, body)
}

/// Asserts an error answer: `status`, and the JSON error's `code`.
pub(crate) fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert!(answer.1["error"]["message"].is_string(), "{}", answer.1);
}

/// Runs the CLI with `--json` over `dir`; its JSON output.
pub(crate) fn cli(dir: &Path, args: &[&str]) -> Value {
    let output = Command::new(BIN)
        .args(args)
        .args(["--json", "--data-dir"])
        .arg(dir)
        .env_remove("PROVISIONING_INJECT_FAILURE")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A tenant's event kinds, in order, read by the CLI from the data dir.
pub(crate) fn event_kinds(dir: &Path, tenant: &str) -> Vec<String> {
    cli(dir, &["events", tenant])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}
