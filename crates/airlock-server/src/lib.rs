#![doc = include_str!("../README.md")]

mod error;
mod handlers;
pub mod route;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use airlock_registry::Registry;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};

pub use error::ApiError;

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The URL clients reach the registry at, ending in `/`. `None`: derived from each
    /// request's `Host` header (fine on loopback; set it behind a proxy).
    pub public_url: Option<String>,
    /// Largest request body accepted (publish bodies carry the tarball in base64).
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            max_body_bytes: 100 * 1024 * 1024,
        }
    }
}

/// What every request shares. Axum clones the state for each request: one reference count
/// here instead of one per field of the registry.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub registry: Registry,
    pub config: ServerConfig,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The whole HTTP application.
pub fn router(registry: Registry, config: ServerConfig) -> Router {
    let state = AppState(Arc::new(Shared { registry, config }));
    // Tarballs are gzip already; tiny bodies are not worth it.
    let compress =
        SizeAbove::new(256).and(NotForContentType::const_new("application/octet-stream"));
    Router::new()
        .fallback(handlers::dispatch)
        .with_state(state)
        // We read bodies ourselves with our own limit and error.
        .layer(DefaultBodyLimit::disable())
        // No per-request trace layer: it cost a few percent of a small tarball GET, and
        // failures are logged where they happen (`ApiError` logs every internal error).
        .layer(CompressionLayer::new().gzip(true).compress_when(compress))
}

/// Serves `app` on an already-bound listener until `shutdown` resolves, then finishes the
/// requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY a small body written after its headers waits for the client's
    // delayed ACK (Nagle): ~40 ms per small tarball on a kept-alive connection.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
