//! Sending a planned request and reading what came back (`Answer`,
//! `Received`), a download being checked byte by byte as it streams in.

use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode};
use http_body_util::BodyExt;

use crate::client::{HttpClient, download_byte};
use crate::plan::{Expect, Kind, Planned};

pub(crate) enum Received {
    /// The whole body.
    Whole(Bytes),
    /// A download checked as it streamed: its length, and the offset of
    /// the first wrong byte.
    Checked {
        len: usize,
        first_bad: Option<usize>,
    },
    /// The body ended with an error after this many bytes.
    Broken { error: String, received: usize },
}

pub(crate) enum Answer {
    /// No response at all: the request failed at the transport.
    NoResponse(String),
    Response {
        status: StatusCode,
        proxy_error: Option<String>,
        body: Received,
    },
}

/// The error and its causes, on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

pub(crate) async fn send(
    client: &HttpClient,
    base: &str,
    planned: Planned,
) -> (Answer, Expect, Kind) {
    let Planned {
        kind,
        method,
        path,
        headers,
        body,
        expect,
    } = planned;
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = match format!("{base}{path}").parse() {
        Ok(uri) => uri,
        Err(error) => {
            return (
                Answer::NoResponse(format!("bad URI: {error}")),
                expect,
                kind,
            );
        }
    };
    for (name, value) in headers {
        request.headers_mut().append(name, value);
    }
    let response = match client.request(request).await {
        Ok(response) => response,
        Err(error) => return (Answer::NoResponse(error_chain(&error)), expect, kind),
    };
    let status = response.status();
    let proxy_error = response
        .headers()
        .get("x-proxy-error")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut body = response.into_body();
    let stream_check =
        matches!(expect, Expect::Bytes(_)) && proxy_error.is_none() && status == StatusCode::OK;
    let mut whole = BytesMut::new();
    let mut len = 0usize;
    let mut first_bad = None;
    let received = loop {
        match body.frame().await {
            None if stream_check => break Received::Checked { len, first_bad },
            None => break Received::Whole(whole.freeze()),
            Some(Err(error)) => {
                break Received::Broken {
                    error: error_chain(&error),
                    received: len,
                };
            }
            Some(Ok(frame)) => {
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                if stream_check {
                    if first_bad.is_none() {
                        first_bad = data
                            .iter()
                            .enumerate()
                            .find(|&(i, &b)| b != download_byte(len + i))
                            .map(|(i, _)| len + i);
                    }
                } else if whole.len() < 8 * 1024 * 1024 {
                    whole.extend_from_slice(data);
                }
                len += data.len();
            }
        }
    };
    (
        Answer::Response {
            status,
            proxy_error,
            body: received,
        },
        expect,
        kind,
    )
}
