//! Connections: the accept loop in front of the router. `axum::serve` has no header or
//! idle timeout, no bound on the request head and no connection limit, and spins on
//! accept errors; a public ingestion endpoint needs all four, so this drives hyper's
//! HTTP/1 server directly:
//!
//! - at most `max_connections` open at once (the rest wait in the kernel's backlog);
//! - a request head must arrive whole within `header_timeout_secs` (an idle keep-alive
//!   connection is closed after it too) and be at most `max_header_bytes` (else 431);
//! - an accept error (out of file descriptors) backs off, from 10 ms up to 1 s;
//! - on shutdown, accepting stops and open connections finish their request.
//!
//! The body's own timeout is the edge's (`http::read_body`), where the body is read.
use std::{future::Future, sync::Arc, time::Duration};

use axum::{extract::ConnectInfo, Router};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt;

use crate::{config::Config, http::proxy::TrustedProxies, http::ratelimit::ClientAddr};

/// How connections are accepted and bounded.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub max_header_bytes: usize,
}

impl Limits {
    pub fn from_config(c: &Config) -> Limits {
        Limits {
            max_connections: c.max_connections.max(1),
            header_timeout: Duration::from_secs(c.header_timeout_secs.max(1)),
            // hyper's smallest read buffer.
            max_header_bytes: c.max_header_bytes.max(8192),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open connections
/// finish (up to 30 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    proxies: TrustedProxies,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let proxies = Arc::new(proxies);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => permit.expect("never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    backoff = Duration::from_millis(10);
                    a
                }
                Err(e) => {
                    // Out of file descriptors, mostly: the error repeats at once, so wait.
                    tracing::warn!(error = %e, wait_ms = backoff.as_millis() as u64, "accept failed; backing off");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let proxies = proxies.clone();
        let service = router
            .clone()
            .map_request(move |mut req: axum::extract::Request| {
                let client = proxies.client(peer.ip(), req.headers());
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(ClientAddr(client));
                req
            });
        let conn = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(
                service.map_request(|r: hyper::Request<Incoming>| r.map(axum::body::Body::new)),
            ),
        );
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
                }
            }
        });
    }
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(31), slots.acquire_many(all)).await;
}
