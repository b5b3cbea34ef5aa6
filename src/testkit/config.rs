//! A proxy configuration built in code and written out by a TOML
//! serializer, for the tests, the soak and the bench. Hand-assembled TOML
//! text (six renderers once) breaks on a quote or a table written twice;
//! here a key is set by its dotted path, values are typed (strings,
//! integers, booleans, arrays), and the file is always well-formed.

use std::path::Path;

use toml::{Table, Value};

use crate::secrets::sha256_hex;

/// The configuration file's tables, key by key.
// No `Debug`: the file holds credentials (a cloud password, say).
#[derive(Clone, Default, PartialEq)]
pub struct ProxyConfig {
    root: Table,
}

impl ProxyConfig {
    /// An empty file: every key at its default.
    pub fn new() -> ProxyConfig {
        ProxyConfig::default()
    }

    /// A fragment read from TOML text (a client's rules, say, written as
    /// the README shows them), to [`merge`](Self::merge) into another.
    pub fn from_toml(text: &str) -> Result<ProxyConfig, toml::de::Error> {
        Ok(ProxyConfig {
            root: toml::from_str(text)?,
        })
    }

    /// Every key of `other`, over this one's: tables are merged key by
    /// key, any other value replaced.
    pub fn merge(&mut self, other: &ProxyConfig) -> &mut ProxyConfig {
        merge_tables(&mut self.root, &other.root);
        self
    }

    /// Replace the table at `key` with these string values, such as a
    /// cloud's `auth` table for another kind of credential.
    pub fn table(&mut self, key: &str, values: &[(&str, &str)]) -> &mut ProxyConfig {
        let table: Table = values
            .iter()
            .map(|(name, value)| (name.to_string(), Value::from(*value)))
            .collect();
        self.set(key, table)
    }

    /// Set `key`, a dotted path such as `upstream.timeout` or
    /// `clouds.test.auth.password`, creating the tables on the way.
    /// A key that names a table replaces it whole.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut ProxyConfig {
        let (tables, last) = split(key);
        let mut table = &mut self.root;
        for name in tables {
            if !matches!(table.get(name), Some(Value::Table(_))) {
                table.insert(name.to_string(), Value::Table(Table::new()));
            }
            table = table
                .get_mut(name)
                .and_then(Value::as_table_mut)
                .expect("a table, inserted just above if it was not");
        }
        table.insert(last.to_string(), value.into());
        self
    }

    /// Remove `key` (a value or a whole table), if it is there.
    pub fn remove(&mut self, key: &str) -> &mut ProxyConfig {
        let (tables, last) = split(key);
        let mut table = &mut self.root;
        for name in tables {
            match table.get_mut(name) {
                Some(Value::Table(inner)) => table = inner,
                _ => return self,
            }
        }
        table.remove(last);
        self
    }

    /// The value at `key`, if set.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let (tables, last) = split(key);
        let mut table = &self.root;
        for name in tables {
            table = table.get(name)?.as_table()?;
        }
        table.get(last)
    }

    /// A `[clients.NAME]` table: the digest of `key` (the file never holds
    /// the key itself) and the projects it may use.
    pub fn client(&mut self, name: &str, key: &str, projects: &[&str]) -> &mut ProxyConfig {
        let prefix = format!("clients.{name}");
        self.remove(&prefix);
        self.set(&format!("{prefix}.key_sha256"), sha256_hex(key.as_bytes()));
        self.set(&format!("{prefix}.projects"), projects.to_vec())
    }

    /// Append one table to the array of tables at `key` (`[[KEY]]`), such
    /// as a client's access rule.
    pub fn push(&mut self, key: &str, entry: Table) -> &mut ProxyConfig {
        let mut list = match self.get(key) {
            Some(Value::Array(list)) => list.clone(),
            _ => Vec::new(),
        };
        list.push(Value::Table(entry));
        self.set(key, list)
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        // A Table of plain values always serializes; the fallback is
        // never taken, and would make the proxy refuse an empty file
        // loudly rather than panic a test helper.
        toml::to_string(&self.root).unwrap_or_else(|e| format!("# not serializable: {e}\n"))
    }

    /// Write the file at `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_toml())
    }
}

fn merge_tables(into: &mut Table, from: &Table) {
    for (name, value) in from {
        match (into.get_mut(name), value) {
            (Some(Value::Table(mine)), Value::Table(theirs)) => merge_tables(mine, theirs),
            _ => {
                into.insert(name.clone(), value.clone());
            }
        }
    }
}

/// `a.b.c` -> (`[a, b]`, `c`).
fn split(key: &str) -> (Vec<&str>, &str) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    (parts, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clouds_yaml::Environment;
    use crate::config::{ConfigSource, Overrides, load_in};

    #[test]
    fn keys_set_by_path_make_a_file_the_proxy_loads() {
        let mut config = ProxyConfig::new();
        config
            .set("upstream.timeout", "3s")
            .set("token.prefetch", false)
            .set("listen.max_connections", 7)
            .set("clouds.c.auth_url", "http://127.0.0.1:1/v3")
            .set("clouds.c.interface", vec!["internal", "public"])
            .set("clouds.c.auth.username", "u \"quoted\"")
            .set("clouds.c.auth.password", "p")
            .set("clouds.c.auth.user_domain_name", "Default")
            .client("ci", "a-local-key", &["demo"]);
        let mut rule = Table::new();
        rule.insert("service".into(), "compute".into());
        rule.insert("method".into(), "GET".into());
        rule.insert("path".into(), "/servers/**".into());
        config.push("clients.ci.rules", rule.clone());
        config.push("clients.ci.rules", rule);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        config.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("a-local-key"), "{text}");
        // No variables: the machine's OS_* and clouds.yaml stay out.
        let env = Environment::new([], dir.path());
        let settings = load_in(ConfigSource::File(path), &Overrides::default(), &env).unwrap();
        assert_eq!(settings.listen.max_connections, 7);
        assert!(!settings.token.prefetch);
        let client = &settings.clients[0];
        assert_eq!((client.name.as_str(), client.rules.len()), ("ci", 2));
        assert_eq!(
            client.key_sha256.to_vec(),
            crate::secrets::sha256(b"a-local-key").to_vec()
        );
        let cloud = &settings.clouds["c"];
        assert_eq!(cloud.interfaces, ["internal", "public"]);
    }

    #[test]
    fn a_key_is_replaced_and_removed() {
        let mut config = ProxyConfig::new();
        config.set("clouds.c.auth.password", "one");
        config.set("clouds.c.auth.password", "two");
        assert_eq!(config.get("clouds.c.auth.password"), Some(&"two".into()));
        config.set("clouds.c.auth", Table::new());
        assert_eq!(config.get("clouds.c.auth.password"), None);
        config.set("clouds.c.region_name", "RegionOne");
        config.remove("clouds.c.region_name").remove("no.such.key");
        assert_eq!(config.to_toml().trim(), "[clouds.c.auth]");
        config.table("clouds.c.auth", &[("user_id", "u"), ("password", "p")]);
        assert_eq!(config.get("clouds.c.auth.user_id"), Some(&"u".into()));
    }

    #[test]
    fn a_fragment_merges_table_by_table() {
        let mut config = ProxyConfig::new();
        config.client("ci", "k", &["*"]).set("token.prefetch", true);
        let fragment = ProxyConfig::from_toml(
            "[clients.ci]\nexport_token = true\n[[clients.ci.rules]]\nservice = \"compute\"\n\
             [token]\nprefetch = false\n",
        )
        .unwrap();
        config.merge(&fragment);
        assert!(config.get("clients.ci.key_sha256").is_some());
        assert_eq!(config.get("clients.ci.export_token"), Some(&true.into()));
        assert_eq!(config.get("token.prefetch"), Some(&false.into()));
        assert!(
            matches!(config.get("clients.ci.rules"), Some(Value::Array(rules)) if rules.len() == 1)
        );
        assert!(ProxyConfig::from_toml("[clients\n").is_err());
    }
}
