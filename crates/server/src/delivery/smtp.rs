//! E-mail through an SMTP server: plain, STARTTLS (required, never opportunistic) or implicit
//! TLS, with optional authentication and a timeout on every exchange.
//!
//! The TCP connection is ours, not lettre's, for two reasons. lettre writes the message body and
//! the closing `.` in two writes before it reads the answer, so with Nagle's algorithm on the
//! dot waits for the server's delayed ACK (~40 ms a mail); we set TCP_NODELAY. And connections
//! are kept for the next mails ([`ConnectionPool`]): RFC 5321 §3.3 lets one session carry many
//! transactions, which saves the TCP and TLS handshakes, EHLO and AUTH on each mail.
//! lettre still speaks SMTP, does STARTTLS and implicit TLS with the same rustls parameters
//! (and certificate checks) as its own transport, and authenticates.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use countersign_core::ports::{Courier, DeliveryError, OutboundMessage};
use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::Rset;
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

use crate::config::{MailProfile, Tls};
use crate::setup::SetupError;

pub struct SmtpCourier {
    host: String,
    port: u16,
    tls: Option<Security>,
    credentials: Option<Credentials>,
    hello: ClientId,
    from: Mailbox,
    profile: String,
    timeout: Duration,
    pool: ConnectionPool,
}

/// Why a mail did not go out; shown in the audit record's reason.
#[derive(Debug, thiserror::Error)]
enum SmtpError {
    #[error("connection error: {0}")]
    Connect(#[from] std::io::Error),
    #[error("connection timed out")]
    ConnectTimeout,
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// How the session is protected, with lettre's rustls parameters (trust roots, server name).
enum Security {
    StartTls(TlsParameters),
    Implicit(TlsParameters),
}

impl SmtpCourier {
    pub fn new(profile: &MailProfile) -> Result<Self, SetupError> {
        let component = || format!("mail_profile {}", profile.name);
        let from: Mailbox = profile
            .from
            .parse()
            .map_err(|e| SetupError::new(component(), format!("from: {e}")))?;
        let tls = match profile.tls {
            Tls::None => None,
            Tls::StartTls | Tls::Implicit => {
                let mut params = TlsParameters::builder(profile.host.clone());
                if let Some(pem) = &profile.ca_pem {
                    let cert = Certificate::from_pem(pem)
                        .map_err(|e| SetupError::new(component(), format!("ca_file: {e}")))?;
                    params = params.add_root_certificate(cert);
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| SetupError::new(component(), format!("TLS: {e}")))?;
                Some(if profile.tls == Tls::Implicit {
                    Security::Implicit(params)
                } else {
                    Security::StartTls(params)
                })
            }
        };
        Ok(Self {
            host: profile.host.clone(),
            port: profile.port,
            tls,
            credentials: profile
                .credentials
                .as_ref()
                .map(|(user, password)| Credentials::new(user.clone(), password.expose().into())),
            // As lettre's transport does: the host name, or an address literal (RFC 5321 §4.1.4).
            hello: ClientId::default(),
            from,
            profile: profile.name.clone(),
            timeout: profile.timeout,
            pool: ConnectionPool::new(profile.max_idle_connections, profile.idle_timeout),
        })
    }

    /// A new session, ready for mail: TCP (with TCP_NODELAY), TLS as configured, EHLO, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let tcp = tokio::time::timeout(
            self.timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| SmtpError::ConnectTimeout)??;
        tcp.set_nodelay(true)?;
        let mut conn = match &self.tls {
            Some(Security::Implicit(params)) => {
                // lettre reads the greeting as soon as it has a stream, so implicit TLS is set
                // up first, by lettre's own code, and the encrypted stream handed over.
                #[allow(deprecated)] // the only public way to lettre's TLS upgrade on our socket
                let mut stream =
                    lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(
                        Box::new(tcp),
                    );
                stream.upgrade_tls(params.clone()).await?;
                let stream = EncryptedStream(stream.compat());
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello).await
            }
            _ => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await,
        }?;
        if let Some(Security::StartTls(params)) = &self.tls {
            conn.starttls(params.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }

    /// A kept session that still answers, or a new one. A kept session the server closed (or
    /// that does not answer RSET in time) is dropped, and so are the other kept ones: they are
    /// likely gone too (a server restart), and each would cost a timeout to find out.
    async fn session(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        if let Some(mut conn) = self.pool.take(self.timeout) {
            // RFC 5321 §4.1.1.5: RSET clears whatever a previous transaction left; its answer
            // shows the session is alive.
            let check = tokio::time::timeout(self.timeout, conn.command(Rset)).await;
            if matches!(check, Ok(Ok(_))) {
                return Ok(conn);
            }
            self.pool.clear();
        }
        self.connect().await
    }

    async fn transmit(
        &self,
        envelope: &lettre::address::Envelope,
        bytes: &[u8],
    ) -> Result<(), SmtpError> {
        let mut conn = self.session().await?;
        conn.send(envelope, bytes).await?;
        self.pool.put(conn, self.timeout);
        Ok(())
    }
}

#[async_trait]
impl Courier for SmtpCourier {
    async fn send(&self, message: &OutboundMessage) -> Result<(), DeliveryError> {
        let to: Mailbox = message.to.parse().map_err(|_| {
            DeliveryError::Failed("the recipient is not a valid e-mail address".into())
        })?;
        // RFC 5322 §3.6.4: a unique Message-ID (spam filters mark mail without one), random
        // and in the sender's domain so it names no host of ours.
        let message_id = format!(
            "<{}@{}>",
            countersign_core::crypto::to_hex(&crate::system::random_bytes(16)),
            self.from.email.domain()
        );
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .message_id(Some(message_id))
            .subject(message.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.expose().to_owned())
            .map_err(|e| DeliveryError::Failed(format!("cannot build the message: {e}")))?;
        let (envelope, bytes) = (email.envelope().clone(), email.formatted());
        // Connect and each TLS step have their own timeout; bound the whole exchange too (a
        // server that accepts and never speaks).
        let overall = self.timeout.saturating_mul(3);
        match tokio::time::timeout(overall, self.transmit(&envelope, &bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(DeliveryError::Failed(format!(
                "SMTP ({}): {e}",
                self.profile
            ))),
            Err(_) => Err(DeliveryError::Failed(format!(
                "SMTP ({}): timed out",
                self.profile
            ))),
        }
    }
}

/// lettre's TLS stream (a futures-io stream) as the tokio stream its connection takes.
#[allow(deprecated)]
#[derive(Debug)]
struct EncryptedStream(Compat<lettre::transport::smtp::client::AsyncNetworkStream>);

impl tokio::io::AsyncRead for EncryptedStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for EncryptedStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for EncryptedStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().peer_addr()
    }
}

/// SMTP sessions kept between mails: at most `max_idle`, each for at most `idle_timeout`
/// unused. Concurrent mails each take their own session, so the number of open sessions is
/// bounded by the deliveries in flight plus `max_idle`.
struct ConnectionPool {
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl ConnectionPool {
    fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// The most recently used session that has not idled too long; older ones are closed.
    fn take(&self, timeout: Duration) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().ok()?;
        let now = Instant::now();
        let (fresh, stale): (Vec<_>, Vec<_>) = idle
            .drain(..)
            .partition(|(_, since)| now.duration_since(*since) < self.idle_timeout);
        *idle = fresh;
        let conn = idle.pop().map(|(conn, _)| conn);
        drop(idle);
        for (conn, _) in stale {
            quit_in_background(conn, timeout);
        }
        conn
    }

    fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// Keeps a session that just delivered, or ends it politely (QUIT, in the background so the
    /// delivery does not wait for the goodbye) when the pool is full or disabled.
    fn put(&self, conn: AsyncSmtpConnection, timeout: Duration) {
        let mut conn = Some(conn);
        if !conn.as_ref().is_some_and(AsyncSmtpConnection::has_broken)
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
            && let Some(c) = conn.take()
        {
            idle.push((c, Instant::now()));
        }
        if let Some(c) = conn {
            quit_in_background(c, timeout);
        }
    }
}

/// Ends a session with QUIT (RFC 5321 §4.1.1.10) without making a delivery wait for it.
fn quit_in_background(mut conn: AsyncSmtpConnection, timeout: Duration) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(timeout, conn.quit()).await;
    });
}
