//! The HTTP listener: HTTP/1.1 on hyper with keep-alive, the API's router as the service, and
//! the socket's limits. A client must send a request's headers within `header_read_timeout`
//! (slowloris; this also ends idle keep-alive connections), its body within the API's body read
//! timeout ([`super::body`]); connections are capped overall and per client address
//! ([`Admission`]), refused ones closed on arrival. At shutdown, requests in progress and the
//! use cases they started may finish (up to 10 s); then the rest is cut.

use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::api::{ApiState, router};
use super::forwarded::{self, Network};
use crate::admission::Admission;

/// At shutdown, how long requests in progress may take to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits of the HTTP listener, from `[http]`.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// Connections one client address may hold at once.
    pub max_connections_per_client: usize,
    /// Reverse proxies whose `X-Forwarded-For` names the client ([`super::forwarded`]).
    pub trusted_proxies: Vec<Network>,
}

pub struct HttpServer {
    state: ApiState,
    limits: HttpLimits,
    admission: Admission,
}

impl HttpServer {
    pub fn new(state: ApiState, limits: HttpLimits) -> Self {
        let admission = Admission::new(
            "HTTP",
            limits.max_connections,
            limits.max_connections_per_client,
        );
        Self {
            state,
            limits,
            admission,
        }
    }

    /// Serves the API on `listener` until `shutdown` turns true (or its sender is gone), then
    /// drains: see the module comment.
    pub async fn serve(self, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        // Behind a listed proxy, the client is the one it forwards for ([`forwarded`]); for
        // anyone else `rewrite` leaves the connection's peer.
        let trusted = self.limits.trusted_proxies.clone();
        let app = router(self.state.clone()).layer(axum::middleware::from_fn(
            move |mut request: axum::extract::Request, next: axum::middleware::Next| {
                forwarded::rewrite(&mut request, &trusted);
                next.run(request)
            },
        ));
        let graceful = GracefulShutdown::new();
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .keep_alive(true);
        let mut connections = JoinSet::new();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little rather than spin.
                        tracing::warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = stopped(&mut shutdown) => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            // Over a cap: dropped here, before hyper reads a byte or allocates a buffer.
            let Some(place) = self.admission.admit(peer) else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            // The peer goes into each request's extensions; the router itself is shared by
            // every connection (wrapping it in a layer per connection rebuilt its routes:
            // about 9 KB each, which a hundred thousand held long-polls would feel).
            let router = app.clone();
            let service = TowerToHyperService::new(tower::service_fn(
                move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(request)
                },
            ));
            let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
            connections.spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, client = %peer, "HTTP connection ended with an error");
                }
                drop(place);
            });
        }
        drop(listener);
        // Long-polls answer and event streams end now, so their connections drain at once.
        self.state.stopping.cancel();
        self.state.tasks.close();
        let drain = async {
            graceful.shutdown().await;
            self.state.tasks.wait().await;
        };
        if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
            tracing::warn!("HTTP requests still running at shutdown were cut off");
        }
        connections.shutdown().await;
    }
}

/// Completes when `rx` says stop: `true` sent, or the sender gone.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
