//! The MLLP listener (`wardline serve --mllp-listen`).
//!
//! One task per connection, at most [`ListenerConfig::max_connections`] at
//! once (further connections are closed at once, below). Each connection is
//! served in order: a frame is read, handed to [`Engine::receive`] on a
//! blocking thread, and the ACK is written only when that returned, i.e.
//! after commit. Nothing more is read from the connection meanwhile, which is
//! the back-pressure: a sender in original mode waits for each ACK anyway,
//! and one that pipelines fills the socket buffers and is slowed by TCP.
//!
//! **Acknowledgement modes.** In original mode (MSH-15 and MSH-16 empty)
//! the one reply is the ACK (`AA`/`AE`/`AR`). In enhanced mode (either
//! present) the replies are written back to back on the same connection:
//! first the commit ACK (`CA`/`CE`/`CR`) when MSH-15 asks for it, then the
//! application ACK (`AA`/`AE`/`AR`) when MSH-16 does, each its own MLLP
//! frame with its own MSH-10. Both are written only after the message and
//! its record are committed (Wardline commits and applies in one
//! transaction, so the application outcome is known when the commit ACK
//! goes). Wardline does not open a connection back to the sender for the
//! application ACK (it has no address for it): a sender in enhanced mode
//! reads it from this connection after the commit ACK. When neither is
//! wanted (`NE`/`NE`, or `ER` on success) nothing is written and the next
//! frame is read.
//!
//! Framing errors never close a healthy connection: bytes outside a frame
//! are dropped with a warning; a frame over [`ListenerConfig::max_frame`]
//! is answered `AR` (from whatever MSH it starts with) and skipped.
//!
//! **Slow and idle senders (issue 21).** A connection over
//! [`ListenerConfig::max_connections`] in all, or over
//! [`ListenerConfig::max_per_address`] from one address, is closed as soon
//! as it is accepted (the listener goes on accepting and serving the
//! others; an accept error — out of file descriptors — is waited out, never
//! the end of the loop). A connection that completes no message for
//! [`ListenerConfig::idle_timeout`] (bytes that never make a message do not
//! keep it open) is closed, and so is one whose frame, once its start block
//! has arrived, is not finished within [`ListenerConfig::frame_timeout`],
//! or that does not take its ACK within that time. Nothing of an unfinished
//! frame was applied or acknowledged, so the sender resends it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use wardline_hl7::mllp::{FrameDecoder, FrameError, encode_frame};
use wardline_hl7::{AckCode, ParseError};

use crate::engine::Engine;
use crate::metrics::METRICS;

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Connections open at once, in all; more are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one address (0: no limit).
    pub max_per_address: usize,
    pub max_frame: usize,
    /// A connection that completes no message for this long is closed.
    pub idle_timeout: Duration,
    /// A frame, once started, must end within this; an ACK must be taken
    /// within it.
    pub frame_timeout: Duration,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            max_connections: 256,
            max_per_address: 64,
            max_frame: 16 << 20,
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(30),
        }
    }
}

/// Open connections, in all and per address (the same counting as
/// `wardline_http::connections::ConnectionLimits`; the two adapters do not
/// depend on each other).
struct Limits {
    max_total: usize,
    max_per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it frees its place.
struct Admitted {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Limits {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.0 >= self.max_total {
            return None;
        }
        let n = open.1.entry(ip).or_insert(0);
        if self.max_per_address > 0 && *n >= self.max_per_address {
            return None;
        }
        *n += 1;
        open.0 += 1;
        Some(Admitted {
            limits: self.clone(),
            ip,
        })
    }
}

impl Drop for Admitted {
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

/// Serves MLLP on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>, cfg: ListenerConfig) {
    let limits = Arc::new(Limits {
        max_total: cfg.max_connections.max(1),
        max_per_address: cfg.max_per_address,
        open: Mutex::new((0, HashMap::new())),
    });
    // Refusals are a warning at most every 10 s, with how many since.
    let mut last_warned: Option<Instant> = None;
    let mut refused: u64 = 0;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors nothing can be accepted until a
                // connection closes: wait a little rather than spin.
                tracing::warn!(error = %e, "MLLP accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(admitted) = limits.admit(peer.ip()) else {
            refused += 1;
            tracing::debug!(%peer, "MLLP connection refused: too many connections");
            if last_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                tracing::warn!(
                    %peer,
                    refused,
                    "MLLP connections refused (over the limit per address or in all; see --mllp-max-connections*)"
                );
                last_warned = Some(Instant::now());
                refused = 0;
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let engine = engine.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            tracing::debug!(%peer, "MLLP connection");
            if let Err(e) = connection(stream, engine, &cfg).await {
                tracing::info!(%peer, error = %e, "MLLP connection ended");
            }
            drop(admitted);
        });
    }
}

/// Writes one reply, or fails if the peer does not take it in time.
async fn reply(stream: &mut TcpStream, bytes: &[u8], within: Duration) -> std::io::Result<()> {
    match tokio::time::timeout(within, stream.write_all(&encode_frame(bytes))).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the sender did not take its ACK in time",
        )),
    }
}

async fn connection(
    mut stream: TcpStream,
    engine: Arc<Engine>,
    cfg: &ListenerConfig,
) -> std::io::Result<()> {
    let mut decoder = FrameDecoder::new(cfg.max_frame);
    let mut buf = vec![0u8; 64 * 1024];
    // Moved on by each complete message only, never by bytes alone.
    let mut idle_deadline = Instant::now() + cfg.idle_timeout;
    let mut frame_deadline: Option<Instant> = None;
    loop {
        let mut completed = false;
        while let Some(frame) = decoder.next_frame() {
            completed = true;
            let engine = engine.clone();
            let receipt = tokio::task::spawn_blocking(move || engine.receive(&frame))
                .await
                .map_err(std::io::Error::other)?;
            METRICS.count(&receipt);
            for r in &receipt.replies {
                reply(&mut stream, r.as_bytes(), cfg.frame_timeout).await?;
            }
        }
        if completed {
            idle_deadline = Instant::now() + cfg.idle_timeout;
            // A frame begun behind the ones just handled has its own time.
            frame_deadline = None;
        }
        // A frame once begun has its whole frame timeout, whatever the idle
        // deadline; between frames the idle deadline holds.
        frame_deadline = if decoder.mid_frame() {
            Some(frame_deadline.unwrap_or_else(|| Instant::now() + cfg.frame_timeout))
        } else {
            None
        };
        let deadline = frame_deadline.unwrap_or(idle_deadline);
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => {
                if frame_deadline.is_some() {
                    tracing::warn!(
                        pending = decoder.pending(),
                        "MLLP frame not finished in time, closing (nothing of it was applied)"
                    );
                } else {
                    tracing::info!("MLLP connection idle, closing");
                }
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        match decoder.push(&buf[..n]) {
            Ok(()) => {}
            Err(FrameError::Garbage(bytes)) => {
                tracing::warn!(bytes, "bytes outside an MLLP frame dropped");
            }
            Err(FrameError::TooLong(limit)) => {
                let head = decoder.take_oversize_head();
                tracing::warn!(limit, "oversize MLLP frame refused");
                let err = ParseError {
                    line: 1,
                    segment: None,
                    field: None,
                    message: format!("message longer than the {limit} byte limit; not processed"),
                };
                let r = wardline_hl7::ack_unparsed(&head, AckCode::AR, &err).encode();
                reply(&mut stream, r.as_bytes(), cfg.frame_timeout).await?;
            }
        }
    }
}
