//! LDAP transport: sockets, LDAPS and StartTLS, message framing (`ldap3_proto`'s codec), limits
//! and timeouts, a tracing span per connection and per operation. The meaning of each request
//! is the handler's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ldap3_proto::LdapCodec;
use ldap3_proto::proto::{LdapMsg, LdapOp, LdapResult, LdapResultCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Framed, FramedParts};
use tracing::Instrument;

use super::exop;
use super::handler::{LdapHandler, Outcome, Session, notice_of_disconnection};

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest one response may take to be written before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a new connection may stay silent before its first message.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// At shutdown, how long running operations may take to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Limits of the LDAP front.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Connections one client address may hold at once.
    pub max_connections_per_client: usize,
    pub max_operations_per_connection: usize,
}

pub struct LdapServer {
    handler: Arc<LdapHandler>,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    connections: Arc<Semaphore>,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// Refused connections since the last warning, and when that was (ms since start).
    refused: AtomicU64,
    last_warning: AtomicU64,
    started: std::time::Instant,
}

/// A TLS acceptor (rustls, ring) from a PEM certificate chain and key.
pub fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("ldap.tls_certificate_file: {e}"))?;
    if certs.is_empty() {
        return Err("ldap.tls_certificate_file: no certificate found".into());
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("ldap.tls_key_file: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("ldap.tls_certificate_file / tls_key_file: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

enum Next {
    /// Close the connection (after a clean TLS/TCP shutdown of the writing side).
    Close(Framed<Box<dyn Io>, LdapCodec>),
    /// The stream is gone or unusable: just drop it.
    Drop,
    StartTls(Box<dyn Io>),
}

/// Gives back a client's connection slot when the connection ends.
struct ClientSlot {
    map: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.lock()
            && let Some(n) = m.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

impl LdapServer {
    pub fn new(handler: Arc<LdapHandler>, tls: Option<TlsAcceptor>, limits: Limits) -> Self {
        let connections = Arc::new(Semaphore::new(limits.max_connections));
        Self {
            handler,
            tls,
            limits,
            connections,
            per_client: Arc::default(),
            refused: AtomicU64::new(0),
            last_warning: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    /// Counts a refused connection and warns at most every ten seconds, so a flood of
    /// connections cannot flood the log too.
    fn refused_connection(&self, peer: SocketAddr, why: &str) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 10_000)
            && self
                .last_warning
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.refused.store(0, Ordering::Relaxed);
            tracing::warn!(client = %peer, refused, "LDAP connections refused: {why}");
        }
    }

    fn client_slot(&self, ip: IpAddr) -> Option<ClientSlot> {
        let mut m = self.per_client.lock().ok()?;
        let n = m.entry(ip).or_insert(0);
        if *n >= self.limits.max_connections_per_client {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            map: self.per_client.clone(),
            ip,
        })
    }

    /// Accepts connections on `listener` (TLS from the first byte when `implicit_tls`) until
    /// `shutdown` turns true; then waits for the connections to finish what they are doing.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        implicit_tls: bool,
        shutdown: watch::Receiver<bool>,
    ) {
        let mut connections = JoinSet::new();
        let mut stop = shutdown.clone();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "LDAP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                self.refused_connection(peer, "max_connections reached");
                continue;
            };
            let Some(slot) = self.client_slot(peer.ip()) else {
                self.refused_connection(peer, "max_connections_per_client reached");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (server, shutdown) = (self.clone(), shutdown.clone());
            let span = tracing::info_span!("ldap_connection", client = %peer, tls = implicit_tls);
            connections.spawn(
                async move {
                    server
                        .connection(Box::new(stream), peer, implicit_tls, shutdown)
                        .await;
                    drop((permit, slot));
                }
                .instrument(span),
            );
        }
        while connections.join_next().await.is_some() {}
    }

    async fn connection(
        &self,
        stream: Box<dyn Io>,
        peer: SocketAddr,
        implicit_tls: bool,
        shutdown: watch::Receiver<bool>,
    ) {
        let mut session = Session {
            client: Some(peer.ip().to_string()),
            ..Session::default()
        };
        let mut io = stream;
        if implicit_tls {
            match self.handshake(io).await {
                Some(tls) => io = tls,
                None => return,
            }
            session.secure = true;
        }
        let mut first = true;
        loop {
            let framed = Framed::new(
                io,
                LdapCodec::new(Some(self.limits.max_message_bytes), None),
            );
            match self
                .run(framed, &mut session, first, shutdown.clone())
                .await
            {
                Next::Drop => return,
                Next::Close(mut framed) => {
                    // TLS close_notify / TCP FIN, so what was written last is read.
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, framed.get_mut().shutdown()).await;
                    return;
                }
                Next::StartTls(plain) => match self.handshake(plain).await {
                    Some(tls) => {
                        io = tls;
                        session.secure = true;
                        first = false;
                        tracing::debug!("StartTLS done");
                    }
                    None => return,
                },
            }
        }
    }

    async fn handshake(&self, io: Box<dyn Io>) -> Option<Box<dyn Io>> {
        let acceptor = self.tls.as_ref()?;
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
            Ok(Ok(tls)) => Some(Box::new(tls)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                None
            }
        }
    }

    /// Serves one framed stream until it closes, asks for StartTLS or the server shuts down.
    async fn run(
        &self,
        mut framed: Framed<Box<dyn Io>, LdapCodec>,
        session: &mut Session,
        mut first: bool,
        mut shutdown: watch::Receiver<bool>,
    ) -> Next {
        let mut in_flight: JoinSet<Vec<LdapMsg>> = JoinSet::new();
        // What to answer for a spawned operation that fails without answering.
        let mut pending: HashMap<tokio::task::Id, LdapMsg> = HashMap::new();
        loop {
            let can_read = in_flight.len() < self.limits.max_operations_per_connection;
            let wait = if first {
                FIRST_MESSAGE_TIMEOUT
            } else {
                self.limits.idle_timeout
            };
            tokio::select! {
                Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                    let msgs = self.finished(done, &mut pending);
                    if !send_all(&mut framed, msgs).await {
                        return Next::Drop;
                    }
                }
                _ = shutdown.changed() => {
                    // Let running operations finish, then say why the connection closes.
                    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
                        while let Some(done) = in_flight.join_next_with_id().await {
                            let msgs = self.finished(done, &mut pending);
                            if !send_all(&mut framed, msgs).await {
                                break;
                            }
                        }
                    })
                    .await;
                    let notice = notice_of_disconnection(LdapResultCode::Unavailable, "the server is shutting down");
                    let _ = send_all(&mut framed, vec![notice]).await;
                    return Next::Close(framed);
                }
                frame = tokio::time::timeout(wait, framed.next()), if can_read => {
                    let msg = match frame {
                        Err(_) if in_flight.is_empty() => {
                            tracing::debug!("idle timeout");
                            return Next::Close(framed);
                        }
                        Err(_) => continue,
                        Ok(None) => {
                            // The client closed its side: finish and answer what it asked.
                            while let Some(done) = in_flight.join_next_with_id().await {
                                let msgs = self.finished(done, &mut pending);
                                if !send_all(&mut framed, msgs).await {
                                    break;
                                }
                            }
                            return Next::Close(framed);
                        }
                        Ok(Some(Err(e))) => {
                            use std::io::ErrorKind::{Other, OutOfMemory};
                            if !matches!(e.kind(), Other | OutOfMemory) {
                                // Reset, broken pipe: nobody left to tell.
                                return Next::Drop;
                            }
                            // Malformed BER or an oversized message: say why, then close this
                            // connection only (RFC 4511 §4.4.1).
                            tracing::info!(error = %e, "closing an LDAP connection after a malformed or oversized message");
                            let notice = notice_of_disconnection(LdapResultCode::ProtocolError, "malformed or oversized LDAP message");
                            let _ = send_all(&mut framed, vec![notice]).await;
                            return Next::Close(framed);
                        }
                        Ok(Some(Ok(msg))) => msg,
                    };
                    first = false;
                    if runs_alone(&msg.op) {
                        if matches!(msg.op, LdapOp::BindRequest(_)) {
                            // RFC 4511 §4.2.1: operations before a bind complete first.
                            while let Some(done) = in_flight.join_next_with_id().await {
                                let msgs = self.finished(done, &mut pending);
                                if !send_all(&mut framed, msgs).await {
                                    return Next::Drop;
                                }
                            }
                        }
                        session.outstanding = in_flight.len();
                        let span = op_span(&msg);
                        match self.handler.handle(msg, session).instrument(span).await {
                            Outcome::Respond(msgs) => {
                                if !send_all(&mut framed, msgs).await {
                                    return Next::Drop;
                                }
                            }
                            Outcome::Bind { bound, response } => {
                                session.bound = bound;
                                if !send_all(&mut framed, vec![response]).await {
                                    return Next::Drop;
                                }
                            }
                            Outcome::StartTls(response) => {
                                if !send_all(&mut framed, vec![response]).await {
                                    return Next::Drop;
                                }
                                let parts: FramedParts<Box<dyn Io>, LdapCodec> = framed.into_parts();
                                if !parts.read_buf.is_empty() {
                                    // Data after StartTLS before the handshake: not TLS, and
                                    // never to be read as if it had come through TLS.
                                    tracing::info!("closing an LDAP connection that sent data after StartTLS");
                                    return Next::Drop;
                                }
                                return Next::StartTls(parts.io);
                            }
                            Outcome::Disconnect => return Next::Close(framed),
                            Outcome::Ignore => {}
                        }
                    } else {
                        session.outstanding = in_flight.len();
                        let failure = self.handler.refusal_for(
                            &msg.op,
                            msg.msgid,
                            LdapResult {
                                code: LdapResultCode::Other,
                                matcheddn: String::new(),
                                message: "the operation failed; it has been logged".into(),
                                referral: Vec::new(),
                            },
                        );
                        let (handler, snapshot, span) = (self.handler.clone(), session.clone(), op_span(&msg));
                        let task = in_flight.spawn(
                            async move {
                                match handler.handle(msg, &snapshot).await {
                                    Outcome::Respond(msgs) => msgs,
                                    _ => Vec::new(),
                                }
                            }
                            .instrument(span),
                        );
                        pending.insert(task.id(), failure);
                    }
                }
            }
        }
    }

    /// The responses of a finished operation; `other` (80) if it failed without answering.
    fn finished(
        &self,
        done: Result<(tokio::task::Id, Vec<LdapMsg>), tokio::task::JoinError>,
        pending: &mut HashMap<tokio::task::Id, LdapMsg>,
    ) -> Vec<LdapMsg> {
        match done {
            Ok((id, msgs)) => {
                pending.remove(&id);
                msgs
            }
            Err(e) => {
                tracing::error!(error = %e, "an LDAP operation failed");
                pending.remove(&e.id()).into_iter().collect()
            }
        }
    }
}

/// Requests that read or change the connection's state are handled in order, on the
/// connection's own task; the others run beside each other.
fn runs_alone(op: &LdapOp) -> bool {
    match op {
        LdapOp::BindRequest(_) | LdapOp::UnbindRequest | LdapOp::AbandonRequest(_) => true,
        LdapOp::ExtendedRequest(r) => r.name == exop::START_TLS || r.name == exop::WHO_AM_I,
        _ => false,
    }
}

fn op_span(msg: &LdapMsg) -> tracing::Span {
    let op = match &msg.op {
        LdapOp::BindRequest(_) => "bind",
        LdapOp::UnbindRequest => "unbind",
        LdapOp::SearchRequest(_) => "search",
        LdapOp::ExtendedRequest(r) => match r.name.as_str() {
            exop::DELIVER_OTP_REQUEST => "deliver-otp",
            exop::GET_SUPPORTED_REQUEST => "get-supported-otp-mechanisms",
            exop::WHO_AM_I => "whoami",
            exop::START_TLS => "starttls",
            _ => "extended",
        },
        LdapOp::AbandonRequest(_) => "abandon",
        _ => "other",
    };
    tracing::info_span!("ldap_op", msgid = msg.msgid, op)
}

async fn send_all(framed: &mut Framed<Box<dyn Io>, LdapCodec>, msgs: Vec<LdapMsg>) -> bool {
    for m in msgs {
        match tokio::time::timeout(WRITE_TIMEOUT, framed.send(m)).await {
            Ok(Ok(())) => {}
            _ => return false,
        }
    }
    true
}
