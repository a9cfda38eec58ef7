//! LDAP transport: sockets, LDAPS and StartTLS, limits on connections, timeouts, a tracing
//! span per connection. The operations on a connection are [`super::connection`]'s; the
//! meaning of each request is the handler's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;
use tracing::Instrument;

use crate::setup::SetupError;

use super::codec::Codec;
use super::connection::{self, Context, Io, Next, WRITE_TIMEOUT};
use super::handler::{LdapHandler, Session};

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    context: Context,
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
pub fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, SetupError> {
    let refuse = |detail: String| SetupError::new("ldap", detail);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| refuse(format!("tls_certificate_file: {e}")))?;
    if certs.is_empty() {
        return Err(refuse("tls_certificate_file: no certificate found".into()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| refuse(format!("tls_key_file: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| refuse(format!("TLS: {e}")))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| refuse(format!("tls_certificate_file / tls_key_file: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
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
            context: Context {
                handler,
                max_operations_per_connection: limits.max_operations_per_connection,
                idle_timeout: limits.idle_timeout,
                operations: Arc::default(),
            },
            tls,
            limits,
            connections,
            per_client: Arc::default(),
            refused: AtomicU64::new(0),
            last_warning: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    /// Operations in progress on all connections: binds, searches, extended operations. Tests
    /// watch it return to zero to see that nothing outlives a client that went away.
    pub fn operations_in_progress(&self) -> usize {
        self.context.operations.load(Ordering::SeqCst)
    }

    /// Connections being served.
    pub fn open_connections(&self) -> usize {
        self.limits.max_connections - self.connections.available_permits()
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
            let framed = Framed::new(io, Codec::new(self.limits.max_message_bytes));
            match connection::run(&self.context, framed, &mut session, first, shutdown.clone())
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
}
