//! Configuration: figment layers in, validated [`Settings`] out.
//!
//! The raw serde shapes mirror the TOML file (and, for clouds, a clouds.yaml
//! entry) so users can paste what they already have. They are turned once,
//! at start-up, into typed settings that the rest of the proxy uses; nothing
//! else ever looks at a raw option. Every validation message names the key
//! and where its value came from, because "invalid config" alone sends an
//! operator hunting through three layers.
//!
//! The parts, in the order a configuration goes through them: `layers`
//! (which sources, in which order), `raw` (the serde shapes), `validate`
//! (every check, raw → settings) and `settings` (what the proxy uses). The
//! vocabulary of users, projects and credentials is `crate::credentials`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::access::{LimitSettings, Rule};
use crate::clouds_yaml::{self, Environment};
pub use crate::credentials::{
    ApiVersion, AppCredRef, AuthKind, Credential, DomainRef, ProjectRef, UserRef,
};

use crate::catalog::normalize_interface;
use secrecy::SecretString;

mod layers;
mod raw;
mod settings;
mod show;
mod validate;

use raw::RawConfig;
pub use settings::*;
pub use show::{REDACTED, to_toml};
use validate::Validator;

/// Where `serve` looks when no `--config` is given.
pub(crate) const DEFAULT_CONFIG_PATH: &str = "config/keystone-proxy.toml";
/// Environment variables with this prefix override the file; `__` nests.
pub(crate) const ENV_PREFIX: &str = "KEYSTONE_PROXY_";

/// A configuration problem, phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Command-line values that override every other layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    /// `--cloud NAME`: the cloud of clouds.yaml to use, as `openstack
    /// --os-cloud` (it beats `OS_CLOUD`).
    pub cloud: Option<String>,
}

/// Where the TOML layer comes from; kept by `serve` to read it again on
/// SIGHUP.
#[derive(Debug, Clone)]
pub enum ConfigSource<'a> {
    /// `--config FILE`: must exist.
    File(PathBuf),
    /// No `--config`: [`DEFAULT_CONFIG_PATH`] if it exists.
    Default,
    /// A config compiled into the binary (the demo).
    Embedded { name: &'a str, text: &'a str },
}

/// Load and validate, with the process environment.
pub fn load(source: ConfigSource<'_>, overrides: &Overrides) -> Result<Settings, ConfigError> {
    load_in(source, overrides, &Environment::from_process())
}

/// `load` for unit tests: in an environment with no variables and no
/// clouds.yaml, whatever the shell running the tests has (`OS_CLOUD`, an
/// openrc, `~/.config/openstack`).
#[cfg(test)]
pub(crate) fn load_isolated(source: ConfigSource<'_>) -> Result<Settings, ConfigError> {
    let nowhere = Environment::new(
        [],
        std::path::Path::new("/nonexistent/keystone-proxy-tests"),
    );
    load_in(source, &Overrides::default(), &nowhere)
}

/// Load and validate, with `env` standing for the process environment
/// (clouds.yaml search path, `OS_CLOUD`, `OS_*`).
pub fn load_in(
    source: ConfigSource<'_>,
    overrides: &Overrides,
    env: &Environment,
) -> Result<Settings, ConfigError> {
    let (figment, notes) = layers::figment(&source, overrides, env)?;
    let raw: RawConfig = figment
        .extract()
        .map_err(|e| ConfigError(layers::describe_figment_error(e)))?;
    let mut settings = Validator { figment: &figment }.settings(raw)?;
    settings.warnings.extend(notes);
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn load_str(text: &str) -> Result<Settings, ConfigError> {
        load_isolated(ConfigSource::Embedded {
            name: "test.toml",
            text,
        })
    }

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn minimal(extra: &str) -> String {
        format!(
            r#"
            {extra}
            [clouds.c]
            auth_url = "https://keystone.example:5000"
            [clouds.c.auth]
            username = "svc"
            password = "hunter2"
            user_domain_name = "Default"
            project_name = "demo"
            project_domain_name = "Default"
            "#
        )
    }

    /// A typo in an interface or an `auth` key is an error that names the
    /// key and what it most likely meant; a feature the proxy lacks is
    /// refused, not dropped; keystoneauth's default domain is honoured.
    #[test]
    fn typos_name_the_key_they_meant() {
        let cloud = |table: &str| {
            format!(
                "[clouds.c]\nauth_url = \"https://k:5000/v3\"\n{table}\n[clouds.c.auth]\n\
                 password = \"hunter2\"\nproject_name = \"demo\"\n"
            )
        };
        let error = |text: &str| load_str(text).unwrap_err().to_string();
        let with_user = |extra: &str| cloud("") + "username = \"svc\"\n" + extra;

        let pubic = error(&(cloud("interface = \"pubic\"") + "username = \"svc\"\n"));
        assert!(
            pubic.contains("clouds.c.interface") && pubic.contains("did you mean public?"),
            "{pubic}"
        );
        let listed =
            error(&(cloud("interface = [\"internal\", \"admn\"]") + "username = \"svc\"\n"));
        assert!(listed.contains("did you mean admin?"), "{listed}");
        let v2_style = load_str(
            &(cloud("interface = \"internalURL\"")
                + "username = \"svc\"\nuser_domain_name = \"D\"\n"),
        );
        assert_eq!(v2_style.unwrap().clouds["c"].interfaces, ["internal"]);

        let usrname = error(&(cloud("") + "usrname = \"svc\"\nuser_domain_name = \"D\"\n"));
        assert!(
            usrname.contains("clouds.c.auth.usrname") && usrname.contains("did you mean username?"),
            "{usrname}"
        );
        let system_cloud = |scope: &str| {
            format!(
                "[clouds.c]\nauth_url = \"https://k:5000/v3\"\n[clouds.c.auth]\nusername = \"svc\"\n\
                 password = \"p\"\nuser_domain_name = \"D\"\nsystem_scope = \"{scope}\"\n"
            )
        };
        let system = load_str(&system_cloud("all")).unwrap();
        assert!(system.clouds["c"].system_scope && system.clouds["c"].project.is_none());
        let not_all = error(&system_cloud("x"));
        assert!(
            not_all.contains("only system scope is \"all\""),
            "{not_all}"
        );
        let both = error(&with_user(
            "user_domain_name = \"D\"\nsystem_scope = \"all\"\n",
        ));
        assert!(
            both.contains("auth.system_scope") && both.contains("not both"),
            "{both}"
        );
        let unknown = error(&with_user("user_domain_name = \"D\"\ncolour = \"blue\"\n"));
        assert!(
            unknown.contains("auth.colour") && unknown.contains("the proxy reads"),
            "{unknown}"
        );

        let settings = load_str(&with_user("default_domain_name = \"Corp\"\n")).unwrap();
        match &settings.clouds["c"].credential {
            Credential::Password { user, .. } => assert_eq!(
                *user,
                crate::credentials::UserRef::Name {
                    name: "svc".into(),
                    domain: DomainRef::Name("Corp".into())
                }
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            settings.clouds["c"].project_domain,
            DomainRef::Name("Corp".into())
        );
    }

    #[test]
    fn defaults_and_normalisation() {
        let settings = load_str(&minimal("")).unwrap();
        assert_eq!(settings.listen.address.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.listen.socket_mode, 0o660);
        assert_eq!(settings.listen.max_header_bytes, 64 * 1024);
        assert_eq!(settings.listen.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(settings.upstream.retry_body_limit, 8 * 1024 * 1024);
        assert_eq!(settings.upstream.timeout, Duration::from_secs(120));
        assert_eq!(settings.token.min_remaining, Duration::from_secs(120));
        let cloud = &settings.clouds["c"];
        assert_eq!(cloud.auth_url, "https://keystone.example:5000");
        assert_eq!(cloud.api_version, None);
        assert_eq!(cloud.interfaces, ["public"]);
        assert_eq!(
            cloud.project,
            Some(ProjectRef::Name {
                name: "demo".into(),
                domain: DomainRef::Name("Default".into())
            })
        );
        assert!(settings.clients.is_empty());
    }

    #[test]
    fn durations_sizes_and_interfaces_parse() {
        let text = r#"
            [upstream]
            connect_timeout = "250ms"
            timeout = "2m"
            retry_body_limit = "1 MiB"
            [token]
            min_remaining = "PT30S"
            [clouds.c]
            auth_url = "http://k/v3"
            interface = ["internalURL", "public"]
            auth = { user_id = "u", password = "p" }
        "#;
        let settings = load_str(text).unwrap();
        assert_eq!(
            settings.upstream.connect_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(settings.upstream.timeout, Duration::from_secs(120));
        assert_eq!(settings.upstream.retry_body_limit, 1024 * 1024);
        assert_eq!(settings.token.min_remaining, Duration::from_secs(30));
        assert_eq!(settings.clouds["c"].interfaces, ["internal", "public"]);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let text = minimal(&format!(
            "[clients.ci]\nkey_sha256 = \"{HASH}\"\nprojects = [\"demo\"]"
        ));
        let settings = load_str(&text).unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains(HASH), "{debug}");
        match &settings.clouds["c"].credential {
            Credential::Password { password, .. } => {
                assert_eq!(password.expose_secret(), "hunter2")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_key_and_source() {
        let text = minimal(&format!(
            "[clients.ci]\nkey_sha256 = \"{HASH}\"\ncloud = \"nope\"\nprojects = [\"demo\"]"
        ));
        let error = load_str(&text).unwrap_err().to_string();
        assert!(error.contains("clients.ci.cloud"), "{error}");
        assert!(error.contains("nope"), "{error}");
        assert!(error.contains("test.toml"), "{error}");

        let text = minimal("[clients.ci]\nkey_sha256 = \"abc\"");
        let error = load_str(&text).unwrap_err().to_string();
        assert!(error.contains("clients.ci.key_sha256"), "{error}");
    }

    #[test]
    fn unknown_keys_and_bad_types_are_reported() {
        let error = load_str(&minimal("[listen]\nadress = \"x\""))
            .unwrap_err()
            .to_string();
        assert!(error.contains("adress"), "{error}");
        let error = load_str(&minimal("[upstream]\ntimeout = \"soon\""))
            .unwrap_err()
            .to_string();
        assert!(error.contains("timeout"), "{error}");
    }

    #[test]
    fn missing_user_domain_is_an_error() {
        let text = r#"
            [clouds.c]
            auth_url = "http://k/v3"
            auth = { username = "svc", password = "p" }
        "#;
        let error = load_str(text).unwrap_err().to_string();
        assert!(error.contains("clouds.c.auth.user_domain_name"), "{error}");
    }

    #[test]
    fn application_credentials_by_id_and_by_name() {
        let text = r#"
            [clouds.a]
            auth_url = "http://k/v3"
            auth = { application_credential_id = "abc", application_credential_secret = "s" }
            [clouds.b]
            auth_url = "http://k/v3"
            auth_type = "v3applicationcredential"
            [clouds.b.auth]
            application_credential_name = "ac"
            application_credential_secret = "s"
            username = "u"
            user_domain_id = "default"
            [clients.x]
            key_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            cloud = "a"
        "#;
        let settings = load_str(text).unwrap();
        assert!(matches!(
            &settings.clouds["a"].credential,
            Credential::ApplicationCredential { id: AppCredRef::Id(id), .. } if id == "abc"
        ));
        assert!(matches!(
            &settings.clouds["b"].credential,
            Credential::ApplicationCredential { id: AppCredRef::Name { name, .. }, .. } if name == "ac"
        ));
        assert_eq!(settings.clients[0].projects, ["*"]);
    }

    #[test]
    fn sidecar_mode_requires_loopback() {
        let error = load_str(&minimal("[listen]\naddress = \"0.0.0.0:8080\"")).unwrap_err();
        assert!(error.to_string().contains("loopback"), "{error}");
        let with_client = minimal(&format!(
            "[listen]\naddress = \"0.0.0.0:8080\"\n[clients.ci]\nkey_sha256 = \"{HASH}\""
        ));
        assert!(load_str(&with_client).is_ok());
    }

    #[test]
    fn password_file_drops_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let text = format!(
            r#"
            [clouds.c]
            auth_url = "http://k/v3"
            auth = {{ user_id = "u1", password_file = "{}" }}
            "#,
            path.display()
        );
        let settings = load_str(&text).unwrap();
        match &settings.clouds["c"].credential {
            Credential::Password { password, user } => {
                assert_eq!(password.expose_secret(), "s3cret");
                assert_eq!(user, &UserRef::Id("u1".into()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn selector_is_id_only_when_32_hex_digits() {
        let domain = DomainRef::Id("default".into());
        assert_eq!(
            ProjectRef::from_selector("0123456789abcdef0123456789ABCDEF", &domain),
            ProjectRef::Id("0123456789abcdef0123456789ABCDEF".into())
        );
        assert!(matches!(
            ProjectRef::from_selector("demo", &domain),
            ProjectRef::Name { .. }
        ));
    }

    fn env_with(vars: &[(&str, &str)], cwd: &std::path::Path) -> Environment {
        Environment::new(vars.iter().copied(), cwd)
    }

    const CLOUDS_YAML: &str = "
clouds:
  mycloud:
    auth:
      auth_url: https://keystone.example:5000/v3
      username: svc
      password: from-yaml
      user_domain_name: Default
      tenant_name: demo
    region_name: RegionOne
    identity_api_version: 3
    interface: internal
  second:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://second:5000
      application_credential_id: ac
      application_credential_secret: s
";

    #[test]
    fn os_cloud_picks_a_cloud_from_clouds_yaml_under_the_toml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clouds.yaml"), CLOUDS_YAML).unwrap();
        let env = env_with(&[("OS_CLOUD", "mycloud")], dir.path());
        let toml = "[clouds.mycloud]\nregion_name = \"RegionTwo\"\n";
        let settings = load_in(
            ConfigSource::Embedded {
                name: "t",
                text: toml,
            },
            &Overrides::default(),
            &env,
        )
        .unwrap();
        let cloud = &settings.clouds["mycloud"];
        assert_eq!(
            cloud.region_name.as_deref(),
            Some("RegionTwo"),
            "the TOML wins"
        );
        assert_eq!(cloud.interfaces, ["internal"]);
        assert_eq!(cloud.api_version, Some(ApiVersion::V3));
        assert_eq!(cloud.auth_url, "https://keystone.example:5000/v3");
        assert!(matches!(&cloud.project, Some(ProjectRef::Name { name, .. }) if name == "demo"));
        assert_eq!(settings.clouds.len(), 1, "only the cloud asked for");
    }

    /// The start-up line says where each part came from: the variable for
    /// a value an `OS_*` variable set over the cloud picked by name.
    #[test]
    fn each_part_of_a_cloud_names_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("clouds.yaml");
        std::fs::write(&yaml, CLOUDS_YAML).unwrap();
        let vars = [("OS_CLOUD", "mycloud"), ("OS_PROJECT_NAME", "ops")];
        let env = env_with(&vars, dir.path());
        let settings = load_in(ConfigSource::Default, &Overrides::default(), &env).unwrap();
        let cloud = &settings.clouds["mycloud"];
        assert!(matches!(&cloud.project, Some(ProjectRef::Name { name, .. }) if name == "ops"));
        let file = format!(
            "clouds.yaml {}",
            std::path::absolute(&yaml).unwrap().display()
        );
        assert_eq!(
            cloud.sources.to_string(),
            format!(
                "auth_url, identity_api, credential, region, interface: {file}; project: OS_PROJECT_NAME"
            )
        );

        let openrc = [
            ("OS_AUTH_URL", "http://k:5000/v3"),
            ("OS_USERNAME", "svc"),
            ("OS_PASSWORD", "pw"),
            ("OS_DEFAULT_DOMAIN", "default"),
            ("OS_TENANT_NAME", "demo"),
        ];
        let empty = tempfile::tempdir().unwrap();
        let env = env_with(&openrc, empty.path());
        let settings = load_in(ConfigSource::Default, &Overrides::default(), &env).unwrap();
        let sources = &settings.clouds["envvars"].sources;
        assert_eq!(sources.of("auth_url"), Some("OS_AUTH_URL"));
        assert_eq!(sources.of("credential"), Some("OS_USERNAME"));
        assert_eq!(sources.of("project"), Some("OS_TENANT_NAME"));
        assert_eq!(sources.of("interface"), None, "the default");
        assert!(
            sources
                .to_string()
                .contains("identity_api, region, interface: default"),
            "{sources}"
        );
    }

    #[test]
    fn clients_may_name_clouds_of_clouds_yaml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clouds.yaml"), CLOUDS_YAML).unwrap();
        let env = env_with(&[], dir.path());
        let toml = format!("[clients.ci]\nkey_sha256 = \"{HASH}\"\ncloud = \"second\"\n");
        let settings = load_in(
            ConfigSource::Embedded {
                name: "t",
                text: &toml,
            },
            &Overrides::default(),
            &env,
        )
        .unwrap();
        assert!(matches!(
            settings.clouds["second"].credential,
            Credential::ApplicationCredential { .. }
        ));
    }

    /// In a clouds.yaml entry a typo of a key the proxy reads is refused
    /// with the key it meant, a feature it lacks is refused by name, and
    /// other clients' settings pass; a client certificate is read.
    #[test]
    fn clouds_yaml_typos_and_features_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_with(&[("OS_CLOUD", "mycloud")], dir.path());
        let with = |extra: &str| {
            let yaml = CLOUDS_YAML.replace("    interface: internal\n", &format!("    {extra}\n"));
            std::fs::write(dir.path().join("clouds.yaml"), yaml).unwrap();
            load_in(ConfigSource::Default, &Overrides::default(), &env)
        };
        let error = with("regon_name: RegionTwo").unwrap_err().to_string();
        assert!(
            error.contains("clouds.mycloud.regon_name")
                && error.contains("did you mean region_name?"),
            "{error}"
        );
        assert!(error.contains("clouds.yaml"), "it says where: {error}");
        let settings = with("cert: /etc/client.pem\n    key: /etc/client.key").unwrap();
        let expected = ClientCert {
            cert: "/etc/client.pem".into(),
            key: Some("/etc/client.key".into()),
        };
        assert_eq!(settings.clouds["mycloud"].client_cert, Some(expected));
        let error = with("key: /etc/client.key").unwrap_err().to_string();
        assert!(
            error.contains("clouds.mycloud.key") && error.contains("needs cert"),
            "{error}"
        );
        let error = with("profile: vexxhost").unwrap_err().to_string();
        assert!(error.contains("vendor profiles"), "{error}");
        let settings = with("image_format: raw\n    volume_api_version: 3").unwrap();
        assert!(settings.clouds.contains_key("mycloud"));
    }

    #[test]
    fn a_missing_os_cloud_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clouds.yaml"), CLOUDS_YAML).unwrap();
        let env = env_with(&[("OS_CLOUD", "nope")], dir.path());
        let error = load_in(ConfigSource::Default, &Overrides::default(), &env).unwrap_err();
        assert!(error.to_string().contains("OS_CLOUD=nope"), "{error}");
    }

    #[test]
    fn an_openrc_alone_makes_the_envvars_cloud() {
        let dir = tempfile::tempdir().unwrap();
        let openrc = [
            ("OS_AUTH_URL", "http://k:5000/v3"),
            ("OS_USERNAME", "svc"),
            ("OS_PASSWORD", "pw"),
            ("OS_USER_DOMAIN_NAME", "Default"),
            ("OS_PROJECT_NAME", "demo"),
        ];
        let env = env_with(&openrc, dir.path());
        let settings = load_in(ConfigSource::Default, &Overrides::default(), &env).unwrap();
        assert_eq!(settings.clouds.keys().collect::<Vec<_>>(), ["envvars"]);
        // An explicit config is never silently overridden by OS_*.
        let text = minimal("");
        let settings = load_in(
            ConfigSource::Embedded {
                name: "t",
                text: &text,
            },
            &Overrides::default(),
            &env,
        )
        .unwrap();
        assert_eq!(settings.clouds.keys().collect::<Vec<_>>(), ["c"]);
        match &settings.clouds["c"].credential {
            Credential::Password { password, .. } => {
                assert_eq!(password.expose_secret(), "hunter2")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn auth_types_and_versions() {
        let text = r#"
            [clouds.old]
            auth_url = "http://k:5000"
            auth_type = "v2password"
            auth = { username = "u", password = "p", tenant_id = "t1" }
            [clouds.tok]
            auth_url = "http://k:5000/v3"
            auth_type = "token"
            auth = { token = "tkn" }
            [clouds.pinned]
            auth_url = "http://k:5000/v2.0"
            identity_api_version = 3
            auth = { user_id = "u", password = "p" }
            [clients.x]
            key_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            cloud = "old"
        "#;
        let settings = load_str(text).unwrap();
        let old = &settings.clouds["old"];
        assert_eq!(old.api_version, Some(ApiVersion::V2));
        assert_eq!(old.project, Some(ProjectRef::Id("t1".into())));
        assert!(matches!(
            &old.credential,
            Credential::Password {
                user: UserRef::Name { .. },
                ..
            }
        ));
        assert!(matches!(
            &settings.clouds["tok"].credential,
            Credential::Token(_)
        ));
        assert_eq!(settings.clouds["pinned"].api_version, Some(ApiVersion::V3));
        let debug = format!("{settings:?}");
        assert!(!debug.contains("tkn"), "{debug}");

        let error = load_str(
            "[clouds.c]\nauth_url = \"http://k\"\nauth_type = \"oidc\"\nauth = { token = \"t\" }",
        )
        .unwrap_err();
        assert!(error.to_string().contains("clouds.c.auth_type"), "{error}");
        let error = load_str(
            "[clouds.c]\nauth_url = \"http://k\"\nidentity_api_version = 2\n\
             auth = { application_credential_id = \"a\", application_credential_secret = \"s\" }",
        )
        .unwrap_err();
        assert!(error.to_string().contains("v3"), "{error}");
    }
}
