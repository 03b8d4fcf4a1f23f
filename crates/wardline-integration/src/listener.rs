//! The MLLP listener (`wardline serve --mllp-listen`).
//!
//! One task per connection, at most [`ListenerConfig::max_connections`] at
//! once (further connections wait in the kernel backlog). Each connection is
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
//! is answered `AR` (from whatever MSH it starts with) and skipped. A
//! connection idle for [`ListenerConfig::idle_timeout`] is closed.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use wardline_hl7::mllp::{FrameDecoder, FrameError, encode_frame};
use wardline_hl7::{AckCode, ParseError};

use crate::engine::Engine;
use crate::metrics::METRICS;

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub max_connections: usize,
    pub max_frame: usize,
    pub idle_timeout: Duration,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            max_connections: 256,
            max_frame: 16 << 20,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Serves MLLP on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>, cfg: ListenerConfig) {
    let permits = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    loop {
        let permit = match permits.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        };
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "MLLP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let engine = engine.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            tracing::debug!(%peer, "MLLP connection");
            if let Err(e) = connection(stream, engine, &cfg).await {
                tracing::info!(%peer, error = %e, "MLLP connection ended");
            }
            drop(permit);
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    engine: Arc<Engine>,
    cfg: &ListenerConfig,
) -> std::io::Result<()> {
    let mut decoder = FrameDecoder::new(cfg.max_frame);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Some(frame) = decoder.next_frame() {
            let engine = engine.clone();
            let receipt = tokio::task::spawn_blocking(move || engine.receive(&frame))
                .await
                .map_err(std::io::Error::other)?;
            METRICS.count(&receipt);
            for reply in &receipt.replies {
                stream.write_all(&encode_frame(reply.as_bytes())).await?;
            }
        }
        let n = match tokio::time::timeout(cfg.idle_timeout, stream.read(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => {
                tracing::info!("MLLP connection idle, closing");
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
                let reply = wardline_hl7::ack_unparsed(&head, AckCode::AR, &err).encode();
                stream.write_all(&encode_frame(reply.as_bytes())).await?;
            }
        }
    }
}
