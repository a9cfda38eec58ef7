//! The HTTP listener under a careless or hostile client, through the real socket: every error
//! is problem+json and not cached, only JSON bodies are taken (no cross-site "simple" POSTs),
//! broken or stalled bodies are cut off, and connections are capped overall and per client.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::fixtures::*;

fn file_mechanism() -> String {
    "[[delivery_mechanism]]\nname = \"File\"\ntype = \"file\"\ndirectory = \"outbox\"\nprint = false\n".into()
}

async fn start(http: &str) -> Countersign {
    let cs = Countersign::start(&Setup {
        extra: format!("{}\n[http]\n{http}", file_mechanism()),
        default_mechanisms: vec!["File"],
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    cs
}

fn addr(cs: &Countersign) -> String {
    cs.base.trim_start_matches("http://").to_owned()
}

fn outbox_files(cs: &Countersign) -> usize {
    std::fs::read_dir(cs.dir.path().join("outbox"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Asserts the answer is a problem+json of `status`, not cacheable.
fn assert_problem(r: &Answer, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.json);
    assert_eq!(
        r.headers["content-type"], "application/problem+json",
        "{what}"
    );
    assert_eq!(r.headers["cache-control"], "no-store", "{what}");
    assert_eq!(r.json["status"], status, "{what}: {}", r.json);
    assert!(r.json["type"].as_str().is_some(), "{what}: {}", r.json);
    assert!(r.json["title"].as_str().is_some(), "{what}: {}", r.json);
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    Countersign::answer(req.send().await.unwrap()).await
}

#[tokio::test]
async fn every_error_is_problem_json_and_never_cached() {
    let cs = start("").await;
    let url = |p: &str| format!("{}{p}", cs.base);
    let deliver = url("/api/v1/otp/deliver");

    assert_problem(&cs.get("/no/such/thing").await, 404, "unknown path");

    let r = send(cs.http.get(&deliver)).await;
    assert_problem(&r, 405, "wrong method");
    assert_eq!(r.headers["allow"], "POST", "405 says what is allowed");
    let r = send(cs.http.put(url("/healthz"))).await;
    assert_problem(&r, 405, "wrong method on a GET endpoint");
    assert!(r.headers["allow"].to_str().unwrap().contains("GET"));

    let json_post = |body: String| {
        cs.http
            .post(&deliver)
            .header("content-type", "application/json")
            .body(body)
    };
    let r = send(json_post("{not json".into())).await;
    assert_problem(&r, 400, "malformed JSON");
    let big = format!(r#"{{"authentication_id":"{}"}}"#, "x".repeat(100 * 1024));
    let r = send(json_post(big)).await;
    assert_problem(&r, 413, "body too large");

    let r = send(cs.http.post(&deliver).body("{}")).await;
    assert_problem(&r, 415, "no content type");

    let r = cs.get("/api/v1/otp/mechanisms").await;
    assert_problem(&r, 400, "missing query parameter");
    // Successful answers are not cached either.
    let r = cs.get("/healthz").await;
    assert_eq!(
        (r.status, &r.headers["cache-control"]),
        (200, &"no-store".parse().unwrap())
    );
    assert_eq!(outbox_files(&cs), 0, "nothing was delivered");
}

#[tokio::test]
async fn only_json_bodies_are_taken_so_browsers_cannot_post_cross_site() {
    let cs = start("").await;
    let deliver = format!("{}/api/v1/otp/deliver", cs.base);
    let body = deliver_alice().to_string();
    let post_as = |ct: &str| {
        cs.http
            .post(&deliver)
            .header("content-type", ct)
            .body(body.clone())
    };
    // The content types a page elsewhere can make a browser send without a CORS preflight,
    // each carrying a valid request: all refused before any use case runs.
    for ct in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
    ] {
        let r = send(post_as(ct)).await;
        assert_problem(&r, 415, ct);
    }
    assert_eq!(outbox_files(&cs), 0, "no code was sent");
    let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
    assert!(audit.is_empty(), "no use case ran: {audit:?}");

    for ct in ["application/json", "application/json; charset=utf-8"] {
        let r = send(post_as(ct)).await;
        assert_eq!(r.status, 200, "{ct}: {}", r.json);
    }
    let r = cs.verify("u:alice", "000000").await;
    assert_eq!(r.status, 401, "verify takes JSON as before");
}

/// Sends `request` on a fresh connection and reads until the server closes it (at most 20 s).
async fn raw_exchange(addr: &str, request: &[u8]) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    s.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server must close the connection");
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

fn assert_raw_problem(answer: &str, status_line: &str) {
    let lower = answer.to_ascii_lowercase();
    assert!(answer.starts_with(status_line), "{answer}");
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(lower.contains("cache-control: no-store"), "{answer}");
}

#[tokio::test]
async fn a_broken_chunked_body_is_a_problem_not_a_hang() {
    let cs = start("").await;
    let head = "POST /api/v1/otp/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    // A chunk size that is not hexadecimal.
    let (answer, _) = raw_exchange(
        &addr(&cs),
        format!("{head}zz\r\n{{}}\r\n0\r\n\r\n").as_bytes(),
    )
    .await;
    assert_raw_problem(&answer, "HTTP/1.1 400");
    assert!(answer.contains("chunked"), "{answer}");
    // A chunk longer than it said.
    let (answer, _) = raw_exchange(
        &addr(&cs),
        format!("{head}2\r\n{{\"authentication_id\":1}}\r\n0\r\n\r\n").as_bytes(),
    )
    .await;
    assert_raw_problem(&answer, "HTTP/1.1 400");
    let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
    assert!(audit.is_empty(), "no use case ran: {audit:?}");
    assert_eq!(cs.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_a_413_problem() {
    // No Content-Length to refuse it early: the limit holds while the chunks stream in.
    let cs = start("").await;
    let head = "POST /api/v1/otp/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunk = "x".repeat(70_000);
    let request = format!("{head}{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len());
    let mut s = TcpStream::connect(addr(&cs)).await.unwrap();
    // The server may answer and close before it has read everything.
    let _ = s.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
    assert_raw_problem(&String::from_utf8_lossy(&answer), "HTTP/1.1 413");
    let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
    assert!(audit.is_empty(), "no use case ran: {audit:?}");
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_after_the_body_read_timeout() {
    let cs = start("body_read_timeout = \"1s\"\n").await;
    let request = "POST /api/v1/otp/deliver HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"authentication_id\":";
    let (answer, took) = raw_exchange(&addr(&cs), request.as_bytes()).await;
    assert_raw_problem(&answer, "HTTP/1.1 408");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "cut after about 1 s, took {took:?}"
    );
    // A trickle (a byte now and then, each within the timeout) does not buy more time: the
    // timeout covers the whole body.
    let mut s = TcpStream::connect(addr(&cs)).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    // Until the server closes (the 408 it sends may be lost to the reset our late bytes cause).
    loop {
        assert!(start.elapsed() < Duration::from_secs(10), "never cut off");
        if s.write_all(b" ").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(outbox_files(&cs), 0);
    assert_eq!(
        cs.deliver(deliver_alice()).await.status,
        200,
        "others are served"
    );
}

/// Opens `n` connections from `source` (a loopback address), each with half a request sent.
async fn half_sent(source: &str, to: &str, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let mut s = socket.connect(to.parse().unwrap()).await.unwrap();
        // Refused connections may already be closed: a failed write is fine.
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
        held.push(s);
    }
    held
}

/// How many of `conns` the server still holds open (the others it has closed), waiting up to
/// a second on each, all at once.
async fn still_open(conns: &mut [TcpStream]) -> usize {
    let checks = conns.iter_mut().map(|s| async move {
        let mut buf = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf))
            .await
            .is_err()
    });
    futures_util::future::join_all(checks)
        .await
        .into_iter()
        .filter(|open| *open)
        .count()
}

#[tokio::test]
async fn half_sent_requests_cannot_pile_up_beyond_the_connection_caps() {
    let cs = start(
        "header_read_timeout = \"60s\"\nmax_connections = 50\nmax_connections_per_client = 20\n",
    )
    .await;
    let to = addr(&cs);

    // A few hundred half-sent requests from one address: only its share is held, the rest are
    // closed at once.
    let mut first = half_sent("127.0.0.1", &to, 300).await;
    assert_eq!(still_open(&mut first).await, 20, "per client cap");
    // Other addresses get their own share until the overall cap.
    let mut second = half_sent("127.0.0.2", &to, 100).await;
    assert_eq!(still_open(&mut second).await, 20, "per client cap");
    let mut third = half_sent("127.0.0.3", &to, 100).await;
    assert_eq!(still_open(&mut third).await, 10, "overall cap");
    let mut fourth = half_sent("127.0.0.4", &to, 5).await;
    assert_eq!(still_open(&mut fourth).await, 0, "full");

    // When they go away, legitimate clients get in again.
    drop((first, second, third, fourth));
    let fresh = reqwest::Client::new();
    let start = Instant::now();
    loop {
        match fresh.get(format!("{}/healthz", cs.base)).send().await {
            Ok(r) if r.status() == 200 => break,
            _ if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("not served again: {other:?}"),
        }
    }
    assert_eq!(cs.deliver(deliver_alice()).await.status, 200);
}

#[tokio::test]
async fn caps_and_timeouts_are_checked_in_the_config() {
    let dir = tempfile::TempDir::new().unwrap();
    let setup = Setup {
        extra: "[http]\nmax_connections = 0\nbody_read_timeout = \"soon\"\n".into(),
        ..Setup::default()
    };
    let path = dir.path().join("countersign.toml");
    std::fs::write(&path, setup.config()).unwrap();
    let errors = countersign::config::Config::load(&path)
        .unwrap_err()
        .to_string();
    assert!(errors.contains("http.max_connections"), "{errors}");
    assert!(errors.contains("must be at least 1"), "{errors}");
    assert!(errors.contains("http.body_read_timeout"), "{errors}");
}

#[tokio::test]
async fn idle_and_silent_connections_do_not_keep_their_place() {
    let cs = start("header_read_timeout = \"1s\"\n").await;
    // Silent from the start.
    let (answer, took) = raw_exchange(&addr(&cs), b"").await;
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Idle after a complete keep-alive request: answered, then closed once idle too long.
    let (answer, took) =
        raw_exchange(&addr(&cs), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "{took:?}"
    );
}
