//! Serving: the sockets of the configured fronts, and [`App::serve`], which runs every front
//! and background job until the shutdown future completes, then waits for all of them.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::shutdown::Shutdown;
use super::{App, AppError, background};
use crate::config::Config;

/// The sockets of the configured fronts, bound before serving (so a demo or a test can bind
/// port 0 and learn the port).
#[derive(Default)]
pub struct Listeners {
    pub http: Option<TcpListener>,
    pub ldap: Option<TcpListener>,
    pub ldaps: Option<TcpListener>,
}

impl Listeners {
    /// Binds every address in `[listen]`.
    pub async fn bind(config: &Config) -> Result<Listeners, AppError> {
        async fn bind(
            addr: Option<SocketAddr>,
            front: &'static str,
        ) -> Result<Option<TcpListener>, AppError> {
            match addr {
                None => Ok(None),
                Some(addr) => {
                    TcpListener::bind(addr)
                        .await
                        .map(Some)
                        .map_err(|source| AppError::Listen {
                            addr,
                            front,
                            source,
                        })
                }
            }
        }
        Ok(Listeners {
            http: bind(config.listen_http, "http").await?,
            ldap: bind(config.listen_ldap, "ldap").await?,
            ldaps: bind(config.listen_ldaps, "ldaps").await?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.ldap.is_none() && self.ldaps.is_none()
    }
}

impl App {
    /// Serves every bound front and runs the background jobs until `shutdown` completes; then
    /// tells all of them to stop through one [`Shutdown`] and returns once each has finished
    /// (listeners drain the requests in progress first).
    pub async fn serve(
        &self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AppError> {
        let stop = Shutdown::new();
        let mut tasks = JoinSet::new();
        if let Some(l) = listeners.http {
            tasks.spawn(self.http_server().serve(l, stop.subscribe()));
        }
        if listeners.ldap.is_some() || listeners.ldaps.is_some() {
            let server = self.ldap_server()?;
            if let Some(l) = listeners.ldap {
                tasks.spawn(server.clone().serve(l, false, stop.subscribe()));
            }
            if let Some(l) = listeners.ldaps {
                tasks.spawn(server.serve(l, true, stop.subscribe()));
            }
        }
        background::spawn_all(self, &mut tasks, &stop.subscribe());
        shutdown.await;
        stop.trigger();
        while tasks.join_next().await.is_some() {}
        // Every queued store write (audit records of the last attempts) is committed.
        self.backend.close().await;
        Ok(())
    }
}
