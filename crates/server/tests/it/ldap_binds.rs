//! Binds that wait: a test directory whose password checks take their time (one of them until
//! it is cancelled) behind the LDAP front, and what Unbind, Abandon, a closed socket, shutdown,
//! other operations and other connections do while a bind waits. A bind will wait minutes for a
//! manager's approval; none of this may leave work behind or hold up anyone else.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use countersign::app::App;
use countersign::config::Config;
use countersign::ldap::{LdapServer, exop};
use countersign_core::identity::Identity;
use countersign_core::identity_mapper::IdentityMapper;
use countersign_core::ports::{Directory, DirectoryError, Lookup};
use countersign_core::{Dn, Manager, Secret, User};
use futures_util::{SinkExt, StreamExt};
use ldap3_proto::proto::*;
use tokio::sync::watch;
use tokio_util::codec::Framed;

use crate::fixtures::*;

/// The password every user of the slow directory has.
const RIGHT: &str = "right";

/// A directory of three users whose password checks take their time: `sloth`'s never ends (it
/// waits until it is cancelled), `tortoise`'s takes half a second, `hare`'s none.
#[derive(Default)]
struct SlowDirectory {
    /// Password checks in progress; a cancelled check leaves at once.
    checking: AtomicUsize,
}

struct Checking<'a>(&'a AtomicUsize);

impl Drop for Checking<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn slow_dn(name: &str) -> String {
    format!("uid={name},ou=slow,dc=example,dc=com")
}

#[async_trait]
impl Directory for SlowDirectory {
    fn name(&self) -> &str {
        "slow"
    }

    async fn find_user(&self, identity: &Identity) -> Result<Lookup, DirectoryError> {
        let found = ["sloth", "tortoise", "hare"]
            .into_iter()
            .find(|name| match identity {
                Identity::Dn(dn) => dn.normalized() == Dn::new(slow_dn(name)).normalized(),
                Identity::Username(u) => u == name,
            });
        Ok(match found {
            Some(name) => Lookup::Found(Box::new(User::new("slow", Dn::new(slow_dn(name)), name))),
            None => Lookup::NotFound,
        })
    }

    async fn check_password(&self, user: &User, password: &Secret) -> Result<bool, DirectoryError> {
        self.checking.fetch_add(1, Ordering::SeqCst);
        let _checking = Checking(&self.checking);
        let delay = match user.username.as_str() {
            "sloth" => Duration::from_secs(3600),
            "tortoise" => Duration::from_millis(500),
            _ => Duration::ZERO,
        };
        tokio::time::sleep(delay).await;
        Ok(password.expose() == RIGHT)
    }

    async fn check_password_of_nobody(&self, _password: &Secret) {}

    async fn find_manager(&self, _user: &User) -> Result<Option<Manager>, DirectoryError> {
        Ok(None)
    }
}

/// countersign's LDAP front on a free port, with the slow directory last in the identity
/// mapper's chain, and its shutdown signal in the test's hands.
struct SlowFront {
    server: Arc<LdapServer>,
    addr: String,
    directory: Arc<SlowDirectory>,
    stop: watch::Sender<bool>,
    serving: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for SlowFront {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

async fn slow_front(ldap_extra: &str) -> SlowFront {
    let dir = tempfile::TempDir::new().unwrap();
    let setup = Setup {
        extra: "[[delivery_mechanism]]\nname = \"File\"\ntype = \"file\"\ndirectory = \"outbox\"\nprint = false\n".into(),
        default_mechanisms: vec!["File"],
        ldap: true,
        ldap_extra: ldap_extra.into(),
        ..Setup::default()
    };
    let path = dir.path().join("countersign.toml");
    std::fs::write(&path, setup.config()).unwrap();
    let mut app = App::build(Config::load(&path).unwrap_or_else(|e| panic!("{e}"))).unwrap();
    let directory = Arc::new(SlowDirectory::default());
    // Binds are logins: the slow directory joins the login chain.
    let login = Arc::get_mut(&mut app.login)
        .expect("the service is not shared before the fronts are built");
    let passwords = Arc::get_mut(&mut login.passwords).expect("nor is the password check");
    let mut chain = passwords.mapper.directories().to_vec();
    chain.push(directory.clone());
    passwords.mapper = IdentityMapper::new(chain);
    let server = app.ldap_server().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = watch::channel(false);
    let serving = tokio::spawn(server.clone().serve(listener, false, stopped));
    SlowFront {
        server,
        addr,
        directory,
        stop,
        serving,
        _dir: dir,
    }
}

impl SlowFront {
    async fn connect(&self) -> LdapConn {
        let stream = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
        Framed::new(stream, ldap3_proto::LdapCodec::default())
    }

    fn checking(&self) -> usize {
        self.directory.checking.load(Ordering::SeqCst)
    }

    /// Waits until no password check, no operation and no connection is left.
    async fn until_nothing_is_left(&self) {
        until("nothing left running", || {
            self.checking() == 0
                && self.server.operations_in_progress() == 0
                && self.server.open_connections() == 0
        })
        .await;
    }
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn bind(name: &str, password: &str) -> LdapOp {
    LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn: slow_dn(name),
        cred: LdapBindCred::Simple(password.into()),
    })
}

fn whoami() -> LdapOp {
    LdapOp::ExtendedRequest(LdapExtendedRequest {
        name: exop::WHO_AM_I.into(),
        value: None,
    })
}

fn root_dse() -> LdapOp {
    root_dse_request(&["vendorName"])
}

/// The next message, within `secs` seconds; `None` when the server closed the connection.
async fn next_within(conn: &mut LdapConn, secs: u64) -> Option<LdapMsg> {
    tokio::time::timeout(Duration::from_secs(secs), conn.next())
        .await
        .expect("an answer or the end of the connection")
        .map(|r| r.unwrap())
}

/// The result of a final response.
fn res(msg: &LdapMsg) -> &LdapResult {
    match &msg.op {
        LdapOp::BindResponse(r) => &r.res,
        LdapOp::ExtendedResponse(r) => &r.res,
        LdapOp::SearchResultDone(r) => r,
        other => panic!("not a final response: {other:?}"),
    }
}

fn whoami_value(msg: &LdapMsg) -> String {
    match &msg.op {
        LdapOp::ExtendedResponse(r) => String::from_utf8(r.value.clone().unwrap()).unwrap(),
        other => panic!("{other:?}"),
    }
}

async fn ask(conn: &mut LdapConn, id: i32, op: LdapOp) -> LdapMsg {
    conn.send(LdapMsg::new(id, op)).await.unwrap();
    loop {
        let msg = next_within(conn, 10).await.expect("open");
        if !matches!(msg.op, LdapOp::SearchResultEntry(_)) {
            assert_eq!(msg.msgid, id);
            return msg;
        }
    }
}

/// Starts a bind as `sloth` on a new connection and waits until its password check runs.
async fn sloth_binding(front: &SlowFront) -> LdapConn {
    let mut conn = front.connect().await;
    conn.send(LdapMsg::new(1, bind("sloth", RIGHT)))
        .await
        .unwrap();
    until("the sloth's password check", || front.checking() == 1).await;
    assert_eq!(front.server.operations_in_progress(), 1);
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbind_cancels_a_bind_in_progress() {
    // An idle timeout shorter than the wait: a bind in progress is not idleness.
    let front = slow_front("idle_timeout = \"1s\"\n").await;
    let mut conn = sloth_binding(&front).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(front.checking(), 1, "still waiting after the idle timeout");
    conn.send(LdapMsg::new(2, LdapOp::UnbindRequest))
        .await
        .unwrap();
    assert!(
        next_within(&mut conn, 5).await.is_none(),
        "closed, unanswered"
    );
    front.until_nothing_is_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_socket_cancels_a_bind_in_progress() {
    let front = slow_front("").await;
    let conn = sloth_binding(&front).await;
    drop(conn);
    front.until_nothing_is_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandon_does_not_cancel_a_bind() {
    // RFC 4511 §4.11: a bind cannot be abandoned; the Abandon is ignored and the bind answered.
    let front = slow_front("").await;
    let mut conn = front.connect().await;
    conn.send(LdapMsg::new(1, bind("tortoise", RIGHT)))
        .await
        .unwrap();
    until("the tortoise's password check", || front.checking() == 1).await;
    conn.send(LdapMsg::new(2, LdapOp::AbandonRequest(1)))
        .await
        .unwrap();
    let answer = next_within(&mut conn, 10).await.unwrap();
    assert_eq!(answer.msgid, 1);
    assert_eq!(res(&answer).code, LdapResultCode::Success);
    let me = ask(&mut conn, 3, whoami()).await;
    assert_eq!(whoami_value(&me), format!("dn:{}", slow_dn("tortoise")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_a_bind_in_progress_with_a_notice_of_disconnection() {
    let front = slow_front("").await;
    let mut conn = sloth_binding(&front).await;
    let asked = Instant::now();
    front.stop.send(true).unwrap();
    let notice = next_within(&mut conn, 5).await.expect("a notice");
    assert!(asked.elapsed() < Duration::from_secs(3), "promptly");
    assert_eq!(notice.msgid, 0);
    match &notice.op {
        LdapOp::ExtendedResponse(r) => {
            assert_eq!(r.name.as_deref(), Some(exop::NOTICE_OF_DISCONNECTION));
            assert_eq!(r.res.code, LdapResultCode::Unavailable);
        }
        other => panic!("{other:?}"),
    }
    assert!(next_within(&mut conn, 5).await.is_none(), "then closed");
    front.until_nothing_is_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_connections_bind_and_search_while_a_bind_waits() {
    let front = slow_front("").await;
    let _waiting = sloth_binding(&front).await;
    let mut other = front.connect().await;
    let started = Instant::now();
    assert_eq!(
        res(&ask(&mut other, 1, bind("hare", RIGHT)).await).code,
        LdapResultCode::Success
    );
    assert_eq!(
        whoami_value(&ask(&mut other, 2, whoami()).await),
        format!("dn:{}", slow_dn("hare"))
    );
    assert_eq!(
        res(&ask(&mut other, 3, root_dse()).await).code,
        LdapResultCode::Success
    );
    // A slow bind on the other connection too, answered while the sloth still waits.
    assert_eq!(
        res(&ask(&mut other, 4, bind("tortoise", "wrong")).await).code,
        LdapResultCode::InvalidCredentials
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(front.checking(), 1, "the sloth still waits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_during_a_bind_are_refused_and_the_bind_decides_the_identity() {
    let front = slow_front("").await;
    let mut conn = front.connect().await;
    assert_eq!(
        res(&ask(&mut conn, 1, bind("hare", RIGHT)).await).code,
        LdapResultCode::Success
    );
    // RFC 4511 §4.2.1: nothing may be sent while a bind is in progress; what is sent anyway
    // is refused at once, a second bind included, and the first bind carries on.
    conn.send(LdapMsg::new(2, bind("tortoise", RIGHT)))
        .await
        .unwrap();
    conn.send(LdapMsg::new(3, whoami())).await.unwrap();
    conn.send(LdapMsg::new(4, root_dse())).await.unwrap();
    conn.send(LdapMsg::new(5, bind("hare", RIGHT)))
        .await
        .unwrap();
    let mut refused = Vec::new();
    for _ in 0..3 {
        let m = next_within(&mut conn, 5).await.unwrap();
        assert_eq!(res(&m).code, LdapResultCode::OperationsError, "{m:?}");
        refused.push(m.msgid);
    }
    assert_eq!(refused, [3, 4, 5]);
    let bound = next_within(&mut conn, 5).await.unwrap();
    assert_eq!(
        (bound.msgid, res(&bound).code.clone()),
        (2, LdapResultCode::Success)
    );
    assert_eq!(
        whoami_value(&ask(&mut conn, 6, whoami()).await),
        format!("dn:{}", slow_dn("tortoise"))
    );
    // A slow bind that fails leaves the connection anonymous (RFC 4513 §5.2.1).
    assert_eq!(
        res(&ask(&mut conn, 7, bind("tortoise", "wrong")).await).code,
        LdapResultCode::InvalidCredentials
    );
    assert_eq!(whoami_value(&ask(&mut conn, 8, whoami()).await), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldapwhoami_killed_mid_bind_leaves_nothing_behind() {
    let front = slow_front("").await;
    let mut child = Command::new("ldapwhoami")
        .args(["-x", "-H", &format!("ldap://{}", front.addr)])
        .args(["-D", &slow_dn("sloth"), "-w", RIGHT])
        .env("LDAPRC", "/dev/null")
        .env("LDAPCONF", "/dev/null")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ldapwhoami: {e} (scripts/test installs ldap-utils)"));
    until("ldapwhoami's bind to wait", || front.checking() == 1).await;
    assert_eq!(front.server.operations_in_progress(), 1);
    assert_eq!(front.server.open_connections(), 1);
    child.kill().unwrap();
    child.wait().unwrap();
    front.until_nothing_is_left().await;
}
