//! Just enough of JSON to find the string tokens of a body: one pass that
//! checks the body is JSON (RFC 8259) and names each string as it passes
//! it, a key or a value, without building or re-serialising anything.
//! Strings, most of a body's bytes, are crossed with SIMD searches for
//! their end; only structure is looked at byte by byte.

use std::borrow::Cow;
use std::ops::Range;

/// What a string token is in its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// An object member's name.
    Key,
    /// The value of the member whose key was reported just before.
    MemberValue,
    /// An array element, or the whole document.
    Element,
}

/// The body is not one JSON value.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct NotJson;

/// Nesting deeper than this is refused (the scan recurses).
const MAX_DEPTH: usize = 128;

/// Check that `body` is one JSON value (whitespace around it allowed) and
/// call `found` with the range of each string token (quotes included) and
/// its role, in document order. `found` may have been called before an
/// error further on is found.
pub(super) fn each_string(
    body: &[u8],
    found: impl FnMut(Range<usize>, Role),
) -> Result<(), NotJson> {
    let mut scanner = Scanner {
        body,
        at: 0,
        depth: 0,
        found,
    };
    scanner.value(Role::Element)?;
    scanner.whitespace();
    match scanner.at == body.len() {
        true => Ok(()),
        false => Err(NotJson),
    }
}

struct Scanner<'a, F> {
    body: &'a [u8],
    at: usize,
    depth: usize,
    found: F,
}

impl<F: FnMut(Range<usize>, Role)> Scanner<'_, F> {
    fn peek(&self) -> Result<u8, NotJson> {
        self.body.get(self.at).copied().ok_or(NotJson)
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.body.get(self.at) {
            self.at += 1;
        }
    }

    /// Whitespace, then `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        self.whitespace();
        let next = self.body.get(self.at) == Some(&byte);
        self.at += usize::from(next);
        next
    }

    fn value(&mut self, role: Role) -> Result<(), NotJson> {
        self.whitespace();
        match self.peek()? {
            b'{' => self.nested(Self::object),
            b'[' => self.nested(Self::array),
            b'"' => {
                let token = self.string()?;
                (self.found)(token, role);
                Ok(())
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(NotJson),
        }
    }

    fn nested(&mut self, inside: fn(&mut Self) -> Result<(), NotJson>) -> Result<(), NotJson> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(NotJson);
        }
        self.at += 1;
        inside(self)?;
        self.depth -= 1;
        Ok(())
    }

    /// After `{`: members, then `}`.
    fn object(&mut self) -> Result<(), NotJson> {
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            self.whitespace();
            if self.peek()? != b'"' {
                return Err(NotJson);
            }
            let key = self.string()?;
            (self.found)(key, Role::Key);
            if !self.eat(b':') {
                return Err(NotJson);
            }
            self.value(Role::MemberValue)?;
            if self.eat(b'}') {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err(NotJson);
            }
        }
    }

    /// After `[`: elements, then `]`.
    fn array(&mut self) -> Result<(), NotJson> {
        if self.eat(b']') {
            return Ok(());
        }
        loop {
            self.value(Role::Element)?;
            if self.eat(b']') {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err(NotJson);
            }
        }
    }

    /// At `"`: the string token's range, quotes included. Its end is found
    /// with a SIMD search; its bytes are then checked for control
    /// characters (not allowed unescaped) in a loop the compiler
    /// vectorises, and each escape for its form.
    fn string(&mut self) -> Result<Range<usize>, NotJson> {
        let start = self.at;
        let mut at = start + 1;
        loop {
            let rest = self.body.get(at..).ok_or(NotJson)?;
            let stop = memchr::memchr2(b'"', b'\\', rest).ok_or(NotJson)?;
            let plain = rest.get(..stop).ok_or(NotJson)?;
            if plain.iter().fold(false, |control, &b| control | (b < 0x20)) {
                return Err(NotJson);
            }
            at += stop;
            if self.body.get(at) == Some(&b'"') {
                self.at = at + 1;
                return Ok(start..self.at);
            }
            at += 1 + escape_len(self.body.get(at + 1..).unwrap_or_default())?;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), NotJson> {
        match self.body.get(self.at..self.at + word.len()) == Some(word) {
            true => {
                self.at += word.len();
                Ok(())
            }
            false => Err(NotJson),
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), NotJson> {
        self.at += usize::from(self.body.get(self.at) == Some(&b'-'));
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return Err(NotJson),
        }
        if self.body.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.body.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.body.get(self.at) {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.body.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), NotJson> {
        let start = self.at;
        self.digits();
        match self.at > start {
            true => Ok(()),
            false => Err(NotJson),
        }
    }
}

/// The length of an escape after its backslash: `"\/bfnrt` are one byte,
/// `uXXXX` five.
fn escape_len(after_backslash: &[u8]) -> Result<usize, NotJson> {
    match after_backslash.first() {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(1),
        Some(b'u') => match after_backslash.get(1..5) {
            Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => Ok(5),
            _ => Err(NotJson),
        },
        _ => Err(NotJson),
    }
}

/// The inside of a string token, without its quotes.
pub(super) fn inside(token: &[u8]) -> &[u8] {
    let inner = token.strip_prefix(b"\"").unwrap_or(token);
    inner.strip_suffix(b"\"").unwrap_or(inner)
}

/// The value of a string token. Tokens without escapes (nearly all) are
/// borrowed; the rest are decoded by serde_json, so `\/` and `\u002f`
/// spellings of a URL match too.
pub(super) fn decode_string_token(token: &[u8]) -> Option<Cow<'_, str>> {
    let inner = inside(token);
    if memchr::memchr(b'\\', inner).is_some() {
        serde_json::from_slice::<String>(token).ok().map(Cow::Owned)
    } else {
        std::str::from_utf8(inner).ok().map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strings `each_string` reports, with their roles; `None` when
    /// it says the body is not JSON.
    fn strings(body: &str) -> Option<Vec<(&str, Role)>> {
        let mut found = Vec::new();
        each_string(body.as_bytes(), |range, role| {
            found.push((&body[range], role));
        })
        .ok()?;
        Some(found)
    }

    #[test]
    fn strings_are_reported_with_their_roles() {
        use Role::*;
        assert_eq!(
            strings(r#" {"a": "x", "b": ["y", {"c": "z"}, 1, "w"], "d": {"e": "v"}} "#),
            Some(vec![
                (r#""a""#, Key),
                (r#""x""#, MemberValue),
                (r#""b""#, Key),
                (r#""y""#, Element),
                (r#""c""#, Key),
                (r#""z""#, MemberValue),
                (r#""w""#, Element),
                (r#""d""#, Key),
                (r#""e""#, Key),
                (r#""v""#, MemberValue),
            ])
        );
        assert_eq!(strings(r#""top""#), Some(vec![(r#""top""#, Element)]));
        assert_eq!(
            strings(r#"["a\"b\\", "\u00e9\/"]"#),
            Some(vec![(r#""a\"b\\""#, Element), (r#""\u00e9\/""#, Element)])
        );
    }

    /// Whatever serde_json accepts is accepted, whatever it refuses is
    /// refused: the scan is only ever trusted on JSON.
    #[test]
    fn accepts_exactly_what_serde_json_accepts() {
        let cases = [
            "",
            " ",
            "{",
            "}",
            "[",
            "[]",
            "{}",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":1 \"b\":2}",
            "{1:2}",
            "[1 2]",
            "\"a",
            "\"a\\\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12G4\"",
            "\"\\u00e9\"",
            "\"a\tb\"",
            "\"a\u{1}b\"",
            "\"a\u{7f}b\"",
            "tru",
            "true",
            "truex",
            "nul",
            "null",
            "false",
            "-",
            "-0",
            "01",
            "1.",
            "1.5",
            ".5",
            "1e",
            "1e+",
            "1E-7",
            "-12.5e3",
            "0x10",
            "+1",
            "[true,false,null]",
            "\u{feff}[]",
            "[] []",
            "[]x",
            " \n\t\r[1] \r\n",
            "[\"é\"]",
            "{\"a\":[{}]}",
        ];
        for body in cases {
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok();
            assert_eq!(strings(body).is_some(), serde, "{body:?}");
        }
    }

    /// The scan recurses: nesting is bounded so that no body can exhaust
    /// the stack (serde_json bounds it too). Such a body is passed on as
    /// it came.
    #[test]
    fn nesting_is_bounded() {
        let nested = |depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(strings(&nested(MAX_DEPTH)).is_some());
        assert!(strings(&nested(MAX_DEPTH + 1)).is_none());
        assert!(strings(&"[".repeat(100_000)).is_none());
    }

    #[test]
    fn only_escaped_tokens_are_decoded_by_serde_json() {
        assert!(matches!(
            decode_string_token(br#""plain""#),
            Some(Cow::Borrowed("plain"))
        ));
        assert_eq!(
            decode_string_token(br#""a\/b\u0041""#).as_deref(),
            Some("a/bA")
        );
        assert_eq!(decode_string_token(b"\"\xff\""), None);
        assert_eq!(decode_string_token(br#""\ud800""#), None);
    }
}
