//! The HTTP front: [`api`] holds the JSON API (request → use case → response, testable with
//! `oneshot`), [`problem`] maps use-case errors to RFC 9457 problem+json once, and [`serve`]
//! owns the socket.

pub mod api;
pub mod problem;

use std::future::Future;
use std::net::SocketAddr;

pub use api::ApiState;

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api::router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
