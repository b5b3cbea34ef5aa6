//! The service catalog: finding the endpoint a request is for. (Over 600
//! lines with its unit tests, 190 of them: the catalog's parsing and
//! selection are one concept, and the tests are its specification.)
//!
//! Selection follows keystoneauth: the service is found by its type, by an
//! alias from the service-types authority (so `/block-storage/…` finds a
//! catalog that still says `volumev3`), or by its catalog name (`nova`);
//! then the first interface in the preference list that has an endpoint in
//! the configured region wins.

use std::sync::Arc;

use http::uri::{Authority, Scheme};
use serde::Deserialize;

/// One service-types-authority entry: the official type and its historical
/// aliases, in the authority's order of preference.
/// Source: opendev.org/openstack/service-types-authority, service-types.yaml.
static SERVICE_TYPE_ALIASES: &[(&str, &[&str])] = &[
    (
        "block-storage",
        &["volumev3", "volumev2", "volume", "block-store"],
    ),
    ("shared-file-system", &["sharev2", "share"]),
    ("clustering", &["resource-cluster", "cluster"]),
    ("baremetal", &["bare-metal"]),
    ("resource-optimization", &["infra-optim"]),
    ("message", &["messaging"]),
    (
        "container-infrastructure-management",
        &["container-infrastructure", "container-infra"],
    ),
    ("workflow", &["workflowv2"]),
    ("operator-policy", &["policy"]),
    ("alarm", &["alarming"]),
    ("meter", &["metering", "telemetry"]),
    ("event", &["events"]),
    ("application-deployment", &["application_deployment"]),
    ("multi-region-network-automation", &["tricircle"]),
    ("application-container", &["container"]),
    ("root-cause-analysis", &["rca"]),
    ("monitoring-logging", &["monitoring-log-api"]),
    ("instance-ha", &["ha"]),
    ("admin-logic", &["registration"]),
];

/// The official types of the service-types authority that have no alias
/// (those with aliases are in [`SERVICE_TYPE_ALIASES`]): with both, a
/// word in a path or a rule is known to be a type without a catalog.
static OFFICIAL_TYPES: &[&str] = &[
    "accelerator",
    "application-catalog",
    "backup",
    "baremetal-introspection",
    "cloudformation",
    "compute",
    "data-processing",
    "data-protection-orchestration",
    "database",
    "dns",
    "ec2-api",
    "function-engine",
    "identity",
    "image",
    "key-manager",
    "load-balancer",
    "metric",
    "monitoring",
    "monitoring-events",
    "network",
    "nfv-orchestration",
    "object-store",
    "orchestration",
    "placement",
    "rating",
    "reservation",
    "search",
];

/// The official service type of the identity service (Keystone).
pub const IDENTITY: &str = "identity";

/// A parsed catalog, as Keystone v3 returns it in `token.catalog`.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    services: Vec<Service>,
}

#[derive(Debug, Clone)]
pub struct Service {
    /// Shared: every request's metrics and log line name it.
    pub service_type: Arc<str>,
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    /// `service_type` and `name` normalised once, for lookups.
    type_key: String,
    name_key: String,
    /// The official type of `service_type` (aliases resolved), once.
    canonical: String,
}

/// An endpoint, with its URL split once so that joining a request onto it
/// costs no parsing.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub interface: String,
    pub region: Option<String>,
    pub url: String,
    pub scheme: Scheme,
    pub authority: Authority,
    /// The `Host` header for it (the authority without any user info).
    pub host: http::HeaderValue,
    /// The URL's path, as written (`/` when it has none; may end in `/`).
    pub path: String,
    /// A search for `path` without its trailing `/` (empty at a host's
    /// root) in an answer's body: whether the answer may hold a link to
    /// rewrite. Made once with the catalog, since making a finder costs
    /// more than searching a small answer with it.
    pub path_search: memchr::memmem::Finder<'static>,
}

/// Why no endpoint was found.
#[derive(Debug, PartialEq, Eq)]
pub enum LookupError {
    /// No service of that type, alias or name.
    NoService,
    /// The service exists but has no endpoint for these interfaces/region.
    NoEndpoint,
}

#[derive(Deserialize)]
struct RawService {
    #[serde(rename = "type", default)]
    service_type: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    endpoints: Vec<RawEndpoint>,
}

/// An endpoint in either shape: v3 (`interface` + `url`) or v2.0
/// (`publicURL`, `internalURL`, `adminURL` in one entry).
#[derive(Deserialize)]
struct RawEndpoint {
    #[serde(default)]
    interface: String,
    #[serde(default)]
    url: String,
    region: Option<String>,
    region_id: Option<String>,
    #[serde(rename = "publicURL")]
    public_url: Option<String>,
    #[serde(rename = "internalURL")]
    internal_url: Option<String>,
    #[serde(rename = "adminURL")]
    admin_url: Option<String>,
}

impl RawEndpoint {
    fn into_endpoints(self) -> impl Iterator<Item = Endpoint> {
        let region = self.region.or(self.region_id);
        let v3 = (!self.url.is_empty()).then_some((self.interface, self.url));
        let v2 = [
            ("public", self.public_url),
            ("internal", self.internal_url),
            ("admin", self.admin_url),
        ]
        .into_iter()
        .filter_map(|(interface, url)| Some((interface.to_string(), url?)));
        v3.into_iter()
            .chain(v2)
            .filter_map(move |(interface, url)| Endpoint::new(&interface, region.clone(), &url))
    }
}

impl Catalog {
    /// Parse a catalog leniently: Keystone v3's `token.catalog` or v2.0's
    /// `access.serviceCatalog`. Entries that cannot be used (no type,
    /// unparsable URL) are skipped rather than failing the whole login.
    pub fn parse(value: &serde_json::Value) -> Catalog {
        let raw: Vec<RawService> = match value {
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|item| RawService::deserialize(item).ok())
                .collect(),
            _ => Vec::new(),
        };
        let services = raw
            .into_iter()
            .filter(|s| !s.service_type.is_empty())
            .map(|s| Service {
                type_key: normalize(&s.service_type).into_owned(),
                name_key: normalize(&s.name).into_owned(),
                canonical: canonical_type(&s.service_type).into_owned(),
                service_type: Arc::from(s.service_type),
                name: s.name,
                endpoints: s
                    .endpoints
                    .into_iter()
                    .flat_map(RawEndpoint::into_endpoints)
                    .collect(),
            })
            .collect();
        Catalog { services }
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The endpoint for `wanted` (type, alias or name), trying `interfaces`
    /// in order and keeping to `region` when one is set. Services are tried
    /// best first: the exact type, then the official type and its aliases
    /// in the authority's order, then a service whose catalog name matches.
    /// This runs on every request, so it allocates nothing when `wanted` is
    /// already in normal form.
    pub fn endpoint(
        &self,
        wanted: &str,
        interfaces: &[impl AsRef<str>],
        region: Option<&str>,
    ) -> Result<(&Service, &Endpoint), LookupError> {
        let found = self.find(wanted, interfaces, region)?;
        self.at(found).ok_or(LookupError::NoEndpoint)
    }

    /// Where [`Catalog::endpoint`]'s answer is in this catalog: a request
    /// looks its endpoint up once and finds it again by position.
    pub fn find(
        &self,
        wanted: &str,
        interfaces: &[impl AsRef<str>],
        region: Option<&str>,
    ) -> Result<Position, LookupError> {
        let wanted = normalize(wanted);
        // The family is looked up only if the exact type finds nothing: a
        // request that names its service by type (most) never scans it.
        let family = std::iter::once_with(|| family_of(&wanted))
            .flatten()
            .flatten();
        let types = std::iter::once(wanted.as_ref()).chain(family.map(shorter));
        let services = || self.services.iter().enumerate();
        let by_type = types.flat_map(|t| services().filter(move |(_, s)| s.type_key == t));
        let by_name = services().filter(|(_, s)| s.name_key == wanted.as_ref());
        let mut found_service = false;
        for (service, found) in by_type.chain(by_name) {
            found_service = true;
            if let Some(endpoint) = found.endpoint_for(interfaces, region) {
                return Ok(Position { service, endpoint });
            }
        }
        Err(if found_service {
            LookupError::NoEndpoint
        } else {
            LookupError::NoService
        })
    }

    /// The service and endpoint at `position` (`None` only for a position
    /// found in another catalog).
    pub fn at(&self, position: Position) -> Option<(&Service, &Endpoint)> {
        let service = self.services.get(position.service)?;
        Some((service, service.endpoints.get(position.endpoint)?))
    }
}

/// An endpoint's place in the catalog [`Catalog::find`] found it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    service: usize,
    endpoint: usize,
}

/// A `'static` alias read for as long as the request's own name.
fn shorter<'a>(alias: &'static str) -> &'a str {
    alias
}

impl Service {
    /// The official type of this service, aliases resolved (`volumev3` is
    /// `block-storage`).
    pub fn canonical_type(&self) -> &str {
        &self.canonical
    }

    /// Whether `name` (normal form, as [`ServiceName`] keeps it) is this
    /// service's catalog name.
    fn is_named(&self, normal: &str) -> bool {
        self.name_key == normal
    }

    /// The first interface of `interfaces` with an endpoint (in `region`).
    fn endpoint_for(&self, interfaces: &[impl AsRef<str>], region: Option<&str>) -> Option<usize> {
        interfaces.iter().find_map(|interface| {
            self.endpoints.iter().position(|e| {
                e.interface == interface.as_ref()
                    && region.is_none_or(|r| e.region.as_deref() == Some(r))
            })
        })
    }
}

/// A service as a rule names it: a type, an alias or a catalog name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceName {
    /// The official type, if the name is a type or an alias.
    canonical: String,
    /// The name in normal form, to compare with catalog names.
    normal: String,
    known: bool,
}

impl ServiceName {
    pub fn new(name: &str) -> ServiceName {
        ServiceName {
            canonical: canonical_type(name).into_owned(),
            normal: normalize(name).into_owned(),
            known: is_known_type(name),
        }
    }

    /// Whether the name is a type or an alias of the service-types
    /// authority, so that it can be compared without a catalog.
    pub fn is_known(&self) -> bool {
        self.known
    }

    /// The official type the name stands for (the name itself, in normal
    /// form, when it is not known).
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// Whether `service` is what this name finds: its type family, or (for
    /// a name that is not a type) its catalog name.
    pub fn matches(&self, service: &Service) -> bool {
        service.canonical_type() == self.canonical || service.is_named(&self.normal)
    }
}

/// The official type `name` stands for: the official type of its alias
/// family, else `name` itself in normal form. Allocates only when `name`
/// is not in normal form.
pub(crate) fn canonical_type(name: &str) -> std::borrow::Cow<'_, str> {
    let normal = normalize(name);
    match family_entry(&normal) {
        Some((official, _)) => std::borrow::Cow::Borrowed(official),
        None => normal,
    }
}

/// Whether `name` is an official type or an alias of one.
pub(crate) fn is_known_type(name: &str) -> bool {
    known_type(name).is_some()
}

/// The official type `name` stands for, if it is an official type or an
/// alias of one (one scan of the tables; no allocation for a name in
/// normal form).
pub(crate) fn known_type(name: &str) -> Option<std::borrow::Cow<'_, str>> {
    let normal = normalize(name);
    if let Some((official, _)) = family_entry(&normal) {
        return Some(std::borrow::Cow::Borrowed(official));
    }
    OFFICIAL_TYPES.contains(&normal.as_ref()).then_some(normal)
}

/// `Volume_V3` and `volume-v3` mean the same: lower case, `_` as `-`.
fn normalize(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().any(|b| normal_byte(b) != b) {
        let ascii_only = |c: char| match u8::try_from(c) {
            Ok(b) if b.is_ascii() => char::from(normal_byte(b)),
            _ => c,
        };
        std::borrow::Cow::Owned(name.chars().map(ascii_only).collect())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// One byte of a name in [`normalize`]d form.
fn normal_byte(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

/// `normalize(raw) == normal`, without allocating: every request that
/// misses the alias table compares against all of it.
fn normalizes_to(raw: &str, normal: &str) -> bool {
    raw.len() == normal.len()
        && raw
            .bytes()
            .zip(normal.bytes())
            .all(|(r, n)| normal_byte(r) == n)
}

/// The official type followed by its aliases, if `wanted` is either.
fn family_of(wanted: &str) -> Option<impl Iterator<Item = &'static str> + use<>> {
    family_entry(wanted)
        .map(|(official, aliases)| std::iter::once(*official).chain(aliases.iter().copied()))
}

/// The alias family `wanted` (in normal form) belongs to, if any.
fn family_entry(wanted: &str) -> Option<&'static (&'static str, &'static [&'static str])> {
    SERVICE_TYPE_ALIASES.iter().find(|(official, aliases)| {
        *official == wanted || aliases.iter().any(|a| normalizes_to(a, wanted))
    })
}

/// An interface name as v3 spells it: `publicURL` (v2.0), `Public` and
/// ` public ` are all `public`.
pub fn normalize_interface(raw: &str) -> String {
    let trimmed = raw.trim().to_ascii_lowercase();
    trimmed.strip_suffix("url").unwrap_or(&trimmed).to_string()
}

impl Endpoint {
    /// `interface` may be v3 style (`public`) or v2 style (`publicURL`).
    pub fn new(interface: &str, region: Option<String>, url: &str) -> Option<Endpoint> {
        let uri: http::Uri = url.parse().ok()?;
        let scheme = uri.scheme()?.clone();
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return None;
        }
        let authority = uri.authority()?.clone();
        let host = match authority.port() {
            Some(port) => format!("{}:{port}", authority.host()),
            None => authority.host().to_string(),
        };
        let host = http::HeaderValue::try_from(host).ok()?;
        let path = uri.path_and_query().map(|p| p.path()).unwrap_or("/");
        let interface = normalize_interface(interface);
        Some(Endpoint {
            interface,
            region,
            url: url.to_string(),
            scheme,
            authority,
            host,
            path: path.to_string(),
            path_search: memchr::memmem::Finder::new(path.trim_end_matches('/')).into_owned(),
        })
    }

    /// The upstream path and query for `rest` (raw, empty or starting with
    /// `/`) and the request's raw `query`: the endpoint path is kept, `rest`
    /// is appended with exactly one `/` between, nothing is decoded.
    pub fn join(&self, rest: &str, query: Option<&str>) -> String {
        let mut out =
            String::with_capacity(self.path.len() + rest.len() + 2 + query.map_or(0, str::len));
        if rest.is_empty() {
            out.push_str(&self.path);
        } else {
            out.push_str(self.path.strip_suffix('/').unwrap_or(&self.path));
            out.push_str(rest);
        }
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        out
    }
}

/// Endpoints in Keystone v2.0's catalog shape: one entry per region (in
/// the order first seen), with an `id` and a `{interface}URL` for each
/// interface. `endpoints` are (region, interface, URL) triples.
pub(crate) fn v2_endpoint_entries<'a>(
    endpoints: impl IntoIterator<Item = (Option<&'a str>, &'a str, String)>,
    id: impl Fn(Option<&str>) -> String,
) -> Vec<serde_json::Value> {
    let mut regions: Vec<(Option<&str>, serde_json::Map<String, serde_json::Value>)> = Vec::new();
    for (region, interface, url) in endpoints {
        let index = match regions.iter().position(|(r, _)| *r == region) {
            Some(index) => index,
            None => {
                let mut entry = serde_json::Map::new();
                entry.insert("id".into(), id(region).into());
                entry.insert("region".into(), region.into());
                regions.push((region, entry));
                regions.len() - 1
            }
        };
        regions[index]
            .1
            .insert(format!("{interface}URL"), url.into());
    }
    regions
        .into_iter()
        .map(|(_, entry)| serde_json::Value::Object(entry))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Catalog {
        Catalog::parse(&json!([
            {"type": "compute", "name": "nova", "endpoints": [
                {"interface": "public", "region": "RegionOne", "url": "https://nova.r1/v2.1"},
                {"interface": "internal", "region": "RegionOne", "url": "http://nova.int.r1/v2.1"},
                {"interface": "public", "region": "RegionTwo", "url": "https://nova.r2/v2.1"}
            ]},
            {"type": "volumev3", "name": "cinderv3", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "https://cinder/v3/abc"}
            ]},
            {"type": "volumev2", "name": "cinderv2", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "https://cinder/v2/abc"}
            ]},
            {"type": "image", "name": "glance", "endpoints": [
                {"interface": "public", "region": "RegionOne", "url": "https://glance:9292"}
            ]},
            {"type": "bogus", "endpoints": [{"interface": "public", "url": "not a url"}]},
            "garbage"
        ]))
    }

    fn url(wanted: &str, interfaces: &[&str], region: Option<&str>) -> Result<String, LookupError> {
        let interfaces: Vec<String> = interfaces.iter().map(|s| s.to_string()).collect();
        catalog()
            .endpoint(wanted, &interfaces, region)
            .map(|(_, e)| e.url.clone())
    }

    #[test]
    fn the_allocation_free_compare_agrees_with_normalize() {
        for raw in [
            "application_deployment",
            "Volume_V3",
            "volumev3",
            "Ünïcode_X",
            "a",
        ] {
            let normal = normalize(raw);
            assert!(normalizes_to(raw, &normal), "{raw}");
            assert!(!normalizes_to(raw, &format!("{normal}x")), "{raw}");
        }
        assert_eq!(normalize("Ünïcode_X"), "Ünïcode-x");
        assert!(!normalizes_to("volume_v3", "volume_v3"));
    }

    #[test]
    fn by_type_alias_and_name() {
        assert_eq!(
            url("compute", &["public"], Some("RegionOne")).unwrap(),
            "https://nova.r1/v2.1"
        );
        assert_eq!(
            url("nova", &["public"], Some("RegionOne")).unwrap(),
            "https://nova.r1/v2.1"
        );
        assert_eq!(
            url("block-storage", &["public"], None).unwrap(),
            "https://cinder/v3/abc"
        );
        assert_eq!(
            url("block_storage", &["public"], None).unwrap(),
            "https://cinder/v3/abc"
        );
        assert_eq!(
            url("volume", &["public"], None).unwrap(),
            "https://cinder/v3/abc"
        );
        // An exact type beats the family order.
        assert_eq!(
            url("volumev2", &["public"], None).unwrap(),
            "https://cinder/v2/abc"
        );
        assert_eq!(
            url("cinderv2", &["public"], None).unwrap(),
            "https://cinder/v2/abc"
        );
        assert_eq!(
            url("network", &["public"], None),
            Err(LookupError::NoService)
        );
        assert_eq!(
            url("bogus", &["public"], None),
            Err(LookupError::NoEndpoint)
        );
    }

    #[test]
    fn interface_preference_and_region() {
        assert_eq!(
            url("compute", &["internal", "public"], Some("RegionOne")).unwrap(),
            "http://nova.int.r1/v2.1"
        );
        assert_eq!(
            url("compute", &["internal", "public"], Some("RegionTwo")).unwrap(),
            "https://nova.r2/v2.1"
        );
        assert_eq!(
            url("compute", &["admin"], None),
            Err(LookupError::NoEndpoint)
        );
        assert_eq!(
            url("compute", &["public"], Some("RegionThree")),
            Err(LookupError::NoEndpoint)
        );
    }

    #[test]
    fn v2_catalogs_are_understood() {
        let catalog = Catalog::parse(&json!([
            {"type": "compute", "name": "nova", "endpoints": [{
                "region": "RegionOne",
                "publicURL": "http://nova:8774/v2/t1",
                "internalURL": "http://nova.int:8774/v2/t1",
                "adminURL": "http://nova.adm:8774/v2/t1",
                "id": "1"
            }]}
        ]));
        let pick = |interface: &str| {
            catalog
                .endpoint("compute", &[interface.to_string()], Some("RegionOne"))
                .map(|(_, e)| e.url.clone())
                .unwrap()
        };
        assert_eq!(pick("public"), "http://nova:8774/v2/t1");
        assert_eq!(pick("internal"), "http://nova.int:8774/v2/t1");
        assert_eq!(pick("admin"), "http://nova.adm:8774/v2/t1");
        let e = Endpoint::new("publicURL", None, "http://h/x").unwrap();
        assert_eq!(e.interface, "public");
    }

    fn join(endpoint: &str, rest: &str, query: Option<&str>) -> String {
        Endpoint::new("public", None, endpoint)
            .unwrap()
            .join(rest, query)
    }

    #[test]
    fn join_keeps_paths_and_one_slash() {
        assert_eq!(
            join("https://h/compute/v2.1", "/servers", None),
            "/compute/v2.1/servers"
        );
        assert_eq!(
            join("https://h/compute/v2.1/", "/servers", None),
            "/compute/v2.1/servers"
        );
        assert_eq!(
            join("https://h/v2/abc", "/volumes/detail", None),
            "/v2/abc/volumes/detail"
        );
        assert_eq!(join("https://h:9292", "/v2/images", None), "/v2/images");
        assert_eq!(join("https://h:9292/", "/v2/images", None), "/v2/images");
        assert_eq!(join("https://h/compute/v2.1", "", None), "/compute/v2.1");
        assert_eq!(join("https://h/compute/v2.1/", "", None), "/compute/v2.1/");
        assert_eq!(join("https://h:9292", "", None), "/");
        assert_eq!(
            join("https://h/v1/AUTH_a", "/c//o%2Fp", None),
            "/v1/AUTH_a/c//o%2Fp"
        );
        assert_eq!(
            join("https://h/x", "/y", Some("a=1&b=%2F&c")),
            "/x/y?a=1&b=%2F&c"
        );
        assert_eq!(join("https://h/x", "/y", Some("")), "/x/y?");
    }

    #[test]
    fn v2_entries_group_interfaces_by_region() {
        let entries = v2_endpoint_entries(
            [
                (Some("r1"), "public", "http://a".to_string()),
                (Some("r2"), "public", "http://b".to_string()),
                (Some("r1"), "internal", "http://c".to_string()),
            ],
            |region| format!("id-{}", region.unwrap_or_default()),
        );
        assert_eq!(
            serde_json::Value::Array(entries),
            serde_json::json!([
                {"id": "id-r1", "region": "r1", "publicURL": "http://a", "internalURL": "http://c"},
                {"id": "id-r2", "region": "r2", "publicURL": "http://b"},
            ])
        );
    }
}
