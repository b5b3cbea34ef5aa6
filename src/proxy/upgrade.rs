//! A protocol switch (a console's WebSocket): the tunnel that copies
//! bytes both ways once the upstream agreed.

use bytes::Bytes;
use http::{Response, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::answer::{ResponseBody, from_bytes};
use crate::error::ProxyError;
use crate::forward::{PooledBody, headers};

/// The upstream agreed to switch protocols (a console's WebSocket):
/// the client gets the 101, and from then on the proxy copies bytes both
/// ways until either side closes. The token went with the request that
/// opened the tunnel; what flows inside is the two ends' business.
pub(super) fn switch_protocols(
    mut response: Response<PooledBody>,
    client: Option<OnUpgrade>,
) -> Result<Response<ResponseBody>, ProxyError> {
    // Only an HTTP/1.1 WebSocket request the proxy forwarded as one can be
    // switched, and only to a WebSocket: anything else would tunnel raw
    // bytes nobody asked for.
    let websocket = response
        .headers()
        .get(header::UPGRADE)
        .is_some_and(headers::names_websocket);
    let Some(client) = client.filter(|_| websocket) else {
        return Err(ProxyError::UpstreamUnavailable(
            "the upstream switched protocols though no WebSocket was asked for".into(),
        ));
    };
    let upstream = hyper::upgrade::on(&mut response);
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => return tracing::debug!(%error, "protocol switch failed"),
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((sent, received)) => tracing::debug!(sent, received, "tunnel closed"),
            Err(error) => tracing::debug!(%error, "tunnel ended with an error"),
        }
    });
    let (mut parts, _empty) = response.into_parts();
    let protocol = parts.headers.get(header::UPGRADE).cloned();
    headers::clean_response_headers(&mut parts.headers)?;
    if let Some(protocol) = protocol {
        headers::keep_upgrade(&mut parts.headers, protocol);
    }
    Ok(Response::from_parts(parts, from_bytes(Bytes::new())))
}
