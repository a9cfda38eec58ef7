//! Nothing is lost when countersign is killed: the real binary (`countersign serve` on free
//! ports) is ended with SIGKILL (`kill -9`, no shutdown of any kind) and started again on the
//! same folder. A Manager Information message queued while the mail server was down goes out
//! exactly once after the restart; a login pending approval is approved through the manager's
//! page on the restarted server, and its long-poll there says granted.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::approval_ldap::{API_KEY, approval_config, link_token};
use crate::fixtures::harness::{Setup, run_countersign};
use crate::fixtures::smtp::{SmtpOptions, SmtpServer, closed_port};
use crate::http_approval::csrf_of;

/// A folder with the approval configuration of approval_ldap.rs (dora needs her sponsor's
/// approval, ivan's sponsor is informed), HTTP on `http_port`, SMTP expected on `smtp_port`,
/// and the two users added with the command line.
fn folder(http_port: u16, smtp_port: u16) -> tempfile::TempDir {
    let dir = tempfile::TempDir::new().unwrap();
    let key_file = dir.path().join("vpn.key");
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    let (extra, _) = approval_config(&key_file, "30s");
    // Retries far enough apart that the kill below never lands while a try holds its lease.
    let extra = extra.replace(
        "first_retry = \"1s\"\nmax_retry_delay = \"1s\"",
        "first_retry = \"3s\"\nmax_retry_delay = \"3s\"",
    );
    let config = Setup {
        smtp: Some(Setup::smtp_plain(smtp_port)),
        extra,
        ..Setup::default()
    }
    .config()
    .replacen(
        "[listen]\n",
        &format!("[listen]\nhttp = \"127.0.0.1:{http_port}\"\n"),
        1,
    );
    let path = dir.path().join("countersign.toml");
    std::fs::write(&path, config).unwrap();
    for (name, kind) in [("dora", "contractor"), ("ivan", "staff")] {
        let (ok, out, err) = run_countersign(
            &path,
            &[
                "user",
                "add",
                name,
                "--display-name",
                &format!("{name} (test)"),
                "--mail",
                &format!("{name}@example.com"),
                "--attr",
                &format!("employeeType={kind}"),
                "--sponsor-name",
                "Bob Sponsor",
                "--sponsor-email",
                "bob@example.com",
            ],
            &format!("{name}-password\n"),
        );
        assert!(ok, "{out}{err}");
    }
    dir
}

/// `countersign serve` as a child process, killed (SIGKILL) when dropped.
struct Serving {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Serving {
    async fn start(dir: &Path, http_port: u16) -> Serving {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("serve.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_countersign"))
            .arg("--config")
            .arg(dir.join("countersign.toml"))
            .arg("serve")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        countersign::app::install_crypto_provider();
        // No pooled connections: the server at the other end of one may have been killed.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let mut s = Serving {
            child,
            base: format!("http://127.0.0.1:{http_port}"),
            http,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = s.http.get(format!("{}/healthz", s.base)).send().await
                && r.status() == 200
            {
                return s;
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("countersign serve exited with {status}: {}", log_of(dir));
            }
            assert!(Instant::now() < deadline, "not serving: {}", log_of(dir));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: the process ends on the spot, nothing flushed or shut down.
    fn kill9(mut self) {
        // `Child::kill` is SIGKILL on Unix.
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status}");
    }

    async fn login(&self, name: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/logins", self.base))
            .bearer_auth(API_KEY)
            .json(&json!({"authentication_id": format!("u:{name}"), "password": format!("{name}-password")}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
}

/// `countersign outbox list --json`, one object per message.
async fn outbox(dir: &Path) -> Vec<Value> {
    let config = dir.join("countersign.toml");
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        run_countersign(&config, &["outbox", "list", "--json"], "")
    })
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_queued_before_a_kill_goes_out_exactly_once_after_the_restart() {
    let (http_port, smtp_port) = (closed_port(), closed_port());
    let dir = tokio::task::spawn_blocking(move || folder(http_port, smtp_port))
        .await
        .unwrap();
    let server = Serving::start(dir.path(), http_port).await;

    // SMTP is down (nothing listens on its port): ivan's login goes through at once.
    let started = Instant::now();
    let (status, body) = server.login("ivan").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "granted");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The worker tried once and failed; the message waits in the outbox.
    let deadline = Instant::now() + Duration::from_secs(15);
    let queued = loop {
        let list = outbox(dir.path()).await;
        assert_eq!(list.len(), 1, "{list:?}");
        if list[0]["attempts"].as_u64() >= Some(1) {
            break list[0].clone();
        }
        assert!(Instant::now() < deadline, "never tried: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(queued["state"], "queued", "{queued}");
    assert_eq!(queued["recipient"], "bob@example.com");
    assert!(queued["last_error"].is_string(), "{queued}");

    server.kill9();

    // The mail server comes up where it was expected; countersign starts again.
    let smtp = SmtpServer::start(SmtpOptions {
        port: Some(smtp_port),
        ..Default::default()
    });
    let again = Serving::start(dir.path(), http_port).await;
    let mail = tokio::task::block_in_place(|| smtp.wait_for(1)).remove(0);
    assert_eq!(mail.rcpt_tos, vec!["bob@example.com"]);
    assert!(
        crate::approval_ldap::text_of(&mail).contains("ivan (test) (ivan) signed in to vpn"),
        "{}",
        mail.body()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let sent = loop {
        let list = outbox(dir.path()).await;
        if list[0]["state"] == "sent" {
            break list;
        }
        assert!(Instant::now() < deadline, "never marked sent: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["id"], queued["id"]);
    assert_eq!(sent[0]["attempts"], 2, "one failed try, one that went out");
    assert!(sent[0]["sent_at"].is_string());
    // Well past the retry schedule: still the one message.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(smtp.messages().len(), 1, "exactly once");
    drop(again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_pending_at_a_kill_is_approved_through_the_page_after_the_restart() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let http_port = closed_port();
    let smtp_port = smtp.port;
    let dir = tokio::task::spawn_blocking(move || folder(http_port, smtp_port))
        .await
        .unwrap();
    let server = Serving::start(dir.path(), http_port).await;
    let (status, body) = server.login("dora").await;
    assert_eq!(status, 202, "{body}");
    let login = body["login"].as_str().unwrap().to_owned();
    let mail = tokio::task::block_in_place(|| smtp.wait_for(1)).remove(0);
    assert_eq!(mail.rcpt_tos, vec!["bob@example.com"]);
    let token = link_token(&mail);

    server.kill9();
    let again = Serving::start(dir.path(), http_port).await;

    // The application asks again on the restarted server and waits.
    let poll = {
        let req = again
            .http
            .get(format!("{}/api/v1/logins/{login}?wait=30", again.base))
            .bearer_auth(API_KEY);
        tokio::spawn(async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "still pending after the restart");

    // The manager opens the link and approves.
    let link = format!("{}/approve/{token}", again.base);
    let page = again.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("(dora)"), "{page}");
    let approved = Instant::now();
    let r = again
        .http
        .post(&link)
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}&decision=approve", csrf_of(&page)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Sign-in approved"));
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the long-poll answers")
        .unwrap();
    assert!(
        approved.elapsed() < Duration::from_secs(5),
        "{:?}",
        approved.elapsed()
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "granted", "user": {
            "dn": "uid=dora,ou=people,dc=example,dc=com", "username": "dora",
            "display_name": "dora (test)"}})
    );
    assert_eq!(
        smtp.messages().len(),
        1,
        "no second message after the restart"
    );
}
