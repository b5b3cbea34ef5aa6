//! The HTTP side of an accepted connection: HTTP/1.1 served by hyper's own
//! connection when the first bytes say it is HTTP/1, else hyper-util's
//! `auto` connection, which reads the first bytes again to choose between
//! HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN's choice over TLS).
//!
//! Nearly every client of the proxy speaks HTTP/1.1 in plain text, and
//! `auto` costs on every read (its rewind buffer, its version state): about
//! 800 instructions per request. Both serve upgrades (WebSocket tunnels)
//! and keep the same limits; the head deadline of an HTTP/1 connection is
//! kept by hyper's timer under `auto`, by the connection's own
//! ([`super::deadline`]) otherwise.

use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

use crate::config::ListenSettings;

/// HTTP/2 pings to notice dead peers on idle connections.
const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Streams one HTTP/2 connection may have open (hyper's default is 200;
/// stated here so the bound is visible).
const H2_MAX_STREAMS: u32 = 200;

/// What the first bytes of a connection tell of its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    /// A request line: HTTP/1.
    Http1,
    /// The HTTP/2 preface, too few bytes to tell, TLS, or bytes not looked at.
    Unknown,
}

impl Protocol {
    /// From the first bytes (as many as have come): HTTP/2 with prior
    /// knowledge starts with `PRI * HTTP/2.0`, which no HTTP/1 method
    /// begins with; three bytes tell them apart.
    pub(super) fn of(first: &[u8]) -> Protocol {
        match first.get(..3) {
            Some(start) if start != b"PRI" => Protocol::Http1,
            _ => Protocol::Unknown,
        }
    }
}

/// The connection builders of a listener, with the configured limits.
pub(super) struct Builders {
    pub(super) http1: http1::Builder,
    pub(super) auto: auto::Builder<TokioExecutor>,
}

impl Builders {
    pub(super) fn new(listen: &ListenSettings) -> Builders {
        // The two HTTP/1 builders are different types with the same setters.
        macro_rules! http1_limits {
            ($builder:expr) => {
                $builder
                    .max_buf_size(listen.max_header_bytes)
                    .max_headers(listen.max_headers)
            };
        }
        // Its head deadline is the connection's own (see `deadline`).
        let mut http1 = http1::Builder::new();
        http1_limits!(http1).header_read_timeout(None);
        let mut auto = auto::Builder::new(TokioExecutor::new());
        http1_limits!(auto.http1())
            .timer(TokioTimer::new())
            .header_read_timeout(listen.header_read_timeout);
        auto.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(listen.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(H2_MAX_STREAMS)
            .keep_alive_interval(H2_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT);
        Builders { http1, auto }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_bytes_tell_http1_from_the_http2_preface() {
        for start in [&b"GET /"[..], b"POS", b"PUT", b"PATCH", b"OPTIONS", b"DEL"] {
            assert_eq!(Protocol::of(start), Protocol::Http1, "{start:?}");
        }
        for unsure in [&b"PRI * HTTP/2.0\r\n"[..], b"PRI", b"GE", b"G", b""] {
            assert_eq!(Protocol::of(unsure), Protocol::Unknown, "{unsure:?}");
        }
    }
}
