//! Just enough of a JSON scanner to find string tokens in a body that is
//! valid JSON (serde_json has checked it), without re-serialising it.

use std::borrow::Cow;

/// Index just past the closing quote of the string token opening at
/// `start`. Only valid on well-formed JSON, where an escape is always a
/// backslash plus at least one byte and the closing quote exists.
pub(super) fn string_token_end(body: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match body.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// In valid JSON a string is an object key exactly when the next
/// non-whitespace byte is ':'.
pub(super) fn is_object_key(body: &[u8], token_end: usize) -> bool {
    body.get(token_end..)
        .unwrap_or_default()
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        == Some(&b':')
}

/// The value of a string token. Tokens without escapes (nearly all) are
/// borrowed; the rest are decoded by serde_json, so `\/` and `\u002f`
/// spellings of a URL match too.
pub(super) fn decode_string_token(token: &[u8]) -> Option<Cow<'_, str>> {
    let inner = token.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'\\') {
        serde_json::from_slice::<String>(token).ok().map(Cow::Owned)
    } else {
        std::str::from_utf8(inner).ok().map(Cow::Borrowed)
    }
}
