//! The server under abuse: clients that send half a request, a body that
//! claims to be huge, more connections and more runs than the limits, and a
//! shutdown with connections that never finish. Every bound here is set
//! small by flag, and each check allows several times the bound, so that a
//! busy machine does not fail them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Server, assert_error, send};

/// A raw connection to `server` that has sent `bytes`.
fn connect(server: &Server, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

/// Reads until the server closes `stream` (within `within`, else panics);
/// what it sent.
fn closed_within(mut stream: TcpStream, within: Duration) -> String {
    let started = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the server kept the connection open past {within:?} ({e}; {:?} elapsed)",
                started.elapsed()
            ),
        }
        assert!(started.elapsed() < within, "still open after {within:?}");
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The JSON body of a raw HTTP/1.1 answer.
fn body_of(answer: &str) -> Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {answer}"))
}

const HALF_HEADER: &[u8] = b"POST /api/v1/tenants HTTP/1.1\r\nHost: localhost\r\nContent-Ty";

fn half_body() -> Vec<u8> {
    let part = br#"{"tenant_id": "slow", "pl"#;
    let mut request = b"POST /api/v1/tenants HTTP/1.1\r\nHost: localhost\r\n\
        Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        .to_vec();
    request.extend_from_slice(part);
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--header-timeout", "1s", "--body-timeout", "1s"],
        &[],
    );
    let half_headers: Vec<TcpStream> = (0..50).map(|_| connect(&server, HALF_HEADER)).collect();
    let half_bodies: Vec<TcpStream> = (0..20).map(|_| connect(&server, &half_body())).collect();

    // Meanwhile, an ordinary client is served.
    let (status, _) = send(server.req(Method::GET, "/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    server.create("steady", "free", "eu-west").await;

    let cut_off = tokio::task::spawn_blocking(move || {
        for stream in half_headers {
            closed_within(stream, Duration::from_secs(15));
        }
        half_bodies
            .into_iter()
            .map(|stream| closed_within(stream, Duration::from_secs(15)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for answer in cut_off {
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert_eq!(body_of(&answer)["error"]["code"], "request_timeout");
    }
    // Nothing of the half-sent creates was written.
    let (status, _) = send(server.req(Method::GET, "/api/v1/tenants/slow")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_content_length_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // A body timeout far longer than the check allows: the refusal must come
    // from the header, not from waiting for the body.
    let server = Server::start_with(
        dir.path(),
        &["--body-timeout", "10m", "--request-timeout", "20m"],
        &[],
    );
    let request = b"POST /api/v1/tenants HTTP/1.1\r\nHost: localhost\r\n\
        Content-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{";
    let stream = connect(&server, request);
    // Answered and closed (`Connection: close`) without the body.
    let answer =
        tokio::task::spawn_blocking(move || closed_within(stream, Duration::from_secs(10)))
            .await
            .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(body_of(&answer)["error"]["code"], "payload_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_get_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-connections", "2"], &[]);
    let held: Vec<TcpStream> = (0..2).map(|_| connect(&server, b"")).collect();
    // The server takes the two before the third arrives.
    std::thread::sleep(Duration::from_millis(200));
    let third = connect(&server, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let answer = tokio::task::spawn_blocking(move || closed_within(third, Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert_eq!(body_of(&answer)["error"]["code"], "unavailable");

    // Once they go, a new client is served.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = reqwest::Client::new()
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .map(|r| r.status());
        if matches!(status, Ok(StatusCode::OK)) {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_creates_than_the_run_limit_get_503_and_all_succeed_when_retried() {
    let dir = tempfile::tempdir().unwrap();
    // Transient seed failures keep the first runs busy while the rest arrive.
    let server = Server::start_with(
        dir.path(),
        &["--max-runs", "2"],
        &[("PROVISIONING_INJECT_FAILURE", "seed:transient=6")],
    );
    let tenants: Vec<String> = (0..8).map(|i| format!("busy{i}")).collect();
    let create = |tenant: &str| {
        server
            .req(Method::POST, "/api/v1/tenants")
            .json(&json!({ "tenant_id": tenant, "plan": "free", "region": "eu-west" }))
            .send()
    };
    let first = join_all(tenants.iter().map(|t| create(t))).await;
    let mut refused = Vec::new();
    let mut accepted = Vec::new();
    for (tenant, response) in tenants.iter().zip(first) {
        let response = response.unwrap();
        match response.status() {
            StatusCode::ACCEPTED => {
                let receipt: Value = response.json().await.unwrap();
                accepted.push(receipt["request_id"].as_str().unwrap().to_owned());
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()["retry-after"], "1");
                let body: Value = response.json().await.unwrap();
                assert_error(
                    &(StatusCode::SERVICE_UNAVAILABLE, body),
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                );
                // Refused before anything was written.
                let (status, _) =
                    send(server.req(Method::GET, &format!("/api/v1/tenants/{tenant}"))).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{tenant}");
                refused.push(tenant.clone());
            }
            other => panic!("{tenant}: {other}"),
        }
    }
    assert!(!refused.is_empty(), "no create was refused at --max-runs 2");
    assert!(accepted.len() >= 2, "{accepted:?}");

    // Retried after Retry-After, every refused create gets through.
    for tenant in &refused {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let response = create(tenant).await.unwrap();
            if response.status() == StatusCode::ACCEPTED {
                let receipt: Value = response.json().await.unwrap();
                accepted.push(receipt["request_id"].as_str().unwrap().to_owned());
                break;
            }
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(Instant::now() < deadline, "{tenant} never accepted");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    for request_id in &accepted {
        assert_eq!(server.finished(request_id).await["status"], "succeeded");
    }
    for tenant in &tenants {
        assert_eq!(server.tenant(tenant).await["state"], "active", "{tenant}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_longer_than_the_wait_timeout_is_answered_202() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--wait-timeout", "300ms"],
        &[("PROVISIONING_INJECT_FAILURE", "seed:transient=4")],
    );
    let body = json!({ "tenant_id": "patient", "plan": "free", "region": "eu-west" });
    let (status, receipt) = send(
        server
            .req(Method::POST, "/api/v1/tenants?wait=true")
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!(receipt["status"], "running", "{receipt}");
    let request_id = receipt["request_id"].as_str().unwrap();
    assert_eq!(
        receipt["status_url"],
        format!("/api/v1/provisioning/{request_id}/status")
    );
    assert_eq!(server.finished(request_id).await["status"], "succeeded");
}

/// Five connections that sent half a header, each read by the server: a
/// request on a sixth, answered, comes after them in the accept loop, and
/// the pause lets their tasks read what they were sent.
fn stalled(server: &Server) -> Vec<TcpStream> {
    let stalled: Vec<TcpStream> = (0..5).map(|_| connect(server, HALF_HEADER)).collect();
    let mut probe = connect(
        server,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let mut answer = String::new();
    probe.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    std::thread::sleep(Duration::from_millis(500));
    stalled
}

/// Waits (up to 20 s) for `text` in the server's log.
fn wait_for_log(server: &Server, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log_text().contains(text) {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_drains_for_a_bounded_time_despite_stalled_clients() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(
        dir.path(),
        &["--drain-timeout", "1s", "--header-timeout", "10m"],
        &[],
    );
    let _stalled = stalled(&server);
    server.sigterm();
    let exit = server.exited_within(Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}");
    assert!(
        server
            .log_text()
            .contains("connections still open after the drain timeout"),
        "{}",
        server.log_text()
    );
}

#[test]
fn a_second_sigterm_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(
        dir.path(),
        &["--drain-timeout", "10m", "--header-timeout", "10m"],
        &[],
    );
    let _stalled = stalled(&server);
    server.sigterm();
    // The first signal is taken: the server says it is draining.
    wait_for_log(&server, "signal=1");
    server.sigterm();
    let exit = server.exited_within(Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}");
    assert!(
        server.log_text().contains("second signal"),
        "{}",
        server.log_text()
    );
}

#[test]
fn bad_limits_are_refused_naming_the_flag() {
    let bin = env!("CARGO_BIN_EXE_provisioning-hybrid");
    let dir = tempfile::tempdir().unwrap();
    for (args, flag) in [
        (&["--wait-timeout", "40s"][..], "--wait-timeout"),
        (
            &["--wait-timeout", "25s", "--body-timeout", "20s"][..],
            "--wait-timeout",
        ),
        (&["--header-timeout", "0s"][..], "--header-timeout"),
        (&["--max-runs", "0"][..], "--max-runs"),
        (&["--max-connections", "many"][..], "--max-connections"),
        (&["--body-timeout", "ten"][..], "--body-timeout"),
    ] {
        let output = std::process::Command::new(bin)
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("listening on"),
            "{args:?}"
        );
    }
}

/// A tmpfs of `size` mounted at `dir`, unmounted on drop; `None` where this
/// machine cannot mount one (not root, no mount namespace rights).
/// Fills the file system under `dir` until a write fails; the filler.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file
        .write_all(&chunk)
        .and_then(|()| file.sync_all())
        .is_ok()
    {}
    // The last bytes, a page at a time.
    while file
        .write_all(&chunk[..512])
        .and_then(|()| file.sync_all())
        .is_ok()
    {}
    filler
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_interrupts_runs_that_the_server_resumes_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let Some(_tmpfs) = crate::support::Tmpfs::mount(&mnt, "16m") else {
        eprintln!("skipped: this machine cannot mount a tmpfs (needs root)");
        return;
    };
    let data = mnt.join("data");
    // The log stays off the disk the test fills.
    let server = Server::start_logging_to(&data, dir.path(), &["--resume-every", "1s"], &[]);
    server.create("before", "free", "eu-west").await;
    let filler = fill(&mnt);
    // A little room, so that requests get recorded and their runs stop
    // part-way, at their first larger write.
    let size = std::fs::metadata(&filler).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(size - 96 * 1024)
        .unwrap();

    let mut interrupted = Vec::new();
    for i in 0..6 {
        let tenant = format!("full{i}");
        let body = json!({ "tenant_id": tenant, "plan": if i % 2 == 0 { "free" } else { "premium" }, "region": "eu-west" });
        let response = server
            .req(Method::POST, "/api/v1/tenants")
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{tenant}: {e}\n{}", server.log_text()));
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        match status {
            StatusCode::ACCEPTED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer["error"]["code"], "unavailable", "{answer}");
                let message = answer["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains("no space left on device"),
                    "{answer}\n{}",
                    server.log_text()
                );
                assert!(!message.contains(mnt.to_str().unwrap()), "a path: {answer}");
                let request_id = answer["error"]["request_id"].as_str().unwrap();
                assert_eq!(
                    answer["error"]["status_url"],
                    format!("/api/v1/provisioning/{request_id}/status")
                );
                interrupted.push(tenant);
            }
            other => panic!("{tenant}: {other} {answer}"),
        }
    }
    // At least one run was cut short part-way: its tenant is in the
    // catalog, neither Active nor Failed, its request still running.
    let mut stuck = Vec::new();
    for i in 0..6 {
        let tenant = format!("full{i}");
        let (status, record) =
            send(server.req(Method::GET, &format!("/api/v1/tenants/{tenant}"))).await;
        if status == StatusCode::OK && record["state"] != "active" && record["state"] != "failed" {
            stuck.push(tenant);
        }
    }
    assert!(
        !stuck.is_empty(),
        "no run was interrupted part-way; interrupted at submission: {interrupted:?}"
    );
    std::fs::remove_file(&filler).unwrap();

    // Without `recover` and without a restart, every tenant the catalog
    // holds settles: Active, or Failed with its work rolled back.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, tenants) = send(server.req(Method::GET, "/api/v1/tenants/before")).await;
        assert_eq!(status, StatusCode::OK, "{tenants}");
        let mut unsettled = Vec::new();
        for i in 0..6 {
            let (status, record) =
                send(server.req(Method::GET, &format!("/api/v1/tenants/full{i}"))).await;
            if status == StatusCode::NOT_FOUND {
                continue; // refused before anything was written
            }
            let state = record["state"].as_str().unwrap().to_owned();
            if state != "active" && state != "failed" {
                unsettled.push(format!("full{i}: {state}"));
            }
        }
        if unsettled.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still unsettled 30 s after space was freed: {unsettled:?}; interrupted: \
             {interrupted:?}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Settled by the server's own resumer, not by a client or a restart.
    assert!(
        server.log_text().contains("resumed an interrupted request"),
        "{}",
        server.log_text()
    );
    // And the server takes new work again.
    server.create("after", "free", "eu-west").await;
}
