//! What a client may do: the methods, services and paths it may use, and
//! its share of the cloud.
//!
//! The promise the proxy keeps is that a local key can do only what its
//! client is allowed and never obtains a cloud credential. Three things
//! decide what is allowed, in this order:
//!
//! 1. **Methods.** `TRACE`, `TRACK` and `CONNECT` never go anywhere (405);
//!    methods outside the standard set need a rule that names them.
//! 2. **Rules** ([`rule`]). A client without rules may do everything but
//!    what (3) refuses; a client with rules may do only what one allows.
//! 3. **The identity service's defaults** ([`identity`]): reads only, minus
//!    the reads that return secrets, for every client. A rule of the client
//!    lifts one of these refusals only if it matches without `**`: a broad
//!    `GET /**` on identity means "read identity", not "read credentials".
//!
//! Rules name services by type, alias or catalog name. Whether a request
//! is allowed is decided twice with the same functions: before the token
//! (when the route's service word is a known type or alias, a refusal then
//! costs no Keystone call) and at the endpoint, where the catalog says what
//! the service is; the second decision is the one that counts.
//!
//! Dot segments, which would let a path leave the endpoint, are refused by
//! the router for every client ([`crate::route`]).

pub mod identity;
pub mod limits;
pub mod rule;

use http::Method;

use crate::catalog::{self, Endpoint, IDENTITY, Service};
use crate::error::ProxyError;
use crate::route::Route;
pub use limits::{LimitSettings, Limited, Limits, Slot};
pub use rule::Rule;

/// The labels refusals carry in logs and in `refused_total{reason}`.
pub mod reason {
    pub const METHOD: &str = "method";
    pub const RULES: &str = "rules";
    pub const RATE: &str = "rate";
    pub const IN_FLIGHT: &str = "in-flight";
}

/// One client's access: its rules and its limits.
#[derive(Debug)]
pub struct Access {
    /// Empty: no rules (everything but the built-in refusals).
    rules: Vec<Rule>,
    pub limits: Limits,
}

/// A request as the access checks see it.
#[derive(Clone, Copy)]
pub struct Ask<'a> {
    pub method: &'a Method,
    /// The service segment as the client wrote it.
    pub service: &'a str,
    /// The raw path after the service segment.
    pub rest: &'a str,
}

impl<'a> Ask<'a> {
    /// What `method` on `route` asks for.
    pub fn new(method: &'a Method, route: &'a Route<'a>) -> Ask<'a> {
        Ask {
            method,
            service: route.service,
            rest: route.rest,
        }
    }
}

impl Access {
    pub fn new(rules: Vec<Rule>, limits: &LimitSettings) -> Access {
        Access {
            rules,
            limits: Limits::new(limits),
        }
    }

    /// A method outside the standard set needs a rule naming it.
    pub fn check_method(&self, method: &Method) -> Result<(), ProxyError> {
        if rule::is_standard(method) || self.rules.iter().any(|r| r.names_method(method)) {
            return Ok(());
        }
        Err(ProxyError::MethodNotAllowed {
            message: format!(
                "{method} is not allowed (only a rule that names it allows a method outside {})",
                rule::STANDARD_ALLOW
            ),
            allow: rule::STANDARD_ALLOW,
        })
    }

    /// Before the catalog: refuse what the rules refuse whatever the
    /// catalog says, i.e. when the service word is a known type or alias
    /// and no rule that could be about it allows the request (a rule naming
    /// a catalog name could be about any service). When a rule of the
    /// word's type family allows it, which one: the endpoint check then
    /// need not look again if the catalog agrees.
    pub fn check_route(&self, ask: Ask<'_>, client: &str) -> Result<Option<usize>, ProxyError> {
        if self.rules.is_empty() {
            return Ok(None);
        }
        let Some(canonical) = catalog::known_type(ask.service) else {
            return Ok(None);
        };
        let mut could = false;
        for (index, rule) in self.rules.iter().enumerate() {
            let known = rule.service.is_known();
            let same_family = known && rule.service.canonical() == canonical;
            // A rule of another known family is not about this request.
            let about = same_family || !known;
            if !about || !rule.allows(ask.method, ask.rest) {
                continue;
            }
            if same_family {
                return Ok(Some(index));
            }
            could = true;
        }
        match could {
            true => Ok(None),
            false => Err(refused_by_rules(ask, client)),
        }
    }

    /// At the endpoint, where the catalog says what the service is: the
    /// decision that counts. `early` is what [`Access::check_route`] found.
    pub fn check_endpoint(
        &self,
        ask: Ask<'_>,
        client: &str,
        service: &Service,
        endpoint: &Endpoint,
        early: Option<usize>,
    ) -> Result<(), ProxyError> {
        let identity = service.canonical_type() == IDENTITY;
        let confirmed = early
            .and_then(|i| self.rules.get(i))
            .is_some_and(|r| r.is_for(service));
        if confirmed && !identity {
            return Ok(());
        }
        let mut matching = self
            .rules
            .iter()
            .filter(|r| r.is_for(service) && r.allows(ask.method, ask.rest));
        let allowing = matching.clone().next();
        if !self.rules.is_empty() && allowing.is_none() {
            return Err(refused_by_rules(ask, client));
        }
        if !identity {
            return Ok(());
        }
        let Some(refusal) = identity::refusal(ask.method, &endpoint.path, ask.rest) else {
            return Ok(());
        };
        if matching.any(|r| !r.is_broad()) {
            return Ok(());
        }
        Err(ProxyError::ForbiddenOperation {
            operation: operation(ask),
            reason: refusal.reason.into(),
            refused_by: refusal.label,
        })
    }

    /// Whether the client may use `service` at all (the facade's catalog
    /// lists only those).
    pub fn may_use(&self, service: &Service) -> bool {
        self.rules.is_empty() || self.rules.iter().any(|r| r.is_for(service))
    }
}

fn refused_by_rules(ask: Ask<'_>, client: &str) -> ProxyError {
    ProxyError::ForbiddenOperation {
        operation: operation(ask),
        reason: format!("no rule of client {client:?} allows it"),
        refused_by: reason::RULES,
    }
}

/// `POST /v3/users/u1/password on identity`: what was asked, for messages.
fn operation(ask: Ask<'_>) -> String {
    let rest = if ask.rest.is_empty() { "/" } else { ask.rest };
    format!("{} {rest} on {}", ask.method, ask.service)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn catalog() -> Catalog {
        Catalog::parse(&serde_json::json!([
            {"type": "compute", "name": "nova", "endpoints": [
                {"interface": "public", "url": "http://h/compute/v2.1"}]},
            {"type": "identity", "name": "keystone", "endpoints": [
                {"interface": "public", "url": "http://h/identity/v3"}]},
            {"type": "volumev3", "name": "cinderv3", "endpoints": [
                {"interface": "public", "url": "http://h/volume/v3"}]}
        ]))
    }

    fn access(rules: &[(&str, &[&str], &str)]) -> Access {
        let rules = rules
            .iter()
            .map(|(service, methods, path)| {
                let methods: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
                Rule::parse(service, &methods, path).unwrap()
            })
            .collect();
        Access::new(rules, &LimitSettings::default())
    }

    /// The decision at the endpoint: `Ok(())` or the refusal's label.
    fn decide(access: &Access, method: &str, service: &str, rest: &str) -> Result<(), String> {
        let catalog = catalog();
        let interfaces = ["public".to_string()];
        let (found, endpoint) = catalog.endpoint(service, &interfaces, None).unwrap();
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let ask = Ask {
            method: &method,
            service,
            rest,
        };
        let early = access.check_route(ask, "c");
        let last = access.check_endpoint(ask, "c", found, endpoint, None);
        // Refusing early must never contradict the decision that counts,
        // and what it found gives the same decision.
        match &early {
            Err(_) => assert!(last.is_err(), "{method} {service}{rest}: early only"),
            Ok(found_early) => {
                let with_early = access.check_endpoint(ask, "c", found, endpoint, *found_early);
                assert_eq!(with_early.is_ok(), last.is_ok(), "{method} {service}{rest}");
            }
        }
        last.map_err(|e| match e {
            ProxyError::ForbiddenOperation { refused_by, .. } => refused_by.to_string(),
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn without_rules_everything_but_the_identity_defaults() {
        let open = access(&[]);
        assert_eq!(decide(&open, "DELETE", "compute", "/servers/s1"), Ok(()));
        assert_eq!(decide(&open, "GET", "identity", "/projects"), Ok(()));
        assert_eq!(
            decide(&open, "GET", "identity", "/credentials"),
            Err("identity:credentials".into())
        );
        // Any spelling of the service: the catalog says it is identity.
        assert_eq!(
            decide(
                &open,
                "POST",
                "keystone",
                "/users/u/application_credentials"
            ),
            Err("identity:application-credentials".into())
        );
        let compute = catalog().services()[0].clone();
        assert!(open.may_use(&compute));
    }

    #[test]
    fn with_rules_only_what_a_rule_allows() {
        let monitor = access(&[("compute", &["GET", "HEAD"], "/servers/**")]);
        assert_eq!(
            decide(&monitor, "GET", "compute", "/servers/detail"),
            Ok(())
        );
        assert_eq!(decide(&monitor, "GET", "nova", "/servers"), Ok(()));
        assert_eq!(
            decide(&monitor, "POST", "compute", "/servers"),
            Err("rules".into())
        );
        assert_eq!(
            decide(&monitor, "GET", "compute", "/flavors"),
            Err("rules".into())
        );
        // A rule in one service does not open another.
        assert_eq!(
            decide(&monitor, "GET", "block-storage", "/servers/x"),
            Err("rules".into())
        );
        assert_eq!(
            decide(&monitor, "GET", "identity", "/projects"),
            Err("rules".into())
        );
        let services = catalog();
        assert!(monitor.may_use(&services.services()[0]));
        assert!(!monitor.may_use(&services.services()[1]));
    }

    #[test]
    fn aliases_and_catalog_names_in_rules() {
        let volumes = access(&[("volumev3", &["*"], "/**")]);
        assert_eq!(decide(&volumes, "GET", "block-storage", "/volumes"), Ok(()));
        assert_eq!(decide(&volumes, "GET", "volume", "/volumes"), Ok(()));
        assert_eq!(
            decide(&volumes, "GET", "compute", "/x"),
            Err("rules".into())
        );
        let by_name = access(&[("nova", &["GET"], "/**")]);
        assert_eq!(decide(&by_name, "GET", "compute", "/servers"), Ok(()));
        // It could be about any service, but it allows no POST anywhere:
        // that is known before the catalog.
        let post = Method::POST;
        let ask = Ask {
            method: &post,
            service: "compute",
            rest: "/servers",
        };
        assert!(by_name.check_route(ask, "c").is_err());
        assert_eq!(
            decide(&by_name, "GET", "block-storage", "/x"),
            Err("rules".into())
        );
    }

    #[test]
    fn identity_is_widened_only_by_a_rule_that_names_the_path() {
        let broad = access(&[("identity", &["*"], "/**")]);
        assert_eq!(decide(&broad, "GET", "identity", "/projects"), Ok(()));
        assert_eq!(
            decide(&broad, "GET", "identity", "/credentials"),
            Err("identity:credentials".into())
        );
        assert_eq!(
            decide(&broad, "POST", "identity", "/users"),
            Err("identity:read-only".into())
        );
        let minting = access(&[("identity", &["POST"], "/users/*/application_credentials")]);
        assert_eq!(
            decide(
                &minting,
                "POST",
                "identity",
                "/users/u1/application_credentials"
            ),
            Ok(())
        );
        assert_eq!(
            decide(&minting, "POST", "identity", "/users/u1/credentials/OS-EC2"),
            Err("rules".into())
        );
        // Another client is not widened.
        assert_eq!(
            decide(
                &access(&[]),
                "POST",
                "identity",
                "/users/u1/application_credentials"
            ),
            Err("identity:application-credentials".into())
        );
    }

    #[test]
    fn extra_methods_need_a_rule_that_names_them() {
        let propfind = Method::from_bytes(b"PROPFIND").unwrap();
        assert!(access(&[]).check_method(&propfind).is_err());
        assert!(
            access(&[("compute", &["*"], "/**")])
                .check_method(&propfind)
                .is_err()
        );
        assert!(
            access(&[("compute", &["PROPFIND"], "/**")])
                .check_method(&propfind)
                .is_ok()
        );
        assert!(
            access(&[])
                .check_method(&Method::from_bytes(b"COPY").unwrap())
                .is_ok()
        );
    }
}
