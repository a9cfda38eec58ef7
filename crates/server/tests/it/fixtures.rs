//! Real parts for the tests, each on a free port and stopped on drop: an SMTP server process
//! (aiosmtpd), an HTTP SMS gateway, a test CA, and countersign itself on loopback with an
//! injected clock.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign::app::App;
use countersign::config::Config;
use countersign::passwords;
use countersign_core::Secret;
use countersign_core::model::{AccountState, Dn, Sponsor, Timestamp, User};
use countersign_core::ports::{Clock, LocalUser, Store};
use tempfile::TempDir;

// ------------------------------------------------------------------------------------------
// Test CA and a server certificate for 127.0.0.1, made with the openssl command.

pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn tls_files(dir: &Path) -> TlsFiles {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=countersign test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

// ------------------------------------------------------------------------------------------
// SMTP: aiosmtpd in its own process.

#[derive(Default)]
pub struct SmtpOptions<'a> {
    pub starttls: Option<&'a TlsFiles>,
    pub implicit_tls: Option<&'a TlsFiles>,
    pub auth: Option<(&'a str, &'a str)>,
}

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: TempDir,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub data: String,
    pub tls: bool,
    pub authenticated: bool,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self
            .data
            .split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .replace("\r\n", "\n");
        head.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        })
    }

    pub fn body(&self) -> String {
        let normalized = self.data.replace("\r\n", "\n");
        normalized
            .split_once("\n\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }

    /// The first run of `n` digits in the body.
    pub fn otp(&self, n: usize) -> String {
        find_digits(&self.body(), n).expect("the message holds an OTP")
    }
}

pub fn find_digits(text: &str, n: usize) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == n {
                return Some(chars[start..i].iter().collect());
            }
        } else {
            i += 1;
        }
    }
    None
}

impl SmtpServer {
    pub fn start(opts: SmtpOptions<'_>) -> SmtpServer {
        let dir = TempDir::new().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/smtp_server.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script).arg("--dir").arg(dir.path());
        if let Some(t) = opts.starttls {
            cmd.arg("--starttls").arg(&t.cert).arg(&t.key);
        }
        if let Some(t) = opts.implicit_tls {
            cmd.arg("--tls").arg(&t.cert).arg(&t.key);
        }
        if let Some((u, p)) = opts.auth {
            cmd.arg("--auth").arg(format!("{u}:{p}"));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/test installs it)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the SMTP server starts");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("SMTP server said {line:?}"));
        SmtpServer { child, port, dir }
    }

    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap())
            .collect()
    }

    /// Waits until at least `n` messages arrived.
    pub fn wait_for(&self, n: usize) -> Vec<Mail> {
        for _ in 0..200 {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("expected {n} messages, got {}", self.messages().len());
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on which nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ------------------------------------------------------------------------------------------
// SMS gateway: a real HTTP server in the test process that records each request.

#[derive(Debug, Clone)]
pub struct GatewayRequest {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl GatewayRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct SmsGateway {
    pub url: String,
    pub requests: Arc<Mutex<Vec<GatewayRequest>>>,
    pub status: Arc<AtomicU16>,
    pub delay_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl SmsGateway {
    pub async fn start() -> SmsGateway {
        use axum::extract::Request;
        let requests: Arc<Mutex<Vec<GatewayRequest>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (r, s, d) = (requests.clone(), status.clone(), delay_ms.clone());
        let app = axum::Router::new().fallback(move |req: Request| {
            let (r, s, d) = (r.clone(), s.clone(), d.clone());
            async move {
                let method = req.method().to_string();
                let uri = req.uri().to_string();
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                    .await
                    .unwrap();
                r.lock().unwrap().push(GatewayRequest {
                    method,
                    uri,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                tokio::time::sleep(Duration::from_millis(d.load(Ordering::SeqCst))).await;
                let code = axum::http::StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
                (code, "{\"queued\":true}")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SmsGateway {
            url: format!("http://{addr}/send"),
            requests,
            status,
            delay_ms,
            task,
        }
    }

    pub fn requests(&self) -> Vec<GatewayRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for SmsGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ------------------------------------------------------------------------------------------
// countersign itself.

pub struct TestClock(pub AtomicI64);

impl TestClock {
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// Options for the generated test configuration.
#[derive(Clone)]
pub struct Setup {
    /// `[[mail_profile]]` body lines, or None for no Email mechanism.
    pub smtp: Option<String>,
    /// SMS gateway URL, or None for no SMS mechanism.
    pub sms_url: Option<String>,
    /// Empty: Email then SMS, those configured.
    pub default_mechanisms: Vec<&'static str>,
    pub extra: String,
    pub rate_limits: String,
    /// Serve LDAP (plain, with StartTLS when `tls` is set) on a free port.
    pub ldap: bool,
    /// Certificate for StartTLS and an LDAPS listener on a free port.
    pub ldap_tls: Option<(PathBuf, PathBuf)>,
    /// More `[ldap]` keys.
    pub ldap_extra: String,
    /// `[deliver_otp] identity_mapper`; empty: the local directory.
    pub identity_mapper: Vec<String>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            smtp: None,
            sms_url: None,
            default_mechanisms: vec![],
            extra: String::new(),
            ldap: false,
            ldap_tls: None,
            ldap_extra: String::new(),
            identity_mapper: Vec::new(),
            rate_limits: "deliver_per_user = \"off\"\ndeliver_per_client = \"off\"\nverify_per_user = \"off\"\nverify_per_client = \"off\"\n".into(),
        }
    }
}

impl Setup {
    pub fn smtp_plain(port: u16) -> String {
        format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"3s\"\n")
    }

    pub fn config(&self) -> String {
        let mut c = String::from("[store]\nurl = \"sqlite://state/countersign.db\"\n\n");
        // HTTP is bound by the fixture itself; LDAP ports come from the config (0 = free).
        c += "[listen]\n";
        if self.ldap {
            c += "ldap = \"127.0.0.1:0\"\n";
        }
        if self.ldap_tls.is_some() {
            c += "ldaps = \"127.0.0.1:0\"\n";
        }
        c += "\n[ldap]\n";
        if let Some((cert, key)) = &self.ldap_tls {
            c += &format!(
                "tls_certificate_file = \"{}\"\ntls_key_file = \"{}\"\n",
                cert.display(),
                key.display()
            );
        }
        c += &self.ldap_extra;
        c += "\n";
        c += "[[directory]]\nname = \"local\"\ntype = \"local\"\nbase_dn = \"ou=people,dc=example,dc=com\"\n\n";
        c += "[password_generator]\ncharacter_sets = { numeric = \"0123456789\" }\nformat = \"numeric:6\"\n\n";
        if let Some(smtp) = &self.smtp {
            c += &format!(
                "[[mail_profile]]\nname = \"smtp\"\nfrom = \"MFA <mfa@example.com>\"\n{smtp}\n"
            );
            c += "[[delivery_mechanism]]\nname = \"Email\"\ntype = \"email\"\nmail_profile = \"smtp\"\nsubject = \"Your sign-in code\"\n\n";
        }
        if let Some(url) = &self.sms_url {
            c += &format!(
                "[[sms_profile]]\nname = \"gateway\"\nurl = \"{url}\"\nheaders = {{ X-Client = \"countersign\" }}\nbody = {{ to = \"{{to}}\", text = \"{{message}}\" }}\ntimeout = \"2s\"\n\n"
            );
            c += "[[delivery_mechanism]]\nname = \"SMS\"\ntype = \"sms\"\nsms_profile = \"gateway\"\n\n";
        }
        c += &self.extra;
        let mappers = if self.identity_mapper.is_empty() {
            vec!["local".to_owned()]
        } else {
            self.identity_mapper.clone()
        };
        c += &format!(
            "\n[deliver_otp]\nidentity_mapper = [{}]\n",
            mappers
                .iter()
                .map(|m| format!("\"{m}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut defaults = self.default_mechanisms.clone();
        if defaults.is_empty() {
            defaults.extend(self.smtp.as_ref().map(|_| "Email"));
            defaults.extend(self.sms_url.as_ref().map(|_| "SMS"));
        }
        c += &format!(
            "default_mechanisms = [{}]\notp_validity = \"5m\"\nmax_failed_attempts = 3\n\n",
            defaults
                .iter()
                .map(|m| format!("\"{m}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        c += &format!("[rate_limits]\n{}", self.rate_limits);
        c
    }
}

pub const T0: i64 = 1_800_000_000_000;

pub struct Countersign {
    pub app: Arc<App>,
    pub base: String,
    /// `ldap://127.0.0.1:PORT` when LDAP is served.
    pub ldap_url: Option<String>,
    /// `ldaps://127.0.0.1:PORT` when LDAPS is served.
    pub ldaps_url: Option<String>,
    pub clock: Arc<TestClock>,
    pub dir: Arc<TempDir>,
    pub http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Countersign {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: serde_json::Value,
}

/// Runs the `countersign` binary with `--config config`, `args` and `stdin`; returns
/// (success, stdout, stderr).
pub fn run_countersign(config: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A raw LDAP connection (ldap3_proto's codec) for talking to the front byte-exactly.
pub type LdapConn = tokio_util::codec::Framed<tokio::net::TcpStream, ldap3_proto::LdapCodec>;

impl Countersign {
    /// `127.0.0.1:PORT` of the plain LDAP listener.
    pub fn ldap_addr(&self) -> String {
        self.ldap_url
            .as_deref()
            .unwrap()
            .trim_start_matches("ldap://")
            .to_owned()
    }

    pub async fn ldap_connect(&self) -> LdapConn {
        let stream = tokio::net::TcpStream::connect(self.ldap_addr())
            .await
            .unwrap();
        tokio_util::codec::Framed::new(stream, ldap3_proto::LdapCodec::default())
    }

    pub async fn start(setup: &Setup) -> Countersign {
        let dir = Arc::new(TempDir::new().unwrap());
        std::fs::write(dir.path().join("countersign.toml"), setup.config()).unwrap();
        Self::start_in(dir, Arc::new(TestClock(AtomicI64::new(T0)))).await
    }

    /// Starts (again) over an existing folder: same database, same key.
    pub async fn start_in(dir: Arc<TempDir>, clock: Arc<TestClock>) -> Countersign {
        let config =
            Config::load(&dir.path().join("countersign.toml")).unwrap_or_else(|e| panic!("{e}"));
        let app = Arc::new(App::build_with_clock(config, clock.clone()).unwrap());
        let mut listeners = countersign::app::Listeners::bind(&app.config)
            .await
            .unwrap();
        listeners.http = Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        let url = |scheme: &str, l: &Option<tokio::net::TcpListener>| {
            l.as_ref()
                .map(|l| format!("{scheme}://{}", l.local_addr().unwrap()))
        };
        let base = url("http", &listeners.http).unwrap();
        let (ldap_url, ldaps_url) = (url("ldap", &listeners.ldap), url("ldaps", &listeners.ldaps));
        let serving = app.clone();
        let task = tokio::spawn(async move {
            serving
                .serve(listeners, std::future::pending())
                .await
                .unwrap();
        });
        Countersign {
            app,
            base,
            ldap_url,
            ldaps_url,
            clock,
            dir,
            http: reqwest::Client::new(),
            task,
        }
    }

    pub async fn add_user(&self, u: TestUser) {
        let user = User {
            directory: "local".into(),
            dn: Dn::new(format!("uid={},ou=people,dc=example,dc=com", u.username)),
            username: u.username.into(),
            display_name: None,
            mail: u.mail.iter().map(|s| s.to_string()).collect(),
            mobile: u.mobile.iter().map(|s| s.to_string()).collect(),
            attributes: Default::default(),
            sponsor: Some(Sponsor {
                name: Some("Bob".into()),
                email: Some("bob@example.com".into()),
                phone: None,
            }),
            preferred_mechanisms: u.preferred.iter().map(|s| s.to_string()).collect(),
            account: u.account,
        };
        let password_hash = passwords::hash(&Secret::new(u.password)).unwrap();
        self.app
            .store
            .insert_local_user(&LocalUser {
                user,
                password_hash,
            })
            .await
            .unwrap();
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> Answer {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        Self::answer(r).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        Self::answer(r).await
    }

    async fn answer(r: reqwest::Response) -> Answer {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Answer {
            status,
            headers,
            json,
        }
    }

    pub async fn deliver(&self, body: serde_json::Value) -> Answer {
        self.post("/api/v1/otp/deliver", body).await
    }

    pub async fn verify(&self, user: &str, otp: &str) -> Answer {
        self.post(
            "/api/v1/otp/verify",
            serde_json::json!({"authentication_id": user, "otp": otp}),
        )
        .await
    }
}

pub struct TestUser {
    pub username: &'static str,
    pub password: &'static str,
    pub mail: Vec<&'static str>,
    pub mobile: Vec<&'static str>,
    pub preferred: Vec<&'static str>,
    pub account: AccountState,
}

pub fn alice() -> TestUser {
    TestUser {
        username: "alice",
        password: "alice-password",
        mail: vec!["alice@example.com"],
        mobile: vec!["+15550100001"],
        preferred: vec![],
        account: AccountState::default(),
    }
}

pub fn alice_dn() -> &'static str {
    "uid=alice,ou=people,dc=example,dc=com"
}

pub fn deliver_alice() -> serde_json::Value {
    serde_json::json!({"authentication_id": "u:alice", "static_password": "alice-password"})
}
