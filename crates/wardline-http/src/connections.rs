//! Issue 21 (timeouts): how the server accepts and keeps connections, so that
//! slow or idle clients cannot hold what everybody else needs.
//!
//! Contract: every connection is admitted by [`ConnectionLimits`] (at most
//! [`ConnectionConfig::max_connections`] in all and
//! [`ConnectionConfig::max_per_address`] from one client address; one over
//! either limit is answered `503` at once and closed, over TLS just closed),
//! must deliver its request head within [`ConnectionConfig::header_timeout`]
//! (hyper's `header_read_timeout`, which hyper also starts when a kept-alive
//! connection waits for its next request: so it is the idle keep-alive
//! timeout too), finish its TLS handshake within the same time, and send its
//! body with no gap longer than [`ConnectionConfig::body_timeout`]
//! (tower-http's `TimeoutBody`) and, after that long, at
//! [`ConnectionConfig::body_min_rate`] bytes a second on average — or it is
//! answered `408` and closed. The accept loop never stops on an accept error:
//! out of file descriptors (`EMFILE`), it waits briefly and accepts again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::Service;
use tower_http::timeout::{TimeoutBody, TimeoutError};
use wardline_fhir::FhirError;

/// How long connections may take, and how many there may be.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// The request line and headers must arrive within this (and a kept-alive
    /// connection waiting for its next request is closed after it; a TLS
    /// handshake must end within it).
    pub header_timeout: Duration,
    /// The longest wait for the next piece of a request body.
    pub body_timeout: Duration,
    /// After `body_timeout`, a body must have arrived at this many bytes a
    /// second on average (0: no minimum).
    pub body_min_rate: u64,
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one client address (0: no limit, e.g.
    /// behind a reverse proxy, where every client has the proxy's address).
    pub max_per_address: usize,
    /// How long shutting down waits for open connections to finish.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            body_min_rate: 512,
            max_connections: 1024,
            max_per_address: 64,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The overall limit is reached.
    Total,
    /// This client address holds its limit.
    PerAddress,
}

/// Counts open connections, in all and per client address.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionGuard {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    /// `max_per_address` 0 is no limit per address.
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            max_total: max_total.max(1),
            max_per_address,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// Admits a connection from `ip`, or says which limit refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionGuard, Refused> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.0 >= self.max_total {
            return Err(Refused::Total);
        }
        let n = open.1.entry(ip).or_insert(0);
        if self.max_per_address > 0 && *n >= self.max_per_address {
            return Err(Refused::PerAddress);
        }
        *n += 1;
        open.0 += 1;
        Ok(ConnectionGuard {
            limits: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

/// What a refused plain-HTTP connection is told before it is closed.
const REFUSED_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: 41\r\n\r\ntoo many connections; try again shortly\r\n";

/// Serves `app` on `listener` with `cfg`'s limits until `shutdown` resolves
/// (then waits up to `cfg.shutdown_grace` for open connections).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    cfg: ConnectionConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::from_fn_with_state(
        BodyLimits {
            timeout: cfg.body_timeout,
            min_rate: cfg.body_min_rate,
        },
        guard_body,
    ));
    let mut make = app.into_make_service_with_connect_info::<SocketAddr>();
    let limits = ConnectionLimits::new(cfg.max_connections, cfg.max_per_address);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .keep_alive_interval(cfg.header_timeout)
        .keep_alive_timeout(cfg.header_timeout)
        .max_concurrent_streams(100);
    let graceful = GracefulShutdown::new();
    let mut refusals = RefusalLog::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let guard = match limits.admit(peer.ip()) {
            Ok(g) => g,
            Err(why) => {
                refusals.refused(peer, why, "HTTP");
                if tls.is_none() {
                    // Never waits: what the socket buffer takes now, or nothing.
                    let _ = stream.try_write(REFUSED_503);
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let svc = match make.call(peer).await {
            Ok(s) => TowerToHyperService::new(s),
            Err(never) => match never {},
        };
        match &tls {
            None => {
                let conn = graceful.watch(http1.serve_connection(TokioIo::new(stream), svc));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "HTTP connection ended");
                    }
                    drop(guard);
                });
            }
            Some(config) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(config.get_inner());
                let (http1, http2) = (http1.clone(), http2.clone());
                let watcher = graceful.watcher();
                let handshake = cfg.header_timeout;
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let io = TokioIo::new(tls);
                    let r = if h2 {
                        watcher.watch(http2.serve_connection(io, svc)).await
                    } else {
                        watcher.watch(http1.serve_connection(io, svc)).await
                    };
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "HTTPS connection ended");
                    }
                    drop(guard);
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(cfg.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("connections still open at shutdown were closed");
    }
    Ok(())
}

/// Refused connections are logged as a warning at most every 10 s (with how
/// many since the last), so an operator sees a limit reached without a flood
/// of lines under attack.
#[derive(Default)]
pub(crate) struct RefusalLog {
    last: Option<Instant>,
    since: u64,
}

impl RefusalLog {
    pub(crate) fn refused(&mut self, peer: SocketAddr, why: Refused, what: &str) {
        self.since += 1;
        tracing::debug!(%peer, ?why, "{what} connection refused: too many connections");
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            tracing::warn!(
                %peer,
                ?why,
                refused = self.since,
                "{what} connections refused (over the limit per address or in all; see --{}-max-connections*)",
                what.to_ascii_lowercase()
            );
            self.last = Some(Instant::now());
            self.since = 0;
        }
    }
}

/// An accept error never ends the loop. Out of file descriptors (or kernel
/// buffers) nothing can be accepted until a connection closes, so wait a
/// little rather than spin; anything else (a connection reset before it was
/// accepted) is the client's and the next accept goes ahead.
pub(crate) async fn accept_failed(e: &std::io::Error) {
    let exhausted = matches!(
        e.raw_os_error(),
        Some(
            23 /* ENFILE */ | 24 /* EMFILE */ | 12 /* ENOMEM */ | 105 /* ENOBUFS */
        )
    );
    if exhausted {
        tracing::warn!(error = %e, "cannot accept connections now (out of descriptors); retrying");
        tokio::time::sleep(Duration::from_millis(100)).await;
    } else {
        tracing::debug!(error = %e, "accept failed");
    }
}

#[derive(Clone, Copy)]
struct BodyLimits {
    timeout: Duration,
    min_rate: u64,
}

/// Wraps every request body in the body timeouts; a request whose body
/// stalled is answered 408 (whatever the handler made of the failed read)
/// and its connection closed.
async fn guard_body(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        // No body (a GET, most requests): nothing to time.
        return next.run(req).await;
    }
    let stalled = Arc::new(AtomicBool::new(false));
    let req = req.map(|b| {
        Body::new(GuardedBody {
            inner: Box::pin(TimeoutBody::new(limits.timeout, b)),
            started: None,
            received: 0,
            limits,
            stalled: stalled.clone(),
        })
    });
    let resp = next.run(req).await;
    if !stalled.load(Ordering::Relaxed) {
        return resp;
    }
    let e = FhirError::new(
        408,
        "timeout",
        format!(
            "the request body arrived too slowly (a gap of more than {} s, or under {} bytes a second); nothing was done — send it again",
            limits.timeout.as_secs_f64(),
            limits.min_rate
        ),
    );
    let mut r = crate::outcome_response(&e, false);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
    r
}

/// A request body under [`BodyLimits`]: tower-http's [`TimeoutBody`] (the
/// gap between frames) and, checked as each frame arrives, the average rate.
struct GuardedBody {
    inner: Pin<Box<TimeoutBody<Body>>>,
    started: Option<Instant>,
    received: u64,
    limits: BodyLimits,
    stalled: Arc<AtomicBool>,
}

/// The body stopped short of the minimum rate.
#[derive(Debug)]
struct TooSlow;

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body below the minimum rate")
    }
}

impl std::error::Error for TooSlow {}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let started = *this.started.get_or_insert_with(Instant::now);
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.received += d.len() as u64;
                }
                let elapsed = started.elapsed();
                if this.limits.min_rate > 0
                    && elapsed > this.limits.timeout
                    && (this.received as f64) < this.limits.min_rate as f64 * elapsed.as_secs_f64()
                {
                    this.stalled.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(Box::new(TooSlow))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                if e.downcast_ref::<TimeoutError>().is_some() {
                    this.stalled.store(true, Ordering::Relaxed);
                }
                Poll::Ready(Some(Err(e)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_per_address_and_in_all() {
        let l = ConnectionLimits::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = l.admit(a).unwrap();
        let _a2 = l.admit(a).unwrap();
        assert_eq!(l.admit(a).unwrap_err(), Refused::PerAddress);
        let _b1 = l.admit(b).unwrap();
        assert_eq!(l.admit(b).unwrap_err(), Refused::Total);
        drop(a1);
        assert_eq!(l.open(), 2);
        let _a3 = l.admit(a).unwrap();
        // An IPv4-mapped IPv6 address is the same client.
        let l = ConnectionLimits::new(10, 1);
        let _a = l.admit(a).unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(l.admit(mapped).unwrap_err(), Refused::PerAddress);
    }

    /// A body that keeps coming, but far under the minimum rate, is cut
    /// and answered 408 (the gap timeout alone would never fire); one at a
    /// good rate reaches the handler whole.
    #[tokio::test]
    async fn a_body_under_the_minimum_rate_is_408() {
        use tokio::io::AsyncWriteExt;
        use tower::ServiceExt;
        async fn app(limits: BodyLimits, byte_every: Duration, bytes: usize) -> Response {
            let router = Router::new()
                .route(
                    "/",
                    axum::routing::post(|body: Bytes| async move { body.len().to_string() }),
                )
                .layer(axum::middleware::from_fn_with_state(limits, guard_body));
            let (mut w, r) = tokio::io::duplex(64);
            tokio::spawn(async move {
                for _ in 0..bytes {
                    if w.write_all(b"x").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(byte_every).await;
                }
            });
            let body = Body::from_stream(tokio_util::io::ReaderStream::new(r));
            let req = Request::post("/").body(body).unwrap();
            router.oneshot(req).await.unwrap()
        }
        let limits = BodyLimits {
            timeout: Duration::from_millis(100),
            min_rate: 1_000_000,
        };
        // 1 byte every 20 ms: never a 100 ms gap, but 50 bytes a second.
        let r = app(limits, Duration::from_millis(20), 1000).await;
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(r.headers()[header::CONNECTION], "close");
        let generous = BodyLimits {
            timeout: Duration::from_secs(60),
            min_rate: 1,
        };
        let r = app(generous, Duration::from_millis(1), 20).await;
        assert_eq!(r.status(), StatusCode::OK);
        let text = axum::body::to_bytes(r.into_body(), 100).await.unwrap();
        assert_eq!(&text[..], b"20");
    }

    #[test]
    fn no_limit_per_address_when_zero() {
        let l = ConnectionLimits::new(100, 0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let g: Vec<_> = (0..100).map(|_| l.admit(a).unwrap()).collect();
        assert_eq!(l.admit(a).unwrap_err(), Refused::Total);
        drop(g);
        assert_eq!(l.open(), 0);
    }
}
