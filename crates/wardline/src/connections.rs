//! Issue 21 (timeouts): `serve`'s flags for slow and idle clients, on HTTP
//! and on MLLP (`wardline_http::ConnectionConfig`,
//! `wardline_integration::ListenerConfig`).

use std::time::Duration;

use clap::Args;

/// Seconds, whole or not (`10`, `0.5`): tests set short ones.
fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(v > 0.0 && v.is_finite() && v <= 86_400.0) {
        return Err(format!(
            "'{s}': a number of seconds above 0 and at most 86400 is needed"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

#[derive(Args, Debug, Clone)]
pub struct ConnectionArgs {
    /// HTTP: seconds a client has to send its request line and headers (and
    /// to finish a TLS handshake); a kept-alive connection waiting for its
    /// next request is closed after as long.
    #[arg(long, env = "WARDLINE_HTTP_HEADER_TIMEOUT", value_name = "SECONDS", default_value = "10", value_parser = seconds)]
    pub http_header_timeout: Duration,
    /// HTTP: the longest gap, in seconds, between two pieces of a request
    /// body; a body that stalls is answered 408 and its connection closed.
    #[arg(long, env = "WARDLINE_HTTP_BODY_TIMEOUT", value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    pub http_body_timeout: Duration,
    /// HTTP: after --http-body-timeout seconds, the least average rate of a
    /// request body in bytes a second (0: none).
    #[arg(
        long,
        env = "WARDLINE_HTTP_BODY_MIN_RATE",
        value_name = "BYTES",
        default_value_t = 512
    )]
    pub http_body_min_rate: u64,
    /// HTTP: connections open at once in all; more are answered 503 and
    /// closed at once.
    #[arg(long, env = "WARDLINE_HTTP_MAX_CONNECTIONS", value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections: u32,
    /// HTTP: connections open at once from one client address; more are
    /// answered 503 and closed at once. 0: no limit (behind a reverse proxy
    /// every client has the proxy's address: limit there instead).
    #[arg(
        long,
        env = "WARDLINE_HTTP_MAX_CONNECTIONS_PER_ADDRESS",
        value_name = "N",
        default_value_t = 64
    )]
    pub http_max_connections_per_address: u32,
    /// MLLP: seconds a connection may go without completing a message before
    /// it is closed (bytes that make no message do not count).
    #[arg(long, env = "WARDLINE_MLLP_IDLE_TIMEOUT", value_name = "SECONDS", default_value = "300", value_parser = seconds)]
    pub mllp_idle_timeout: Duration,
    /// MLLP: seconds a message has, from its start block, to arrive whole
    /// (and a sender to take its ACK); otherwise the connection is closed and
    /// nothing of the message is applied.
    #[arg(long, env = "WARDLINE_MLLP_FRAME_TIMEOUT", value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    pub mllp_frame_timeout: Duration,
    /// MLLP: connections open at once in all; more are closed at once.
    #[arg(long, env = "WARDLINE_MLLP_MAX_CONNECTIONS", value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub mllp_max_connections: u32,
    /// MLLP: connections open at once from one sender address; more are
    /// closed at once. 0: no limit.
    #[arg(
        long,
        env = "WARDLINE_MLLP_MAX_CONNECTIONS_PER_ADDRESS",
        value_name = "N",
        default_value_t = 64
    )]
    pub mllp_max_connections_per_address: u32,
}

impl ConnectionArgs {
    pub fn http(&self) -> wardline_http::ConnectionConfig {
        wardline_http::ConnectionConfig {
            header_timeout: self.http_header_timeout,
            body_timeout: self.http_body_timeout,
            body_min_rate: self.http_body_min_rate,
            max_connections: self.http_max_connections as usize,
            max_per_address: self.http_max_connections_per_address as usize,
            ..wardline_http::ConnectionConfig::default()
        }
    }

    pub fn mllp(&self) -> wardline_integration::ListenerConfig {
        wardline_integration::ListenerConfig {
            max_connections: self.mllp_max_connections as usize,
            max_per_address: self.mllp_max_connections_per_address as usize,
            idle_timeout: self.mllp_idle_timeout,
            frame_timeout: self.mllp_frame_timeout,
            ..wardline_integration::ListenerConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_positive_and_may_be_fractions() {
        assert_eq!(seconds("10").unwrap(), Duration::from_secs(10));
        assert_eq!(seconds("0.5").unwrap(), Duration::from_millis(500));
        assert!(seconds("0").unwrap_err().contains("above 0"));
        assert!(seconds("-1").is_err());
        assert!(seconds("ten").unwrap_err().contains("not a number"));
        assert!(seconds("inf").is_err());
    }
}
