//! One-shot commands that talk to Keystone without serving:
//! `keystone-proxy token` (like `openstack token issue`) and
//! `keystone-proxy catalog` (like `openstack catalog list`).

use secrecy::ExposeSecret;

use crate::config::{ListenAddress, ProjectRef, Settings};
use crate::connector::{self, CloudTlsError, TlsError};
use crate::error::ProxyError;
use crate::keystone::{IssuedToken, Keystone};

/// Why `token` or `catalog` got no token.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("several clouds are configured ({0}): pick one with --cloud")]
    WhichCloud(String),
    #[error("no cloud named {0:?} in the configuration")]
    NoSuchCloud(String),
    #[error(transparent)]
    Tls(#[from] CloudTlsError),
    #[error(transparent)]
    Keystone(#[from] ProxyError),
}

/// Why `healthcheck` failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("not a URL")]
    Url(#[source] http::Error),
    #[error("no answer within 5 s")]
    Timeout,
    #[error("no answer")]
    Unreachable(#[source] hyper_util::client::legacy::Error),
    #[error("no answer")]
    Socket(#[source] std::io::Error),
    #[error("no answer")]
    Http(#[source] hyper::Error),
    #[error("answered {0}")]
    Status(http::StatusCode),
}

/// Log in once for `project` (or the cloud's own) in `cloud` (or the only
/// one, or `OS_CLOUD`'s).
pub async fn issue(
    settings: &Settings,
    cloud: Option<&str>,
    project: Option<&str>,
) -> Result<IssuedToken, IssueError> {
    let name = match cloud {
        Some(name) => name.to_string(),
        None if settings.clouds.len() == 1 => {
            settings.clouds.keys().next().cloned().unwrap_or_default()
        }
        None => {
            let names: Vec<&str> = settings.clouds.keys().map(String::as_str).collect();
            return Err(IssueError::WhichCloud(names.join(", ")));
        }
    };
    let cloud = settings
        .clouds
        .get(&name)
        .ok_or_else(|| IssueError::NoSuchCloud(name.clone()))?;
    let connector = connector::for_cloud(settings, cloud)?;
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new(1));
    let keystone = Keystone::new(
        cloud.clone(),
        connector,
        settings.token.keystone_timeout,
        metrics,
    );
    let project = project
        .map(|p| ProjectRef::from_selector(p, &cloud.project_domain))
        .or_else(|| cloud.project.clone());
    let issued = keystone
        .token_for(project.as_ref())
        .await
        .map_err(|e| IssueError::Keystone(e.for_cloud(&name)))?;
    // As the proxy path refuses it: an application credential's token is
    // for its own project whatever was asked.
    let scope = crate::tokens::Scope {
        cloud: std::sync::Arc::from(name.as_str()),
        project,
    };
    crate::tokens::check_project(&scope, &issued)?;
    Ok(issued)
}

/// What `healthcheck` probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A URL given with `--url` (its certificate is checked).
    Url(String),
    /// The proxy's own listener, from its configuration: TLS, if any, is
    /// not verified (a liveness probe of a local process sends no secret,
    /// and the listener's certificate rarely names 127.0.0.1).
    Own(String),
    /// `/healthz` over the proxy's unix socket.
    Unix(std::path::PathBuf),
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Url(url) | Probe::Own(url) => f.write_str(url),
            Probe::Unix(path) => write!(f, "unix:{}/healthz", path.display()),
        }
    }
}

/// Where `serve` with `settings` answers `/healthz`: its admin listener,
/// else the proxy listener. A wildcard address is probed on loopback.
pub fn own_probe(settings: &Settings) -> Probe {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let loopback = |addr: SocketAddr| match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    match (settings.listen.admin_address, &settings.listen.address) {
        (Some(admin), _) => Probe::Own(format!("http://{}/healthz", loopback(admin))),
        (None, ListenAddress::Tcp(addr)) => {
            let scheme = match settings.listen.tls {
                Some(_) => "https",
                None => "http",
            };
            Probe::Own(format!("{scheme}://{}/healthz", loopback(*addr)))
        }
        (None, ListenAddress::Unix(path)) => Probe::Unix(path.clone()),
    }
}

/// How long a probe may take in all.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `Ok` if the probe answers 200 within 5 seconds (for container HEALTHCHECKs).
pub async fn healthcheck(probe: &Probe) -> Result<(), HealthError> {
    let status = tokio::time::timeout(PROBE_TIMEOUT, probe_status(probe))
        .await
        .map_err(|_| HealthError::Timeout)??;
    match status {
        http::StatusCode::OK => Ok(()),
        status => Err(HealthError::Status(status)),
    }
}

async fn probe_status(probe: &Probe) -> Result<http::StatusCode, HealthError> {
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    let (url, insecure) = match probe {
        Probe::Url(url) => (url.as_str(), false),
        Probe::Own(url) => (url.as_str(), true),
        Probe::Unix(path) => return unix_status(path).await,
    };
    let tls = connector::TlsOptions {
        insecure,
        ..Default::default()
    };
    let connector = connector::build(&tls, PROBE_TIMEOUT)?;
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    let request = http::Request::get(url)
        .body(Empty::<bytes::Bytes>::new())
        .map_err(HealthError::Url)?;
    let response = client
        .request(request)
        .await
        .map_err(HealthError::Unreachable)?;
    Ok(response.status())
}

/// `GET /healthz` over a unix socket, on one HTTP/1.1 connection.
async fn unix_status(path: &std::path::Path) -> Result<http::StatusCode, HealthError> {
    use http_body_util::Empty;
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .map_err(HealthError::Socket)?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(HealthError::Http)?;
    tokio::spawn(connection);
    let request = http::Request::get("/healthz")
        .header(http::header::HOST, "localhost")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(HealthError::Url)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(HealthError::Http)?;
    Ok(response.status())
}

/// How `token` and `catalog` print, as `openstack -f` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Value,
    Yaml,
}

/// What a one-shot command shows: one record (`token`, shown as field and
/// value) or a list of rows (`catalog`), with named columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    columns: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    one_record: bool,
}

/// `-c` named a column the listing does not have.
#[derive(Debug, thiserror::Error)]
#[error("no column {column:?} (the columns are {})", known.join(", "))]
pub struct UnknownColumn {
    column: String,
    known: Vec<&'static str>,
}

/// The token as `openstack token issue` shows it.
pub fn token_listing(issued: &IssuedToken) -> Listing {
    let project = issued.project.as_ref();
    let user = issued.user.as_ref();
    Listing {
        columns: vec!["expires", "id", "project_id", "user_id"],
        rows: vec![vec![
            issued.expires_at.to_string(),
            issued.token.expose_secret().to_string(),
            project.map(|p| p.id.clone()).unwrap_or_default(),
            user.map(|u| u.id.clone()).unwrap_or_default(),
        ]],
        one_record: true,
    }
}

/// One row per endpoint, as `openstack catalog list` lists services.
pub fn catalog_listing(issued: &IssuedToken) -> Listing {
    let rows = issued
        .catalog
        .services()
        .iter()
        .flat_map(|service| {
            service.endpoints.iter().map(move |endpoint| {
                vec![
                    service.service_type.to_string(),
                    service.name.clone(),
                    endpoint.interface.clone(),
                    endpoint.region.clone().unwrap_or_default(),
                    endpoint.url.clone(),
                ]
            })
        })
        .collect();
    Listing {
        columns: vec!["Type", "Name", "Interface", "Region", "URL"],
        rows,
        one_record: false,
    }
}

impl Listing {
    /// Only `columns` (`-c`, in the order given); all when empty.
    pub fn select(self, columns: &[String]) -> Result<Listing, UnknownColumn> {
        if columns.is_empty() {
            return Ok(self);
        }
        let mut picked = Vec::with_capacity(columns.len());
        for column in columns {
            let index = (self.columns.iter())
                .position(|c| c == column)
                .ok_or_else(|| UnknownColumn {
                    column: column.clone(),
                    known: self.columns.clone(),
                })?;
            picked.push(index);
        }
        Ok(Listing {
            columns: picked.iter().map(|&i| self.columns[i]).collect(),
            rows: (self.rows.iter())
                .map(|row| picked.iter().map(|&i| row[i].clone()).collect())
                .collect(),
            one_record: self.one_record,
        })
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table if self.one_record => {
                let rows = (self.columns.iter().zip(&self.rows[0]))
                    .map(|(c, v)| vec![c.to_string(), v.clone()])
                    .collect();
                table(&["Field", "Value"], rows)
            }
            Format::Table => table(&self.columns, self.rows.clone()),
            Format::Json => {
                let text = serde_json::to_string_pretty(&self.json());
                text.unwrap_or_default() + "\n"
            }
            // One value per line for a record, a row per line for a list.
            Format::Value if self.one_record => {
                self.rows[0].iter().map(|v| format!("{v}\n")).collect()
            }
            Format::Value => self.rows.iter().map(|row| row.join(" ") + "\n").collect(),
            Format::Yaml => self.yaml(),
        }
    }

    fn record(&self, row: &[String]) -> serde_json::Map<String, serde_json::Value> {
        (self.columns.iter().zip(row))
            .map(|(c, v)| (c.to_string(), serde_json::Value::from(v.as_str())))
            .collect()
    }

    fn json(&self) -> serde_json::Value {
        match self.one_record {
            true => self.record(&self.rows[0]).into(),
            false => (self.rows.iter())
                .map(|row| serde_json::Value::Object(self.record(row)))
                .collect(),
        }
    }

    /// YAML with every value a JSON string (valid YAML, and no value can
    /// be misread as a number, a date or a boolean).
    fn yaml(&self) -> String {
        let pairs = |row: &[String], indent: &str| -> Vec<String> {
            (self.columns.iter().zip(row))
                .map(|(c, v)| format!("{indent}{c}: {}", serde_json::Value::from(v.as_str())))
                .collect()
        };
        match self.one_record {
            true => pairs(&self.rows[0], "").join("\n") + "\n",
            false => (self.rows.iter())
                .map(|row| "- ".to_string() + pairs(row, "  ").join("\n").trim_start() + "\n")
                .collect(),
        }
    }
}

/// Columns padded to their widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    out.push_str(&line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(one_record: bool) -> Listing {
        let rows = match one_record {
            true => vec![vec!["2026-01-01T00:00:00Z".into(), "t0k".into()]],
            false => vec![vec!["a b".into(), "1".into()], vec!["c".into(), "2".into()]],
        };
        Listing {
            columns: vec!["expires", "id"],
            rows,
            one_record,
        }
    }

    #[test]
    fn every_format_of_a_record_and_a_list() {
        let record = listing(true);
        assert_eq!(
            record.render(Format::Table),
            "Field    Value\n-------  --------------------\nexpires  2026-01-01T00:00:00Z\nid       t0k\n"
        );
        assert_eq!(record.render(Format::Value), "2026-01-01T00:00:00Z\nt0k\n");
        assert_eq!(
            record.render(Format::Yaml),
            "expires: \"2026-01-01T00:00:00Z\"\nid: \"t0k\"\n"
        );
        let list = listing(false);
        assert_eq!(list.render(Format::Value), "a b 1\nc 2\n");
        assert_eq!(
            list.render(Format::Yaml),
            "- expires: \"a b\"\n  id: \"1\"\n- expires: \"c\"\n  id: \"2\"\n"
        );
        let json: serde_json::Value = serde_json::from_str(&list.render(Format::Json)).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"expires": "a b", "id": "1"}, {"expires": "c", "id": "2"}])
        );
        let ids = list.select(&["id".into()]).unwrap();
        assert_eq!(ids.render(Format::Value), "1\n2\n");
    }

    #[test]
    fn tables_line_up() {
        let out = table(
            &["Type", "URL"],
            vec![
                vec!["compute".into(), "http://n/v2.1".into()],
                vec!["dns".into(), "http://d".into()],
            ],
        );
        assert_eq!(
            out,
            "Type     URL\n-------  -------------\ncompute  http://n/v2.1\ndns      http://d\n"
        );
    }
}
