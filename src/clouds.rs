//! The clouds a proxy serves, and the scope decision: which (cloud,
//! project) token a request needs, after checking that its client may use
//! that project. The pipeline and the facade both decide it here.

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::{Catalog, Endpoint, LookupError, Position, Service};
use crate::clients::Client;
use crate::config::{CloudSettings, ProjectRef};
use crate::error::ProxyError;
use crate::forward::Upstream;
use crate::route::Route;
use crate::tokens::Scope;

/// A cloud as the pipeline uses it.
pub(crate) struct Cloud {
    pub(crate) name: Arc<str>,
    pub(crate) settings: CloudSettings,
    pub(crate) upstream: Upstream,
}

impl Cloud {
    /// Why no request could reach any endpoint of `catalog` with this
    /// cloud's `region_name` and `interface` (a typo such as `RegionOen`
    /// or `pubic` that Keystone's catalog does not have), naming what it
    /// has; `None` when some endpoint matches.
    pub(crate) fn unreachable(&self, catalog: &Catalog) -> Option<String> {
        let endpoints = || catalog.services().iter().flat_map(|s| &s.endpoints);
        let region = self.settings.region_name.as_deref();
        let interfaces = &self.settings.interfaces;
        let reachable = endpoints().any(|e| {
            interfaces.contains(&e.interface) && (region.is_none() || e.region.as_deref() == region)
        });
        if reachable || endpoints().next().is_none() {
            return None;
        }
        let mut regions: Vec<&str> = endpoints().filter_map(|e| e.region.as_deref()).collect();
        let mut kinds: Vec<&str> = endpoints().map(|e| e.interface.as_str()).collect();
        for list in [&mut regions, &mut kinds] {
            list.sort_unstable();
            list.dedup();
        }
        Some(format!(
            "no endpoint of the catalog is in region {} with interface {} (it has regions {} and \
             interfaces {}): check region_name and interface",
            region.map_or("(any)".to_string(), |r| format!("{r:?}")),
            interfaces.join(" or "),
            regions.join(", "),
            kinds.join(", ")
        ))
    }

    /// The endpoint `route` reaches in `catalog`: at the interface and in
    /// the region its path names, else by the cloud's `interfaces` and
    /// `region_name`.
    pub(crate) fn endpoint<'c>(
        &self,
        catalog: &'c Catalog,
        route: &Route<'_>,
    ) -> Result<(&'c Service, &'c Endpoint), LookupError> {
        let found = self.find(catalog, route)?;
        catalog.at(found).ok_or(LookupError::NoEndpoint)
    }

    /// Where [`Cloud::endpoint`]'s answer is in `catalog`.
    pub(crate) fn find(
        &self,
        catalog: &Catalog,
        route: &Route<'_>,
    ) -> Result<Position, LookupError> {
        let settings = &self.settings;
        let region = (route.region.as_deref()).or(settings.region_name.as_deref());
        match route.interface {
            Some(interface) => catalog.find(route.service, &[interface], region),
            None => catalog.find(route.service, &settings.interfaces, region),
        }
    }

    /// Each endpoint of `service` with the path prefix that reaches it:
    /// `None` for the one a path without a region or an interface reaches
    /// (its URL is the short one), else the endpoint's region (if it has
    /// one) and interface.
    pub(crate) fn endpoints_at<'c>(
        &self,
        catalog: &Catalog,
        service: &'c Service,
    ) -> impl Iterator<Item = (&'c Endpoint, Option<EndpointAt<'c>>)> {
        let settings = &self.settings;
        let default = catalog
            .endpoint(
                &service.service_type,
                &settings.interfaces,
                settings.region_name.as_deref(),
            )
            .ok()
            .map(|(_, endpoint)| endpoint as *const Endpoint);
        service.endpoints.iter().map(move |endpoint| {
            let at = (default != Some(endpoint as *const Endpoint))
                .then_some((endpoint.region.as_deref(), endpoint.interface.as_str()));
            (endpoint, at)
        })
    }
}

/// An endpoint's region (if it has one) and interface, as a path names them.
pub(crate) type EndpointAt<'a> = (Option<&'a str>, &'a str);

/// Every configured cloud, by name; looked up on every request.
#[derive(Default)]
pub(crate) struct Clouds {
    clouds: HashMap<String, Cloud, foldhash::fast::RandomState>,
}

impl Clouds {
    pub(crate) fn insert(&mut self, cloud: Cloud) {
        self.clouds.insert(cloud.name.to_string(), cloud);
    }

    /// The cloud called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Cloud> {
        self.clouds.get(name)
    }

    /// The cloud `client` uses.
    pub(crate) fn of(&self, client: &Client) -> Result<&Cloud, ProxyError> {
        self.clouds
            .get(&*client.cloud)
            // Settings are validated so that every client's cloud exists.
            .ok_or_else(|| {
                ProxyError::Internal(format!(
                    "client {:?}'s cloud is not configured",
                    client.name
                ))
            })
    }

    /// Which token a request naming `selector` (or none) needs, after
    /// checking the client may use it.
    pub(crate) fn scope(
        &self,
        client: &Client,
        cloud: &Cloud,
        selector: Option<&str>,
    ) -> Result<Scope, ProxyError> {
        let selector = selector.or(client.default_project.as_deref());
        let project = match selector {
            Some(selector) => Some(ProjectRef::from_selector(
                selector,
                &cloud.settings.project_domain,
            )),
            None => cloud.settings.project.clone(),
        };
        let named = selector.or_else(|| project.as_ref().map(|p| p.label()));
        match named {
            Some(name) if !client.may_use(name) => {
                return Err(ProxyError::ForbiddenProject {
                    project: name.to_string(),
                    reason: format!(
                        "client {:?} may not use it{}",
                        client.name,
                        client.allow_list_hint(name)
                    ),
                });
            }
            // An application credential's own project is known once it has
            // logged in: `TokenCache::for_client` decides then.
            None if is_application_credential(cloud) => {}
            None if !client.may_use(crate::config::ANY_PROJECT) => {
                return Err(ProxyError::ForbiddenProject {
                    project: String::new(),
                    reason: format!(
                        "client {:?} has no default_project; name one in the URL \
                         (/projects/NAME/…) or the X-Auth-Project-Id header",
                        client.name
                    ),
                });
            }
            _ => {}
        }
        Ok(Scope {
            cloud: cloud.name.clone(),
            project,
        })
    }
}

fn is_application_credential(cloud: &Cloud) -> bool {
    matches!(
        cloud.settings.credential,
        crate::config::Credential::ApplicationCredential { .. }
    )
}
