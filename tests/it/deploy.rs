//! The deployment examples in deploy/: they parse, they are locked down as
//! documented, their configs pass `check-config`, and every way they run the
//! binary uses subcommands and flags it has.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::run_binary;

/// Where the image and the systemd unit install the binary.
const INSTALLED_BINARY: &str = "/usr/local/bin/keystone-proxy";
const ADMIN_PORT: u64 = 9090;

// ---------------------------------------------------------------------------
// Reading deploy/

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(relative: &str) -> String {
    let path = deploy_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Files under deploy/ (recursively) whose name ends in one of `suffixes`.
fn deploy_files(suffixes: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, suffixes: &[&str], found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read deploy/") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, suffixes, found);
            } else if suffixes.iter().any(|s| path.to_string_lossy().ends_with(s)) {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&deploy_dir(), suffixes, &mut found);
    found.sort();
    found
}

/// Each document of a (multi-document) YAML text; documents holding only
/// comments are left out.
fn yaml_documents(text: &str, origin: &str) -> Vec<Value> {
    let mut chunks = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            chunks.push(String::new());
        } else {
            let chunk = chunks.last_mut().expect("one chunk");
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    chunks
        .iter()
        .filter(|chunk| {
            chunk.lines().any(|l| {
                let l = l.trim();
                !l.is_empty() && !l.starts_with('#')
            })
        })
        .enumerate()
        .map(|(i, chunk)| {
            serde_saphyr::from_str::<Value>(chunk)
                .unwrap_or_else(|e| panic!("{origin}, document {}: {e}", i + 1))
        })
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("not a string: {v}"))
                .to_string()
        })
        .collect()
}

/// The value after `flag` in an argument list.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

// ---------------------------------------------------------------------------
// The Kubernetes example

struct Kubernetes {
    documents: Vec<Value>,
}

impl Kubernetes {
    /// The sidecar example.
    fn load() -> Kubernetes {
        Kubernetes::load_file("kubernetes/sidecar.yaml")
    }

    /// The central broker example.
    fn broker() -> Kubernetes {
        Kubernetes::load_file("kubernetes/broker.yaml")
    }

    fn load_file(name: &str) -> Kubernetes {
        let documents = yaml_documents(&read(name), name);
        Kubernetes { documents }
    }

    fn deployment(&self) -> &Value {
        self.documents
            .iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("a Deployment")
    }

    /// The objects of `kind`.
    fn all(&self, kind: &str) -> Vec<&Value> {
        self.documents
            .iter()
            .filter(|d| d["kind"] == kind)
            .collect()
    }

    fn object(&self, kind: &str, name: &str) -> &Value {
        self.documents
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in the manifest"))
    }

    fn pod(&self) -> &Value {
        &self.deployment()["spec"]["template"]["spec"]
    }

    /// The keystone-proxy container, a native sidecar or a plain container.
    fn sidecar(&self) -> &Value {
        let pod = self.pod();
        ["initContainers", "containers"]
            .iter()
            .filter_map(|list| pod[list].as_array())
            .flatten()
            .find(|c| {
                c["image"]
                    .as_str()
                    .is_some_and(|i| i.contains("keystone-proxy"))
            })
            .expect("a keystone-proxy container")
    }

    fn sidecar_env(&self, name: &str) -> String {
        self.sidecar()["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("the sidecar sets no {name}"))
            .to_string()
    }

    /// What the sidecar runs: its command (else the image's entrypoint) and args.
    fn sidecar_argv(&self) -> Vec<String> {
        let sidecar = self.sidecar();
        let mut argv = match sidecar.get("command") {
            Some(command) => strings(command),
            None => Dockerfile::load().exec_form("ENTRYPOINT"),
        };
        argv.extend(sidecar.get("args").map(strings).unwrap_or_default());
        argv
    }

    /// The text of the file at `path` in the sidecar: it must come from a
    /// read-only mount of a ConfigMap or Secret of this manifest.
    fn sidecar_file(&self, path: &str) -> String {
        let mount = self.sidecar()["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                let dir = m["mountPath"].as_str().unwrap_or_default();
                path.strip_prefix(dir)
                    .is_some_and(|rest| rest.starts_with('/'))
            })
            .unwrap_or_else(|| panic!("nothing is mounted at {path}"));
        assert_eq!(mount["readOnly"], true, "{path} is mounted read-only");
        let key = &path[mount["mountPath"].as_str().unwrap_or_default().len() + 1..];
        let volume = self.pod()["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == mount["name"])
            .unwrap_or_else(|| panic!("no volume {}", mount["name"]));
        let text = if let Some(secret) = volume.get("secret") {
            let secret = self.object("Secret", secret["secretName"].as_str().unwrap_or_default());
            &secret["stringData"][key]
        } else if let Some(config_map) = volume.get("configMap") {
            &self.object("ConfigMap", config_map["name"].as_str().unwrap_or_default())["data"][key]
        } else {
            panic!("{path} comes from neither a Secret nor a ConfigMap: {volume}")
        };
        text.as_str()
            .unwrap_or_else(|| panic!("no key {key} behind {path}"))
            .to_string()
    }

    fn sidecar_clouds_yaml(&self) -> String {
        self.sidecar_file(&self.sidecar_env("OS_CLIENT_CONFIG_FILE"))
    }

    /// A securityContext field of the sidecar, falling back to the pod's.
    fn security(&self, field: &str) -> &Value {
        match &self.sidecar()["securityContext"][field] {
            Value::Null => &self.pod()["securityContext"][field],
            value => value,
        }
    }

    /// The port a probe's httpGet names, by number or by container port name.
    fn probe_port(&self, probe: &Value) -> u64 {
        let port = &probe["httpGet"]["port"];
        port.as_u64().unwrap_or_else(|| {
            self.sidecar()["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == *port)
                .and_then(|p| p["containerPort"].as_u64())
                .unwrap_or_else(|| panic!("probe port {port} is not a container port"))
        })
    }
}

// ---------------------------------------------------------------------------
// The Dockerfile, the compose file, the systemd unit

struct Dockerfile {
    /// Instructions, continuation lines joined, comments left out.
    instructions: Vec<(String, String)>,
}

impl Dockerfile {
    fn load() -> Dockerfile {
        let mut logical = Vec::new();
        let mut pending = String::new();
        for line in read("Dockerfile").lines() {
            if pending.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#'))
            {
                continue;
            }
            match line.trim_end().strip_suffix('\\') {
                Some(head) => pending.push_str(head),
                None => logical.push(std::mem::take(&mut pending) + line),
            }
        }
        let instructions = logical
            .iter()
            .map(|l| {
                let (word, rest) = l.trim().split_once(char::is_whitespace).unwrap_or((l, ""));
                (word.to_ascii_uppercase(), rest.trim().to_string())
            })
            .collect();
        Dockerfile { instructions }
    }

    /// The arguments of the last `name` instruction.
    fn last(&self, name: &str) -> &str {
        self.instructions
            .iter()
            .rev()
            .find(|(word, _)| word == name)
            .map(|(_, rest)| rest.as_str())
            .unwrap_or_else(|| panic!("no {name} in the Dockerfile"))
    }

    /// A JSON (exec form) argument list: the image has no shell.
    fn parse_exec_form(what: &str, text: &str) -> Vec<String> {
        let value: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{what} must be exec form (no shell in the image): {e}"));
        strings(&value)
    }

    fn exec_form(&self, name: &str) -> Vec<String> {
        Self::parse_exec_form(name, self.last(name))
    }

    fn healthcheck(&self) -> Vec<String> {
        let (_options, command) = self
            .last("HEALTHCHECK")
            .split_once("CMD")
            .expect("HEALTHCHECK CMD");
        Self::parse_exec_form("HEALTHCHECK", command.trim())
    }
}

fn compose_service() -> Value {
    let documents = yaml_documents(&read("compose.yaml"), "compose.yaml");
    let [compose] = documents.as_slice() else {
        panic!("compose.yaml is one document");
    };
    compose["services"]["keystone-proxy"].clone()
}

/// The compose service's command: its entrypoint (else the image's) and command.
fn compose_argv(service: &Value) -> Vec<String> {
    let mut argv = match service.get("entrypoint") {
        Some(entrypoint) => strings(entrypoint),
        None => Dockerfile::load().exec_form("ENTRYPOINT"),
    };
    argv.extend(service.get("command").map(strings).unwrap_or_default());
    argv
}

/// The compose healthcheck's command, which must not need a shell.
fn compose_healthcheck(service: &Value) -> Vec<String> {
    let test = strings(&service["healthcheck"]["test"]);
    assert_eq!(
        test.first().map(String::as_str),
        Some("CMD"),
        "no shell in the image: {test:?}"
    );
    test[1..].to_vec()
}

fn systemd_exec_start() -> Vec<String> {
    let unit = read("keystone-proxy.service");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart=");
    line.trim_start_matches(['-', '@', ':', '+', '!'])
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Every way deploy/ runs the binary, as (where, argv).
fn invocations() -> Vec<(&'static str, Vec<String>)> {
    let docker = Dockerfile::load();
    let mut image_default = docker.exec_form("ENTRYPOINT");
    image_default.extend(docker.exec_form("CMD"));
    let compose = compose_service();
    vec![
        ("Dockerfile ENTRYPOINT + CMD", image_default),
        ("Dockerfile HEALTHCHECK", docker.healthcheck()),
        ("kubernetes/sidecar.yaml", Kubernetes::load().sidecar_argv()),
        (
            "kubernetes/broker.yaml",
            Kubernetes::broker().sidecar_argv(),
        ),
        ("compose.yaml command", compose_argv(&compose)),
        ("compose.yaml healthcheck", compose_healthcheck(&compose)),
        ("keystone-proxy.service ExecStart", systemd_exec_start()),
    ]
}

// ---------------------------------------------------------------------------
// The binary's --help

async fn help(subcommand: Option<&str>) -> String {
    let args: Vec<&str> = subcommand.into_iter().chain(["--help"]).collect();
    let run = run_binary(&args, &[]).await;
    assert!(run.ok, "{args:?}: {run:?}");
    run.stdout
}

/// The subcommands a `--help` lists under "Commands:".
fn listed_subcommands(help: &str) -> BTreeSet<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The long options a `--help` lists (lines starting with `-`).
fn listed_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_string()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn every_yaml_file_parses() {
    let files = deploy_files(&[".yaml", ".yml"]);
    assert!(
        files.len() >= 2,
        "the compose and kubernetes examples: {files:?}"
    );
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let documents = yaml_documents(&text, &path.display().to_string());
        assert!(
            !documents.is_empty(),
            "{} holds no document",
            path.display()
        );
    }
}

#[test]
fn kubernetes_sidecar_is_locked_down_probed_and_bounded() {
    let k8s = Kubernetes::load();
    let sidecar = k8s.sidecar();
    assert_eq!(sidecar["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        sidecar["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert!(
        strings(&sidecar["securityContext"]["capabilities"]["drop"]).contains(&"ALL".into()),
        "drops all capabilities"
    );
    assert_eq!(*k8s.security("runAsNonRoot"), true);
    assert_eq!(*k8s.security("runAsUser"), 65532);

    assert_probed(&k8s);
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            let quantity = &sidecar["resources"][bound][resource];
            assert!(
                quantity.is_number() || quantity.as_str().is_some_and(|q| !q.is_empty()),
                "resources.{bound}.{resource} is set: {quantity}"
            );
        }
    }
}

/// How long `/readyz` may wait for Keystone before it answers (the
/// proxy's `READY_WAIT`): a readiness probe must wait longer.
const READY_WAIT_SECONDS: u64 = 3;

/// Liveness on `/healthz`, readiness on `/readyz` with a timeout above
/// `/readyz`'s own wait, both on the admin port.
fn assert_probed(k8s: &Kubernetes) {
    let container = k8s.sidecar();
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let probe_spec = &container[probe];
        assert_eq!(probe_spec["httpGet"]["path"], path, "{probe}");
        assert_eq!(k8s.probe_port(probe_spec), ADMIN_PORT, "{probe}");
    }
    let timeout = container["readinessProbe"]["timeoutSeconds"].as_u64();
    assert!(
        timeout.is_some_and(|t| t > READY_WAIT_SECONDS),
        "readiness timeoutSeconds {timeout:?} (the default is 1 s)"
    );
}

/// A duration as the config writes it (`"5s"`, `"30s"`), in seconds.
fn config_seconds(config: &toml::Value, table: &str, key: &str) -> u64 {
    let text = config[table][key]
        .as_str()
        .unwrap_or_else(|| panic!("{table}.{key}"));
    text.strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{table}.{key} = {text:?}: write it in seconds"))
}

/// The broker: several replicas spread over nodes, a disruption budget and
/// a Service over the same pods, the session keys from a Secret mounted
/// where the config says, a drain the kubelet waits for.
#[test]
fn kubernetes_broker_runs_replicas_that_share_keys_and_drain() {
    let k8s = Kubernetes::broker();
    assert_probed(&k8s);
    let deployment = k8s.deployment();
    assert!(deployment["spec"]["replicas"].as_u64() >= Some(3));
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let [budget] = k8s.all("PodDisruptionBudget")[..] else {
        panic!("one PodDisruptionBudget")
    };
    assert_eq!(budget["spec"]["selector"]["matchLabels"], *labels);
    let [service] = k8s.all("Service")[..] else {
        panic!("one Service")
    };
    for (name, value) in service["spec"]["selector"].as_object().expect("a selector") {
        assert_eq!(labels[name], *value, "the Service selects the pods");
    }
    let anti = &k8s.pod()["affinity"]["podAntiAffinity"];
    assert!(anti.is_object(), "pod anti-affinity");

    let argv = k8s.sidecar_argv();
    let path = flag_value(&argv, "--config").expect("--config");
    let config: toml::Value = toml::from_str(&k8s.sidecar_file(path)).expect("TOML");
    let keys = config["token"]["session_keys"]
        .as_str()
        .expect("token.session_keys");
    let mount = k8s.sidecar()["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"] == keys)
        .unwrap_or_else(|| panic!("nothing is mounted at {keys}"));
    assert_eq!(mount["readOnly"], true);
    let volume = k8s.pod()["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .expect("the keys' volume");
    assert!(
        volume["secret"].is_object(),
        "session keys come from a Secret"
    );

    let delay = config_seconds(&config, "listen", "shutdown_delay");
    let drain = config_seconds(&config, "listen", "shutdown_timeout");
    assert!(delay >= 5, "long enough for the endpoints to drop the pod");
    let grace = k8s.pod()["terminationGracePeriodSeconds"].as_u64();
    assert!(
        grace.is_some_and(|g| g > delay + drain),
        "terminationGracePeriodSeconds {grace:?} > {delay} + {drain}"
    );
}

/// The broker's ConfigMap passes `check-config` with session keys made by
/// `gen-session-key` under the names its Secret gives them.
#[tokio::test]
async fn kubernetes_broker_config_passes_check_config_with_its_keys() {
    let k8s = Kubernetes::broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let made = dir.path().join("made");
    for _ in 0..2 {
        let run = run_binary(&["gen-session-key", made.to_str().unwrap()], &[]).await;
        assert!(run.ok, "{run:?}");
    }
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let secret = k8s.object("Secret", "keystone-proxy-session-keys");
    let names: Vec<&String> = secret["stringData"]
        .as_object()
        .expect("stringData")
        .keys()
        .collect();
    assert_eq!(names, ["0", "1"], "as gen-session-key names them");
    for name in names {
        std::fs::copy(made.join(name), keys.join(name)).expect("a key made for each name");
    }
    let config = dir.path().join("broker.toml");
    let argv = k8s.sidecar_argv();
    let path = flag_value(&argv, "--config").expect("--config");
    std::fs::write(&config, k8s.sidecar_file(path)).unwrap();
    let clouds_yaml = dir.path().join("clouds.yaml");
    std::fs::write(&clouds_yaml, k8s.sidecar_clouds_yaml()).expect("write clouds.yaml");
    let env = [
        ("OS_CLOUD", k8s.sidecar_env("OS_CLOUD")),
        ("OS_CLIENT_CONFIG_FILE", clouds_yaml.display().to_string()),
        (
            "KEYSTONE_PROXY_TOKEN__SESSION_KEYS",
            keys.display().to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = config.to_str().unwrap();
    let run = run_binary(&["check-config", "--config", config], &env).await;
    assert!(run.ok, "{run:?}");
    std::fs::write(keys.join("1"), "REPLACE-WITH-A-KEY-FROM-gen-session-key").unwrap();
    let run = run_binary(&["check-config", "--config", config], &env).await;
    assert!(!run.ok && run.stderr.contains("not 32 bytes"), "{run:?}");
}

/// The image's HEALTHCHECK reads the configuration its CMD serves.
#[test]
fn the_image_healthcheck_reads_the_served_configuration() {
    let docker = Dockerfile::load();
    let env = docker.last("ENV");
    let config = env
        .strip_prefix("KEYSTONE_PROXY_CONFIG=")
        .unwrap_or_else(|| panic!("ENV KEYSTONE_PROXY_CONFIG=…: {env}"));
    let cmd = docker.exec_form("CMD");
    assert_eq!(flag_value(&cmd, "--config"), Some(config), "{cmd:?}");
    assert_eq!(docker.healthcheck()[1..], ["healthcheck"]);
}

#[test]
fn kubernetes_config_map_is_the_deploy_config() {
    let k8s = Kubernetes::load();
    let argv = k8s.sidecar_argv();
    let config = flag_value(&argv, "--config").expect("the sidecar passes --config");
    assert_eq!(
        k8s.sidecar_file(config).trim_end(),
        read("keystone-proxy.toml").trim_end(),
        "the ConfigMap holds deploy/keystone-proxy.toml"
    );
    assert!(
        k8s.sidecar_clouds_yaml()
            .contains(&format!("{}:", k8s.sidecar_env("OS_CLOUD"))),
        "the mounted clouds.yaml defines the cloud OS_CLOUD names"
    );
}

#[test]
fn compose_service_is_healthchecked_read_only_and_local() {
    let service = compose_service();
    let healthcheck = compose_healthcheck(&service);
    assert_eq!(
        healthcheck.get(1).map(String::as_str),
        Some("healthcheck"),
        "{healthcheck:?}"
    );
    assert_eq!(service["read_only"], true);
    for port in strings(&service["ports"]) {
        assert!(
            port.starts_with("127.0.0.1:"),
            "{port} is published on loopback only"
        );
    }
    let config = flag_value(&compose_argv(&service), "--config")
        .expect("--config")
        .to_string();
    let mount = strings(&service["volumes"])
        .into_iter()
        .find(|v| v.split(':').nth(1) == Some(config.as_str()))
        .unwrap_or_else(|| panic!("nothing is mounted at {config}"));
    assert!(mount.ends_with(":ro"), "{mount} is read-only");
    let source = mount.split(':').next().unwrap_or_default();
    assert!(
        deploy_dir().join(source).is_file(),
        "{source} exists next to compose.yaml"
    );
}

#[test]
fn dockerfile_installs_the_binary_and_runs_it_unprivileged() {
    let docker = Dockerfile::load();
    assert!(
        docker.last("COPY").ends_with(INSTALLED_BINARY),
        "the final stage copies the binary to {INSTALLED_BINARY}"
    );
    assert_eq!(
        docker.last("USER").split(':').next(),
        Some("65532"),
        "numeric, for runAsNonRoot"
    );
    let exposed: Vec<&str> = docker.last("EXPOSE").split_whitespace().collect();
    assert!(
        exposed.contains(&"8080") && exposed.contains(&"9090"),
        "{exposed:?}"
    );
}

#[tokio::test]
async fn deploy_configs_pass_check_config() {
    let k8s = Kubernetes::load();
    let dir = tempfile::tempdir().expect("tempdir");
    let clouds_yaml = dir.path().join("clouds.yaml");
    std::fs::write(&clouds_yaml, k8s.sidecar_clouds_yaml()).expect("write clouds.yaml");
    let env = [
        ("OS_CLOUD", k8s.sidecar_env("OS_CLOUD")),
        ("OS_CLIENT_CONFIG_FILE", clouds_yaml.display().to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let files = deploy_files(&[".toml"]);
    assert!(
        files.len() >= 2,
        "the sidecar and compose configs: {files:?}"
    );
    for path in files {
        let path = path.to_str().expect("utf-8 path");
        let run = run_binary(&["check-config", "--config", path], &env).await;
        assert!(run.ok, "{path}: {run:?}");
    }
}

#[tokio::test]
async fn deploy_files_use_only_real_subcommands_and_flags() {
    let top = help(None).await;
    let subcommands = listed_subcommands(&top);
    assert!(subcommands.contains("serve"), "Commands: in {top}");
    for (origin, argv) in invocations() {
        let (program, args) = argv
            .split_first()
            .unwrap_or_else(|| panic!("{origin}: empty"));
        assert_eq!(program, INSTALLED_BINARY, "{origin}");
        let subcommand = args
            .first()
            .filter(|a| !a.starts_with('-'))
            .map(String::as_str);
        if let Some(name) = subcommand {
            assert!(
                subcommands.contains(name),
                "{origin}: no subcommand {name:?}"
            );
        }
        let flags = listed_flags(&help(subcommand).await);
        for arg in args.iter().filter(|a| a.starts_with("--")) {
            let flag = arg.split('=').next().unwrap_or_default();
            assert!(
                flags.contains(flag),
                "{origin}: {subcommand:?} has no {flag}: {flags:?}"
            );
        }
    }
}

#[test]
fn systemd_unit_verifies() {
    let Some(analyze) = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("systemd-analyze"))
        .find(|path| path.is_file())
    else {
        eprintln!("skipped: systemd-analyze is not on PATH");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("keystone-proxy.service");
    let text = read("keystone-proxy.service").replace(INSTALLED_BINARY, "/bin/true");
    std::fs::write(&unit, text).expect("write unit");
    let output = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // verify only warns (exit 0) about unknown keys and bad values.
    let unit_name = unit.display().to_string();
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains(&unit_name)).collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}
