//! Which identity API to speak, and where: `identity_api_version` if set,
//! else the auth URL's suffix (`…/v3`, `…/v2.0`), else version discovery
//! at `GET {auth_url}` (what keystoneauth does with a bare URL).

use serde::Deserialize;

use super::BadAnswer;
use crate::config::ApiVersion;

/// A resolved identity API: its version and base URL (no trailing slash),
/// e.g. `https://k:5000/v3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Api {
    pub version: ApiVersion,
    pub base_url: String,
}

/// The API, when config or URL say it without asking Keystone.
pub(crate) fn without_discovery(auth_url: &str, configured: Option<ApiVersion>) -> Option<Api> {
    let url = auth_url.trim_end_matches('/');
    let suffix = match url.rsplit_once('/') {
        Some((_, "v3")) => Some(ApiVersion::V3),
        Some((_, "v2.0")) => Some(ApiVersion::V2),
        _ => None,
    };
    let version = configured.or(suffix)?;
    let base_url = match (version, suffix) {
        (wanted, Some(found)) if wanted == found => url.to_string(),
        // `…/v2.0` with identity_api_version = 3 (or the reverse): swap.
        (wanted, Some(_)) => format!(
            "{}/{}",
            url.rsplit_once('/').map_or(url, |(b, _)| b),
            wanted.path()
        ),
        (wanted, None) => format!("{url}/{}", wanted.path()),
    };
    Some(Api { version, base_url })
}

#[derive(Deserialize)]
struct Document {
    versions: Option<Versions>,
    version: Option<VersionEntry>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Versions {
    Wrapped { values: Vec<VersionEntry> },
    List(Vec<VersionEntry>),
}

#[derive(Deserialize)]
struct VersionEntry {
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    links: Vec<Link>,
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    rel: String,
    #[serde(default)]
    href: String,
}

/// Pick from a discovery document: v3 if offered, else v2.0. Deprecated
/// versions are still used (old clouds mark v2.0 deprecated but serve it).
pub(crate) fn choose(body: &[u8], auth_url: &str) -> Result<Api, BadAnswer> {
    let document: Document =
        serde_json::from_slice(body).map_err(|source| BadAnswer::Discovery {
            url: auth_url.to_string(),
            source,
        })?;
    let entries = match (document.versions, document.version) {
        (Some(Versions::Wrapped { values }), _) | (Some(Versions::List(values)), _) => values,
        (None, Some(single)) => vec![single],
        (None, None) => Vec::new(),
    };
    let usable = |e: &&VersionEntry| !e.status.eq_ignore_ascii_case("experimental");
    let pick = |prefix: &str, version: ApiVersion| {
        entries
            .iter()
            .filter(usable)
            .find(|e| e.id.starts_with(prefix))
            .map(|e| {
                let href = e
                    .links
                    .iter()
                    .find(|l| l.rel == "self")
                    .map(|l| l.href.as_str());
                let base_url = match href {
                    Some(href) if !href.is_empty() => href.trim_end_matches('/').to_string(),
                    _ => format!("{}/{}", auth_url.trim_end_matches('/'), version.path()),
                };
                Api { version, base_url }
            })
    };
    pick("v3", ApiVersion::V3)
        .or_else(|| pick("v2.0", ApiVersion::V2))
        .ok_or_else(|| BadAnswer::NoKnownVersion {
            url: auth_url.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(version: ApiVersion, base_url: &str) -> Option<Api> {
        Some(Api {
            version,
            base_url: base_url.into(),
        })
    }

    #[test]
    fn suffix_and_configured_version() {
        assert_eq!(
            without_discovery("https://k:5000/v3/", None),
            api(ApiVersion::V3, "https://k:5000/v3")
        );
        assert_eq!(
            without_discovery("https://k:5000/v2.0", None),
            api(ApiVersion::V2, "https://k:5000/v2.0")
        );
        assert_eq!(without_discovery("https://k:5000", None), None);
        assert_eq!(
            without_discovery("https://k:5000", Some(ApiVersion::V2)),
            api(ApiVersion::V2, "https://k:5000/v2.0")
        );
        assert_eq!(
            without_discovery("https://k/identity/v2.0", Some(ApiVersion::V3)),
            api(ApiVersion::V3, "https://k/identity/v3")
        );
    }

    #[test]
    fn discovery_prefers_v3_and_follows_links() {
        let keystone = br#"{"versions": {"values": [
            {"id": "v3.14", "status": "stable", "links": [{"rel": "self", "href": "http://k:5000/v3/"}]},
            {"id": "v2.0", "status": "deprecated", "links": [{"rel": "self", "href": "http://k:5000/v2.0/"}]}
        ]}}"#;
        assert_eq!(
            choose(keystone, "http://k:5000").ok(),
            api(ApiVersion::V3, "http://k:5000/v3")
        );
        let old = br#"{"versions": {"values": [
            {"id": "v2.0", "status": "stable", "links": [{"rel": "self", "href": "http://k:5000/v2.0/"}]}
        ]}}"#;
        assert_eq!(
            choose(old, "http://k:5000").ok(),
            api(ApiVersion::V2, "http://k:5000/v2.0")
        );
        let single = br#"{"version": {"id": "v3.10", "status": "stable", "links": []}}"#;
        assert_eq!(
            choose(single, "http://k/identity").ok(),
            api(ApiVersion::V3, "http://k/identity/v3")
        );
        assert!(choose(b"<html>", "http://k").is_err());
        assert!(choose(br#"{"versions": {"values": []}}"#, "http://k").is_err());
    }
}
