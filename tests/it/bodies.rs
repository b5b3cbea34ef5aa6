//! Large bodies stream; small ones are replayed after a 401; the limit is exact.

use http::{Method, Request};

use crate::common::*;

#[tokio::test]
async fn a_64_mib_upload_streams_through_without_being_held() {
    let stack = Stack::start().await;
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    let before_kib = stack.proxy.memory_kib("VmRSS").expect("VmRSS");

    let len: u64 = 64 * 1024 * 1024;
    let response = put_pattern(&stack, len).await.unwrap();
    assert_eq!(response.status, 200, "{response:?}");

    let seen = stack.seen();
    let upload = seen.last().unwrap();
    assert_eq!(upload.body_len, len);
    assert_eq!(upload.body_sha256, PatternBody::sha256(len));
    let peak_kib = stack.proxy.memory_kib("VmHWM").expect("VmHWM");
    let growth_mib = peak_kib.saturating_sub(before_kib) / 1024;
    assert!(
        growth_mib < 16,
        "the proxy grew by {growth_mib} MiB for a 64 MiB body"
    );
}

/// PUT `len` pattern bytes to the object store, streamed as they are made.
async fn put_pattern(
    stack: &Stack,
    len: u64,
) -> Result<TestResponse, hyper_util::client::legacy::Error> {
    put_body(stack, PatternBody::new(len)).await
}

/// PUT `body` (with its Content-Length) to the object store.
async fn put_body(
    stack: &Stack,
    body: PatternBody,
) -> Result<TestResponse, hyper_util::client::legacy::Error> {
    let client = http_client::<PatternBody>();
    let mut request = Request::new(body);
    *request.method_mut() = Method::PUT;
    *request.uri_mut() = format!("{}/object-store/c/big", stack.proxy.url)
        .parse()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {ANY_KEY}").parse().unwrap(),
    );
    Ok(TestResponse::read(client.request(request).await?).await)
}

/// POST `len` bytes after every token was revoked: the status, how many
/// times the upstream saw the POST, and (after a replay) that the replayed
/// body and a new token arrived.
async fn post_after_revoke(stack: &Stack, len: usize) -> (u16, usize) {
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    stack.keystone.revoke_all();
    let before = stack.seen().len();
    let body: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
    let response = stack.post("/compute/servers", ANY_KEY, body.clone()).await;
    let seen = &stack.seen()[before..];
    if response.status == 200 {
        let [refused, replayed] = seen else {
            panic!("two attempts: {seen:?}")
        };
        assert!(!refused.token_accepted && replayed.token_accepted);
        assert_ne!(
            refused.token_sha256, replayed.token_sha256,
            "a new token was used"
        );
        assert_eq!(
            replayed.body_sha256,
            sha256_hex(&body),
            "replayed body differs"
        );
        assert_eq!(replayed.body_len, len as u64);
    }
    (response.status.as_u16(), seen.len())
}

#[tokio::test]
async fn a_body_is_replayed_after_a_401() {
    let stack = Stack::start().await;
    assert_eq!(post_after_revoke(&stack, 1_000_000).await, (200, 2));
}

#[tokio::test]
async fn body_at_the_limit_is_replayed_one_byte_more_is_not() {
    let stack = Stack::start_with(|config| {
        config.set("upstream.retry_body_limit", "4KiB");
    })
    .await;
    // The upstream reads each body before refusing it: the whole body has
    // gone by when the 401 comes, whatever the timing.
    stack.upstream.set_read_before_401(true);
    assert_eq!(post_after_revoke(&stack, 4096).await, (200, 2));
    assert_eq!(post_after_revoke(&stack, 0).await, (200, 2));
    assert_eq!(post_after_revoke(&stack, 1).await, (200, 2));
    // Too big to replay: the 401 is passed through after one attempt,
    // marked so...
    assert_eq!(post_after_revoke(&stack, 4097).await, (401, 1));
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    stack.keystone.revoke_all();
    let response = stack
        .post("/compute/servers", ANY_KEY, vec![0u8; 4097])
        .await;
    assert_eq!(response.status, 401);
    assert_eq!(response.headers["x-proxy-retry"], "not-replayable");
    // ...but the refused token was dropped, so the next request works.
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
}

const BIG: u64 = 256 * 1024 * 1024;

#[tokio::test]
async fn a_256_mib_upload_arrives_whole_through_a_renewal() {
    let stack = Stack::start_with(|config| {
        config.set("upstream.retry_body_limit", "256MiB");
    })
    .await;
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    stack.keystone.revoke_all();
    let before = stack.seen().len();
    let response = put_pattern(&stack, BIG).await.unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    let seen = &stack.seen()[before..];
    let [refused, replayed] = seen else {
        panic!("two attempts: {seen:?}")
    };
    assert!(!refused.token_accepted && replayed.token_accepted);
    assert_eq!(replayed.body_len, BIG);
    assert_eq!(replayed.body_sha256, PatternBody::sha256(BIG));
}

/// A sized upload far over `retry_body_limit` that the upstream refuses
/// at its headers (keystonemiddleware does) is replayed: little of it had
/// been sent when the 401 came. The client sends its first MiB, then the
/// rest only once the proxy is renewing the token, so the 401 surely came
/// first.
#[tokio::test]
async fn a_sized_upload_over_the_limit_refused_early_is_replayed_whole() {
    const LEN: u64 = 100 * 1024 * 1024;
    let stack = std::sync::Arc::new(Stack::start().await);
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    stack.keystone.revoke_all();
    // A renewal that takes a while, as a real Keystone's does: the client
    // goes on sending meanwhile, and the refused attempt must not take it.
    stack
        .keystone
        .set_login_delay(std::time::Duration::from_millis(500));
    let (before, logins) = (stack.seen().len(), stack.keystone.logins());
    let watching = stack.clone();
    let renewing = async move {
        let renewing = || watching.keystone.logins() > logins;
        assert!(eventually(std::time::Duration::from_secs(10), renewing).await);
    };
    let response = put_body(&stack, PatternBody::gated(LEN, 1024 * 1024, renewing))
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    let seen = &stack.seen()[before..];
    let [refused, replayed] = seen else {
        panic!("two attempts: {seen:?}")
    };
    assert!(!refused.token_accepted && replayed.token_accepted);
    assert_eq!(replayed.body_len, LEN);
    assert_eq!(replayed.body_sha256, PatternBody::sha256(LEN));
}

/// When more than `retry_body_limit` had been sent before the 401 (the
/// upstream read it all first), the request cannot be replayed: the
/// upstream's 401 comes back marked, after one attempt, and the next
/// request gets a new token.
#[tokio::test]
async fn a_sized_upload_refused_after_the_limit_gets_the_marked_401() {
    let stack = Stack::start_with(|config| {
        config.set("upstream.retry_body_limit", "64KiB");
    })
    .await;
    stack.upstream.set_read_before_401(true);
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    stack.keystone.revoke_all();
    let before = stack.seen().len();
    let response = put_pattern(&stack, 1024 * 1024).await.unwrap();
    assert_eq!(response.status, 401, "{response:?}");
    assert_eq!(response.proxy_error(), None, "the upstream's own 401");
    assert_eq!(response.headers["x-proxy-retry"], "not-replayable");
    let seen = &stack.seen()[before..];
    assert_eq!(seen.len(), 1, "never replayed: {seen:?}");
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
}
