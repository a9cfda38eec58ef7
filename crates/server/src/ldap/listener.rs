//! LDAP transport: sockets, LDAPS and StartTLS, limits on connections, timeouts, a tracing
//! span per connection. The operations on a connection are [`super::connection`]'s; the
//! meaning of each request is the handler's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::admission::Admission;
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
    /// `max_connections` and `max_connections_per_client`.
    admission: Admission,
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

impl LdapServer {
    pub fn new(handler: Arc<LdapHandler>, tls: Option<TlsAcceptor>, limits: Limits) -> Self {
        let admission = Admission::new(
            "LDAP",
            limits.max_connections,
            limits.max_connections_per_client,
        );
        Self {
            context: Context {
                handler,
                max_operations_per_connection: limits.max_operations_per_connection,
                idle_timeout: limits.idle_timeout,
                operations: Arc::default(),
                tasks: TaskTracker::new(),
            },
            tls,
            limits,
            admission,
        }
    }

    /// Operations in progress on all connections: binds, searches, extended operations. Tests
    /// watch it return to zero to see that nothing outlives a client that went away.
    pub fn operations_in_progress(&self) -> usize {
        self.context.operations.load(Ordering::SeqCst)
    }

    /// Connections being served.
    pub fn open_connections(&self) -> usize {
        self.admission.open()
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
            let Some(place) = self.admission.admit(peer) else {
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
                    drop(place);
                }
                .instrument(span),
            );
        }
        while connections.join_next().await.is_some() {}
        // Operations whose clients went away still finish (their records written) before the
        // store closes.
        self.context.tasks.close();
        self.context.tasks.wait().await;
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
