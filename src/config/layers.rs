//! The layers a configuration is made of, later wins: clouds.yaml and
//! `OS_*` → the TOML file → `KEYSTONE_PROXY_*` → command-line flags, each
//! named, so that a validation message can say where a value came from.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;

use super::*;

/// The layers, later wins: clouds.yaml / `OS_*` → TOML → `KEYSTONE_PROXY_*`
/// environment → flags. Built twice: first without the bottom layer, to
/// learn which clouds the upper layers name but do not define.
pub(super) fn figment(
    source: &ConfigSource<'_>,
    overrides: &Overrides,
    env: &Environment,
) -> Result<Figment, ConfigError> {
    let probe = upper_layers(Figment::new(), source, overrides, env)?;
    let base = openstack_layer(&probe, has_file(source, env), env)?;
    upper_layers(base, source, overrides, env)
}

/// The default config file, in the environment's working directory.
fn default_path(env: &Environment) -> std::path::PathBuf {
    env.cwd.join(DEFAULT_CONFIG_PATH)
}

pub(super) fn has_file(source: &ConfigSource<'_>, env: &Environment) -> bool {
    match source {
        ConfigSource::File(_) | ConfigSource::Embedded { .. } => true,
        ConfigSource::Default => default_path(env).is_file(),
    }
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

/// Clouds from clouds.yaml or `OS_*`: the one `OS_CLOUD` names and the ones
/// clients name (the TOML may still override any of their keys), or, when
/// nothing names any and nothing defines any, the only cloud of clouds.yaml
/// or (with no config file at all) the `envvars` cloud of an openrc.
pub(super) fn openstack_layer(
    probe: &Figment,
    has_file: bool,
    env: &Environment,
) -> Result<Figment, ConfigError> {
    let defined: BTreeMap<String, serde::de::IgnoredAny> =
        probe.extract_inner("clouds").unwrap_or_default();
    let clients: BTreeMap<String, ProbeClient> = probe.extract_inner("clients").unwrap_or_default();
    let mut wanted: Vec<String> = clients.into_values().filter_map(|c| c.cloud).collect();
    wanted.extend(env.selected_cloud().map(str::to_string));
    wanted.sort();
    wanted.dedup();

    let file = clouds_yaml::read(env).map_err(|e| ConfigError(crate::error::with_causes(&e)))?;
    let where_from = file
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if wanted.is_empty() && defined.is_empty() {
        if file.clouds.len() == 1 {
            wanted.extend(file.clouds.keys().cloned());
        } else if !has_file && clouds_yaml::from_os_variables(env).is_some() {
            wanted.push(ENVVARS_CLOUD.to_string());
        }
    }
    let mut from_file = serde_json::Map::new();
    let mut from_os = serde_json::Map::new();
    for name in wanted {
        if let Some(cloud) = file.clouds.get(&name) {
            from_file.insert(name, cloud.clone());
        } else if name == ENVVARS_CLOUD {
            if let Some(cloud) = clouds_yaml::from_os_variables(env) {
                from_os.insert(name, cloud);
            }
        } else if env.selected_cloud() == Some(name.as_str()) && !defined.contains_key(&name) {
            let searched = if where_from.is_empty() {
                "no clouds.yaml found".into()
            } else {
                where_from.clone()
            };
            return Err(ConfigError(format!(
                "OS_CLOUD={name}: no such cloud ({searched})"
            )));
        }
    }
    let mut figment = Figment::new();
    if !from_os.is_empty() {
        let clouds = serde_json::json!({ "clouds": from_os });
        figment = figment.merge(Named {
            name: "OS_* variables".into(),
            inner: Serialized::defaults(clouds),
        });
    }
    if !from_file.is_empty() {
        let clouds = serde_json::json!({ "clouds": from_file });
        let name = format!("clouds.yaml {where_from}");
        figment = figment.merge(Named {
            name,
            inner: Serialized::defaults(clouds),
        });
    }
    Ok(figment)
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
