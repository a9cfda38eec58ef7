//! Waiting over the real listener: a long-poll woken by the manager's POST, ended by its wait
//! or by shutdown; fifty at once; the event stream from pending to the end.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::*;

/// The listener on a loopback port, with the HTTP state of `rig`.
struct Served {
    base: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    client: reqwest::Client,
}

async fn serve(rig: &Rig) -> Served {
    countersign::app::install_crypto_provider();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = watch::channel(false);
    let server = HttpServer::new(
        rig.state.clone(),
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 512,
            max_connections_per_client: 256,
            trusted_proxies: vec![],
        },
    );
    let task = tokio::spawn(server.serve(listener, stopped));
    Served {
        base,
        stop,
        task,
        client: reqwest::Client::new(),
    }
}

impl Served {
    fn poll(&self, id: &str, wait: u64) -> tokio::task::JoinHandle<(u16, Value, Duration)> {
        let req = self
            .client
            .get(format!("{}/api/v1/logins/{id}?wait={wait}", self.base))
            .bearer_auth(KEY_VPN);
        tokio::spawn(async move {
            let started = Instant::now();
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let json = r.json().await.unwrap();
            (status, json, started.elapsed())
        })
    }
}

/// Until `n` logins are being waited on.
async fn until_waiting(room: &WaitingRoom, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while room.waited_on() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} waiting",
            room.waited_on()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_long_poll_is_answered_by_the_managers_post_and_otherwise_when_its_wait_runs_out() {
    let rig = rig();
    let s = serve(&rig).await;
    let (id, token) = rig.pending("alice").await;

    // Nobody decides: pending once the wait is over (the test clock is moved past it).
    let short = s.poll(&id, 1);
    until_waiting(&rig.room, 1).await;
    rig.w.clock.advance(Duration::from_secs(1));
    let (status, body, _) = short.await.unwrap();
    assert_eq!((status, body["status"].clone()), (202, json!("pending")));

    // The manager opens the page on a phone and approves while the application waits.
    let waiting = s.poll(&id, 30);
    until_waiting(&rig.room, 1).await;
    let link = format!("{}/approve/{token}", s.base);
    let page = s
        .client
        .get(&link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let posted = Instant::now();
    let r = s
        .client
        .post(&link)
        .header("origin", "https://mfa.example.com")
        .header("sec-fetch-site", "same-origin")
        .header("user-agent", "Phone\u{85}Browser/1.0")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("csrf", &csrf_of(&page))
                .append_pair("decision", "approve")
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Sign-in approved"));
    let (status, body, _) = waiting.await.unwrap();
    assert!(
        posted.elapsed() < Duration::from_secs(5),
        "woken at once, not at the wait's end"
    );
    assert_eq!(
        (status, body["user"]["username"].clone()),
        (200, json!("alice"))
    );
    // The decision names where it came from, over the real socket.
    let by = rig.request(&id).decided_by.unwrap();
    assert_eq!(by.channel, "link");
    assert_eq!(by.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(by.user_agent.as_deref(), Some("PhoneBrowser/1.0"));

    // At shutdown a waiting poll is answered at once and the listener stops.
    let (other, _) = rig.pending("eve").await;
    let cut = s.poll(&other, 60);
    until_waiting(&rig.room, 1).await;
    s.stop.send(true).unwrap();
    let (status, _, took) = cut.await.unwrap();
    assert_eq!(status, 202);
    assert!(took < Duration::from_secs(10), "{took:?}");
    tokio::time::timeout(Duration::from_secs(10), s.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn fifty_long_polls_each_get_their_own_decision() {
    let rig = rig();
    let s = serve(&rig).await;
    let mut logins = Vec::new();
    for i in 0..50 {
        let name = format!("u{i:02}");
        let (id, token) = rig.pending(&name).await;
        logins.push((name, id, token));
    }
    let polls: Vec<_> = logins.iter().map(|(_, id, _)| s.poll(id, 30)).collect();
    until_waiting(&rig.room, 50).await;
    // A shuffled order (a fixed permutation: 7 is coprime with 50); even users approved.
    let started = Instant::now();
    for k in 0..50 {
        let i = (k * 7 + 3) % 50;
        rig.login
            .decide_by_link(&logins[i].2, i % 2 == 0, DecidedBy::default())
            .await
            .unwrap();
    }
    for (i, poll) in polls.into_iter().enumerate() {
        let (status, body, _) = poll.await.unwrap();
        if i % 2 == 0 {
            assert_eq!(status, 200, "{i}: {body}");
            assert_eq!(body["user"]["username"], logins[i].0, "{i}");
        } else {
            assert_eq!(status, 403, "{i}: {body}");
            assert_eq!(body["reason"], "rejected", "{i}");
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(rig.room.waited_on(), 0, "every wait let go of its entry");
}

/// Reads server-sent events off `resp` until one whole event (or the end) is in.
pub(crate) async fn next_event(
    resp: &mut reqwest::Response,
    buf: &mut String,
) -> Option<(String, Value)> {
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let mut event = None;
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = Some(e.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if let Some(event) = event {
                return Some((event, serde_json::from_str(&data).unwrap()));
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("an event in time")
            .unwrap()?;
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn the_event_stream_says_pending_then_the_decision_then_ends() {
    let rig = rig();
    let s = serve(&rig).await;
    let (id, token) = rig.pending("alice").await;
    let mut resp = s
        .client
        .get(format!("{}/api/v1/logins/{id}/events", s.base))
        .bearer_auth(KEY_VPN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let mut buf = String::new();
    let (event, first) = next_event(&mut resp, &mut buf).await.unwrap();
    assert_eq!(
        (event.as_str(), first["status"].as_str()),
        ("status", Some("pending"))
    );
    assert_eq!(first["login"], id.as_str());

    until_waiting(&rig.room, 1).await;
    rig.login
        .decide_by_link(&token, true, DecidedBy::default())
        .await
        .unwrap();
    let (event, second) = next_event(&mut resp, &mut buf).await.unwrap();
    assert_eq!(event, "status");
    assert_eq!(second["status"], "granted");
    assert_eq!(second["user"]["username"], "alice");
    assert!(
        next_event(&mut resp, &mut buf).await.is_none(),
        "the stream ends"
    );

    // A stream on a request whose link expires ends with the expired state.
    let (id, _) = rig.pending("eve").await;
    let mut resp = s
        .client
        .get(format!("{}/api/v1/logins/{id}/events", s.base))
        .bearer_auth(KEY_VPN)
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    assert_eq!(
        next_event(&mut resp, &mut buf).await.unwrap().1["status"],
        "pending"
    );
    until_waiting(&rig.room, 1).await;
    rig.w.clock.advance(Duration::from_secs(3600));
    assert_eq!(rig.login.expire_due().await.unwrap(), 1);
    let (_, last) = next_event(&mut resp, &mut buf).await.unwrap();
    assert_eq!(
        (last["outcome"].as_str(), last["reason"].as_str()),
        (Some("denied"), Some("expired"))
    );
    assert_eq!(last["status"], 403);
    assert!(next_event(&mut resp, &mut buf).await.is_none());

    // A decided login: one event, then the end.
    let mut resp = s
        .client
        .get(format!("{}/api/v1/logins/{id}/events", s.base))
        .bearer_auth(KEY_VPN)
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    assert_eq!(
        next_event(&mut resp, &mut buf).await.unwrap().1["reason"],
        "expired"
    );
    assert!(next_event(&mut resp, &mut buf).await.is_none());
}
