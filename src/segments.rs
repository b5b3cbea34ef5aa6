//! A raw request path as the segments an upstream may see.
//!
//! The proxy forwards the rest of a path byte for byte, so it must judge it
//! the way the least careful upstream would read it. `/` always separates
//! segments; so do `%2F` (a WSGI server decodes it into `PATH_INFO`, where
//! a router sees a `/`) and `\` or `%5C` (which some servers treat as
//! `/`). Splitting on all of them is never more permissive than any one
//! reading: a dot segment hidden behind `%2F` is still found, and a rule's
//! `*` never matches a name that an upstream may see as two segments.
//!
//! Nothing here allocates: these run on every request.

/// The segments of `raw` (a path, or the rest of one after the service
/// segment), split at every separator an upstream might honour. A leading
/// separator is skipped: `/a/b` and `a/b` give `a`, `b`; `` gives none and
/// `/` gives one empty segment.
pub fn segments(raw: &str) -> Segments<'_> {
    let rest = match separator_len(raw.as_bytes()) {
        0 => raw,
        n => &raw[n..],
    };
    Segments {
        rest: Some(rest).filter(|_| !raw.is_empty()),
    }
}

/// See [`segments`]. Cloning it is how a matcher remembers a position.
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    /// What is left to split; `None` once the last segment was given.
    rest: Option<&'a str>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let bytes = rest.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let n = separator_len(&bytes[i..]);
            if n > 0 {
                self.rest = Some(&rest[i + n..]);
                return Some(&rest[..i]);
            }
            i += 1;
        }
        self.rest = None;
        Some(rest)
    }
}

/// Whether `text` holds a separator anywhere (so it is not one segment).
pub(crate) fn has_separator(text: &str) -> bool {
    let bytes = text.as_bytes();
    (0..bytes.len()).any(|i| separator_len(&bytes[i..]) > 0)
}

/// The length of the separator `bytes` starts with, or 0.
fn separator_len(bytes: &[u8]) -> usize {
    match bytes {
        [b'/' | b'\\', ..] => 1,
        [b'%', b'2', b'f' | b'F', ..] | [b'%', b'5', b'c' | b'C', ..] => 3,
        _ => 0,
    }
}

/// `.` or `..`, written with any mix of `.`, `%2e` and `%2E`.
pub(crate) fn is_dot_segment(segment: &str) -> bool {
    let mut bytes = segment.as_bytes();
    let mut dots = 0;
    while !bytes.is_empty() {
        bytes = match bytes {
            [b'.', rest @ ..] => rest,
            [b'%', b'2', b'e' | b'E', rest @ ..] => rest,
            _ => return false,
        };
        dots += 1;
    }
    (1..=2).contains(&dots)
}

/// Whether any segment of `raw` is a dot segment (see [`is_dot_segment`]).
pub(crate) fn has_dot_segment(raw: &str) -> bool {
    // Most paths have neither a dot nor an escape: one scan says so.
    if !raw.bytes().any(|b| b == b'.' || b == b'%') {
        return false;
    }
    segments(raw).any(is_dot_segment)
}

/// Whether `segment`, percent-decoded, is `name` in any ASCII case.
pub(crate) fn decodes_to(segment: &str, name: &str) -> bool {
    let mut decoded = percent_encoding::percent_decode(segment.as_bytes());
    let mut wanted = name.bytes();
    loop {
        match (decoded.next(), wanted.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(&b) => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(raw: &str) -> Vec<&str> {
        segments(raw).collect()
    }

    #[test]
    fn separators_an_upstream_may_honour() {
        assert_eq!(split(""), Vec::<&str>::new());
        assert_eq!(split("/"), vec![""]);
        assert_eq!(split("/servers/detail"), vec!["servers", "detail"]);
        assert_eq!(split("servers"), vec!["servers"]);
        assert_eq!(split("/c//o"), vec!["c", "", "o"]);
        assert_eq!(split("/a%2Fb%2fc"), vec!["a", "b", "c"]);
        assert_eq!(split("/a\\b%5Cc%5cd"), vec!["a", "b", "c", "d"]);
        assert_eq!(split("/x/"), vec!["x", ""]);
        // Other escapes are not separators.
        assert_eq!(split("/a%20b/%2"), vec!["a%20b", "%2"]);
        assert!(has_separator("\\") && has_separator("%2Fa") && has_separator("a%5c"));
        assert!(!has_separator("a%20b") && !has_separator("%2"));
    }

    #[test]
    fn dot_segments_in_every_spelling() {
        for dot in [".", "..", "%2e", "%2E", "%2e%2E", ".%2e", "%2E."] {
            assert!(is_dot_segment(dot), "{dot}");
        }
        for not in ["", "...", ".a", "a.", "%2e%2e%2e", "%2f", "%2", "%"] {
            assert!(!is_dot_segment(not), "{not}");
        }
        for path in [
            "/..",
            "/.",
            "/a/../b",
            "/a/./b",
            "/a/%2e%2e/b",
            "/a%2F..%2Fb",
            "/a\\..\\b",
            "/a/..",
            "/x/%2E",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in ["", "/", "/a.b/c", "/...", "/.hidden", "/a/b%20c", "/v2.1"] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }

    #[test]
    fn decoded_comparison() {
        assert!(decodes_to("credentials", "credentials"));
        assert!(decodes_to("%63redentials", "credentials"));
        assert!(decodes_to("OS-EC2", "os-ec2"));
        assert!(decodes_to("os%2Dec2", "OS-EC2"));
        assert!(!decodes_to("credentialsx", "credentials"));
        assert!(!decodes_to("credential", "credentials"));
    }
}
