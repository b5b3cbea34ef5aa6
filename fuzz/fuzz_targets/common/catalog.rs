//! Catalog checks shared by the keystone_v3 and keystone_v2 targets.

use keystone_proxy::catalog::Catalog;

/// Every endpoint is usable and lookups are exact.
pub fn check(catalog: &Catalog) {
    for service in catalog.services() {
        assert!(!service.service_type.is_empty());
        for endpoint in &service.endpoints {
            let uri: http::Uri = endpoint.url.parse().expect("endpoint URLs parse");
            assert!(matches!(uri.scheme_str(), Some("http" | "https")));
            assert_eq!(uri.scheme(), Some(&endpoint.scheme));
            assert_eq!(uri.authority(), Some(&endpoint.authority));
            assert!(endpoint.path.starts_with('/'), "{:?}", endpoint.path);
            assert_eq!(endpoint.interface, endpoint.interface.to_ascii_lowercase());

            // The lookup finds an endpoint of exactly that interface (and
            // region, when asked), though maybe of another service first.
            let interfaces = [endpoint.interface.clone()];
            let (_, found) = catalog
                .endpoint(&service.service_type, &interfaces, None)
                .expect("a listed service and interface are found");
            assert_eq!(found.interface, endpoint.interface);
            if let Some(region) = &endpoint.region {
                let (_, found) = catalog
                    .endpoint(&service.service_type, &interfaces, Some(region))
                    .expect("a listed region is found");
                assert_eq!(found.region.as_ref(), Some(region));
                assert_eq!(found.interface, endpoint.interface);
            }
        }
    }
}
