//! The layers a configuration is made of, later wins: clouds.yaml and
//! `OS_*` → the TOML file → `KEYSTONE_PROXY_*` → command-line flags, each
//! named, so that a validation message can say where a value came from.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;

use super::*;

/// The layers, later wins: clouds.yaml / `OS_*` → TOML → `KEYSTONE_PROXY_*`
/// environment → flags; and notes on what of the environment was not used.
/// Built twice: first without the bottom layer, to learn which clouds the
/// upper layers name.
pub(super) fn figment(
    source: &ConfigSource<'_>,
    overrides: &Overrides,
    env: &Environment,
) -> Result<(Figment, Vec<String>), ConfigError> {
    let probe = upper_layers(Figment::new(), source, overrides, env)?;
    let (base, notes) = openstack_layer(&probe, overrides, env)?;
    Ok((upper_layers(base, source, overrides, env)?, notes))
}

/// The default config file, in the environment's working directory.
fn default_path(env: &Environment) -> std::path::PathBuf {
    env.cwd.join(DEFAULT_CONFIG_PATH)
}

pub(super) fn upper_layers(
    mut figment: Figment,
    source: &ConfigSource<'_>,
    overrides: &Overrides,
    env: &Environment,
) -> Result<Figment, ConfigError> {
    match source {
        ConfigSource::File(path) => {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        ConfigSource::Default => {
            let path = default_path(env);
            if path.is_file() {
                figment = figment.merge(Toml::file_exact(path));
            }
        }
        ConfigSource::Embedded { name, text } => {
            figment = figment.merge(Named {
                name: name.to_string(),
                inner: Toml::string(text),
            });
        }
    }
    // KEYSTONE_PROXY_CONFIG names the file (`--config`); it is not a key.
    figment = figment.merge(Env::prefixed(ENV_PREFIX).ignore(&["config"]).split("__"));
    if let Some(listen) = &overrides.listen {
        figment = figment.merge(Named {
            name: "--listen".into(),
            inner: Serialized::default("listen.address", listen),
        });
    }
    Ok(figment)
}

#[derive(Deserialize)]
pub(super) struct ProbeClient {
    cloud: Option<String>,
}

/// The clouds that come from clouds.yaml or `OS_*`, under the TOML.
///
/// When the configuration names clouds (`[clouds.NAME]` tables, a
/// client's `cloud`), those are the clouds, each completed from the
/// clouds.yaml entry of that name if there is one: the TOML wins, and a
/// note says `OS_CLOUD` or an openrc was not used. Otherwise the cloud is
/// the one `openstack` would use in this environment: `--cloud`, else
/// `OS_CLOUD`, else the `envvars` cloud of `OS_*` variables, else the only
/// cloud of clouds.yaml; a cloud picked by name gets the `OS_*` variables
/// `openstack` applies over it. `--cloud` is added in every case.
pub(super) fn openstack_layer(
    probe: &Figment,
    overrides: &Overrides,
    env: &Environment,
) -> Result<(Figment, Vec<String>), ConfigError> {
    let defined: BTreeMap<String, serde::de::IgnoredAny> =
        probe.extract_inner("clouds").unwrap_or_default();
    let clients: BTreeMap<String, ProbeClient> = probe.extract_inner("clients").unwrap_or_default();
    let mut named: Vec<String> = clients.into_values().filter_map(|c| c.cloud).collect();
    named.extend(defined.keys().cloned());
    named.sort();
    named.dedup();

    let file = clouds_yaml::read(env).map_err(|e| ConfigError(crate::error::with_causes(&e)))?;
    let where_from = match &file.path {
        Some(path) => format!("clouds.yaml {}", path.display()),
        None => "no clouds.yaml found".into(),
    };
    let envvars = env.envvars_name().to_string();
    let mut notes = Vec::new();
    let mut wanted: Vec<(String, Pick)> = named.iter().map(|n| (n.clone(), Pick::Named)).collect();
    if let Some(name) = &overrides.cloud {
        wanted.push((name.clone(), Pick::ByName(format!("--cloud {name}"))));
    } else if !named.is_empty() {
        if let Some(name) = env
            .selected_cloud()
            .filter(|n| !named.iter().any(|m| m == n))
        {
            notes.push(format!(
                "OS_CLOUD={name} is not used: the configuration names its clouds ({})",
                named.join(", ")
            ));
        }
    } else if let Some(name) = env.selected_cloud() {
        wanted.push((name.to_string(), Pick::ByName(format!("OS_CLOUD={name}"))));
    } else if !env.cloud_variables().is_empty() {
        wanted.push((envvars.clone(), Pick::Envvars));
    } else if file.clouds.len() == 1 {
        let only = file.clouds.keys().cloned();
        wanted.extend(only.map(|name| (name, Pick::Only)));
    } else if file.clouds.len() > 1 {
        let names: Vec<&str> = file.clouds.keys().map(String::as_str).collect();
        return Err(ConfigError(format!(
            "{where_from} has several clouds ({}): pick one with OS_CLOUD or --cloud, or \
             name one in the configuration",
            names.join(", ")
        )));
    }

    let mut from_file = serde_json::Map::new();
    let mut from_variables = Vec::new();
    for (name, pick) in wanted {
        if let Some(cloud) = file.clouds.get(&name) {
            let mut cloud = cloud.clone();
            clouds_yaml::pick_first_region(&mut cloud);
            if pick != Pick::Named {
                let (base, over) =
                    clouds_yaml::with_os_variables(&name, cloud, env).map_err(ConfigError)?;
                cloud = base;
                from_variables.push((name.clone(), over));
            }
            from_file.insert(name, cloud);
        } else if name == envvars {
            if let Some(cloud) = clouds_yaml::from_os_variables(env) {
                from_variables.push((name, cloud));
            }
        } else if let Pick::ByName(how) = &pick {
            if !defined.contains_key(&name) {
                return Err(ConfigError(format!("{how}: no such cloud ({where_from})")));
            }
        }
    }
    let mut figment = Figment::new();
    if !from_file.is_empty() {
        let clouds = serde_json::json!({ "clouds": from_file });
        figment = figment.merge(Named {
            name: where_from,
            inner: Serialized::defaults(clouds),
        });
    }
    // One layer per variable, so that a message names the variable.
    for (cloud, variables) in from_variables {
        for (variable, table) in variables.by_variable() {
            figment = figment.merge(Named {
                name: variable.to_string(),
                inner: Serialized::defaults(serde_json::json!({ "clouds": { &cloud: table } })),
            });
        }
    }
    Ok((figment, notes))
}

/// How a cloud came to be used. A cloud `openstack` would pick (by name,
/// or the only one) gets the `OS_*` variables `openstack` applies over it;
/// one the configuration names is as the file has it.
#[derive(Debug, PartialEq)]
enum Pick {
    /// Named by the TOML: a `[clouds.NAME]` table, a client's `cloud`.
    Named,
    /// `--cloud NAME` or `OS_CLOUD=NAME`, as a message says it.
    ByName(String),
    /// The `envvars` cloud of an openrc.
    Envvars,
    /// The only cloud of clouds.yaml.
    Only,
}

/// A provider under another name, so messages say `config/demo.toml` or
/// `--listen` rather than "TOML source string".
pub(super) struct Named<P> {
    name: String,
    inner: P,
}

impl<P: figment::Provider> figment::Provider for Named<P> {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.name.clone())
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        self.inner.data()
    }
}

pub(super) fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
