//! The deployment configuration (`idflow.toml`).
//!
//! Consumes: the TOML text of a deployment file. Produces: a validated [`Deployment`] — the
//! bundle and state paths (relative paths are resolved against the file's folder), the
//! delete threshold, error limit and staging mode, and each connector's transport, files,
//! parameters and container filters — or a list of [`ConfigError`]s naming the offending key.
//! Secrets are never inline: a connector gives them by environment variable
//! (`password_env`) or file (`password_file`); an inline `password` is an error. Errors never
//! quote the file's values (a mistyped line may hold a secret): a TOML error gives its line
//! and column and what was expected, not the text found. `keep_runs` is the run-history
//! retention (entries, one per step; default [`crate::store::DEFAULT_KEEP_RUNS`]);
//! `[schedule] interval` the time between the cycles of `idflow serve` (default 30 minutes);
//! `[notify]` where it sends its alerts (webhooks, e-mail by SMTP with STARTTLS).

pub mod scim;

pub use scim::{HttpConfig, ScimMapping, UrlSource};

use crate::dn::Dn;
use crate::value::Value;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Transports idflow can run today.
pub const FILE_KINDS: &[&str] = &["ldif", "csv", "jsonl"];
/// Transports of the bundle's connector kinds that need a server connection.
pub const SERVER_KINDS: &[&str] = &["ad", "ldap", "entra", "graph", "scim"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    bundle: Option<String>,
    state: Option<String>,
    delete_threshold: Option<i64>,
    error_limit: Option<i64>,
    staging: Option<bool>,
    keep_runs: Option<i64>,
    /// When `idflow serve` runs the cycle.
    schedule: Option<RawSchedule>,
    /// The HTTP side of `idflow serve`: tokens, TLS, metrics access.
    serve: Option<RawServe>,
    /// Where `idflow serve` sends its alerts.
    notify: Option<RawNotify>,
    #[serde(default)]
    connectors: BTreeMap<String, RawConnector>,
    /// Entra server settings carried over by `idflow import entra` (informational).
    #[serde(default)]
    entra_server_settings: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServe {
    tokens_file: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    metrics_public: Option<bool>,
}

/// The HTTP side of `idflow serve` (`[serve]`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServeSettings {
    /// The access tokens' file (`tokens` beside idflow.toml by default).
    pub tokens_file: PathBuf,
    /// The certificate chain and private key files (PEM) to serve HTTPS with.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `/metrics` answers without a token (for a Prometheus server that sends none).
    pub metrics_public: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    #[serde(default)]
    webhook: Vec<RawWebhook>,
    email: Option<RawEmail>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    smtp: Option<String>,
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    starttls: Option<String>,
    user: Option<String>,
    /// Refused: secrets are never inline.
    password: Option<toml::Value>,
    password_env: Option<String>,
    password_file: Option<String>,
    /// Certificate authorities (PEM) trusted for the SMTP server besides the system's.
    ca_file: Option<String>,
}

/// Where `idflow serve` sends the alerts it raises and resolves (`[notify]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notify {
    /// `[[notify.webhook]]`: a JSON POST to each URL.
    pub webhooks: Vec<Webhook>,
    /// `[notify.email]`.
    pub email: Option<Email>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
}

/// An e-mail channel: an SMTP server (submission, port 587 by default), the sender and the
/// recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub to: Vec<String>,
    /// STARTTLS is required (the default); false only with `starttls = "none"`.
    pub starttls: bool,
    /// The SMTP user and where its password comes from.
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
}

/// An e-mail address as SMTP takes it: `local@domain`, without spaces or angle brackets.
fn is_address(a: &str) -> bool {
    match a.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !a.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
        }
        None => false,
    }
}

/// Validates `[notify]`.
fn notify_settings(
    raw: Option<RawNotify>,
    resolve: &dyn Fn(&str) -> PathBuf,
    err: &mut dyn FnMut(String, String),
) -> Notify {
    let Some(raw) = raw else {
        return Notify::default();
    };
    let mut out = Notify::default();
    for (i, w) in raw.webhook.into_iter().enumerate() {
        let key = format!("notify.webhook[{i}].url");
        match w.url {
            None => err(key, "missing: the URL to POST the alerts to".into()),
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                out.webhooks.push(Webhook { url: u })
            }
            Some(_) => err(key, "must be an http:// or https:// URL".into()),
        }
    }
    let Some(e) = raw.email else {
        return out;
    };
    let key = |k: &str| format!("notify.email.{k}");
    let mut ok = true;
    let (host, port) = match e.smtp.as_deref() {
        None => {
            err(
                key("smtp"),
                "missing: the SMTP server, as host or host:port".into(),
            );
            ok = false;
            (String::new(), 0)
        }
        Some(t) => match t.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => match p.parse::<u16>() {
                Ok(p) if p > 0 => (h.trim_matches(['[', ']']).to_string(), p),
                _ => {
                    err(
                        key("smtp"),
                        "the port must be a number from 1 to 65535".into(),
                    );
                    ok = false;
                    (String::new(), 0)
                }
            },
            Some(_) => {
                err(key("smtp"), "must be host or host:port".into());
                ok = false;
                (String::new(), 0)
            }
            None if t.is_empty() => {
                err(key("smtp"), "must be host or host:port".into());
                ok = false;
                (String::new(), 0)
            }
            None => (t.to_string(), 587),
        },
    };
    let from = match e.from {
        Some(f) if is_address(&f) => f,
        Some(_) => {
            err(
                key("from"),
                "must be an e-mail address (name@domain)".into(),
            );
            ok = false;
            String::new()
        }
        None => {
            err(key("from"), "missing: the sender's address".into());
            ok = false;
            String::new()
        }
    };
    if e.to.is_empty() {
        err(
            key("to"),
            "missing: a list of one or more recipients".into(),
        );
        ok = false;
    }
    for (i, a) in e.to.iter().enumerate() {
        if !is_address(a) {
            err(
                format!("notify.email.to[{i}]"),
                "must be an e-mail address (name@domain)".into(),
            );
            ok = false;
        }
    }
    let starttls = match e.starttls.as_deref() {
        None | Some("required") => true,
        Some("none") => false,
        Some(_) => {
            err(key("starttls"), "must be \"required\" or \"none\"".into());
            ok = false;
            true
        }
    };
    if e.password.is_some() {
        err(key("password"), "secrets are never written inline: use password_env (an environment variable) or password_file".into());
        ok = false;
    }
    if e.password_env.is_some() && e.password_file.is_some() {
        err(
            key("password_env"),
            "give password_env or password_file, not both".into(),
        );
        ok = false;
    }
    let password = e
        .password_env
        .map(Secret::Env)
        .or(e.password_file.as_deref().map(|f| Secret::File(resolve(f))));
    match (&e.user, &password) {
        (Some(_), None) => {
            err(
                key("user"),
                "a user needs password_env or password_file".into(),
            );
            ok = false;
        }
        (None, Some(_)) => {
            err(key("password_env"), "a password needs a user".into());
            ok = false;
        }
        (Some(_), Some(_)) if !starttls => {
            err(
                key("starttls"),
                "\"none\" would send the password in clear: credentials need STARTTLS".into(),
            );
            ok = false;
        }
        _ => {}
    }
    if ok {
        out.email = Some(Email {
            host,
            port,
            from,
            to: e.to,
            starttls,
            user: e.user,
            password,
            ca_file: e.ca_file.as_deref().map(resolve),
        });
    }
    out
}

/// The interval between two scheduled cycles by default (as Entra Connect's scheduler).
pub const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Parses a duration written as a whole number and a unit: `30s`, `5m`, `1h` (also `ms` and
/// `d`). Zero is refused.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("\"{t}\" has no unit (write e.g. 30s, 5m or 1h)"))?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("\"{t}\" is not a number and a unit (write e.g. 30s, 5m or 1h)"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!("unknown unit \"{other}\" (use ms, s, m, h or d)"));
        }
    };
    let total = n
        .checked_mul(ms)
        .ok_or_else(|| format!("\"{t}\" is too long"))?;
    if total == 0 {
        return Err("must be more than zero".into());
    }
    Ok(std::time::Duration::from_millis(total))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnector {
    kind: String,
    path: Option<String>,
    /// For a target file connector: where exports are written (default: `path`).
    target: Option<String>,
    entra_id: Option<String>,
    #[serde(default)]
    parameters: BTreeMap<String, toml::Value>,
    #[serde(default)]
    partitions: Vec<RawPartition>,
    // CSV sources.
    object_type: Option<String>,
    anchor: Option<String>,
    dn: Option<String>,
    #[serde(default)]
    columns: BTreeMap<String, String>,
    separator: Option<String>,
    // Secrets and connection settings for server connectors.
    server: Option<String>,
    user: Option<String>,
    password: Option<toml::Value>,
    password_env: Option<String>,
    password_file: Option<String>,
    // LDAP directories (`kind = "ldap"` or `"ad"`).
    url: Option<String>,
    #[serde(default)]
    urls: Vec<String>,
    bind_dn: Option<String>,
    ca_file: Option<String>,
    tls_insecure: Option<bool>,
    starttls: Option<bool>,
    connect_timeout: Option<i64>,
    timeout: Option<i64>,
    flavor: Option<String>,
    anchor_attribute: Option<String>,
    page_size: Option<i64>,
    // Services over HTTP (`kind = "scim"`).
    url_env: Option<String>,
    token_env: Option<String>,
    token_file: Option<String>,
    concurrency: Option<i64>,
    rate_limit: Option<toml::Value>,
    retries: Option<i64>,
    mapping: Option<toml::Value>,
    // Microsoft Graph (`kind = "graph"`).
    tenant_id: Option<String>,
    client_id: Option<String>,
    token_url: Option<String>,
    scope: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartition {
    name: String,
    #[serde(default = "yes")]
    selected: bool,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    parameters: BTreeMap<String, toml::Value>,
}

fn yes() -> bool {
    true
}

/// A problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key, e.g. `connectors."contoso.com".path`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// A container filter of one partition (an AD domain).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Partition {
    pub name: String,
    pub selected: bool,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl Partition {
    /// Whether a DN is in this partition's scope: under the partition, under an included
    /// container (when any is listed), and not under a more specific excluded one. DNs are
    /// compared parsed and normalised (`crate::dn`), by RDN sequence; None when the DN is
    /// not under the partition (or does not parse, or the partition's name does not).
    pub fn contains(&self, dn: &str) -> Option<bool> {
        let dn = Dn::parse(dn).ok()?;
        self.contains_dn(&dn)
    }

    /// [`Partition::contains`] for a parsed DN. Container names that do not parse (the
    /// configuration reports them) match nothing.
    pub fn contains_dn(&self, dn: &Dn) -> Option<bool> {
        let depth = |base: &str| crate::dn::key(base).ok().and_then(|k| dn.depth_within(&k));
        depth(&self.name)?;
        if !self.selected {
            return Some(false);
        }
        let inc = self.include.iter().filter_map(|c| depth(c)).max();
        let exc = self.exclude.iter().filter_map(|c| depth(c)).max();
        Some(match (inc, exc) {
            (Some(i), Some(e)) => i > e,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => self.include.is_empty(),
        })
    }
}

/// One connector's deployment settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorConfig {
    pub name: String,
    pub kind: String,
    /// The file a file connector reads.
    pub path: Option<PathBuf>,
    /// The file a file connector writes exports to (default: `path`).
    pub target: Option<PathBuf>,
    pub parameters: Vec<(String, Value)>,
    pub partitions: Vec<Partition>,
    pub csv: Option<CsvConfig>,
    pub secret: Option<Secret>,
    /// Connection settings of an LDAP directory (`kind = "ldap"` or `"ad"`).
    pub ldap: Option<LdapConfig>,
    /// Connection settings of a service over HTTP (`kind = "scim"`).
    pub http: Option<HttpConfig>,
    /// The attribute mapping of a service connector (`kind = "scim"` or `"graph"`).
    pub mapping: Option<ScimMapping>,
    /// Microsoft Graph's sign-in settings (`kind = "graph"`).
    pub graph: Option<GraphConfig>,
}

/// How a Microsoft Graph connector signs in: OAuth2 client credentials at `token_url`. The
/// client secret is the connector's [`Secret`] (`secret_env` or `secret_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphConfig {
    pub token_url: String,
    pub client_id: String,
    pub scope: String,
}

/// Microsoft Graph's v1.0 endpoint.
pub const GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";

impl ConnectorConfig {
    /// Whether a DN is in the connector's container scope (no partitions: everything).
    /// A DN that does not parse is let through: the import rejects it as a record, with the
    /// parse error, rather than it vanishing (and being deleted) silently.
    pub fn in_scope(&self, dn: &str) -> bool {
        if self.partitions.is_empty() {
            return true;
        }
        let Ok(dn) = Dn::parse(dn) else {
            return true;
        };
        self.partitions
            .iter()
            .filter_map(|p| p.contains_dn(&dn))
            .any(|x| x)
    }
}

/// CSV source settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvConfig {
    pub object_type: String,
    pub anchor: String,
    /// DN template with `{column}` placeholders.
    pub dn: String,
    pub columns: BTreeMap<String, String>,
    pub separator: Option<char>,
}

/// Which kind of directory an LDAP connector talks to: it chooses the anchor and the delta
/// mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Active Directory: `objectGUID` anchors.
    Ad,
    /// OpenLDAP: `entryUUID` anchors, RFC 4533 content synchronization for delta reads.
    OpenLdap,
    /// Any other directory: a named anchor attribute, `modifyTimestamp` for delta reads.
    Generic,
}

impl Flavor {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Ad => "ad",
            Flavor::OpenLdap => "openldap",
            Flavor::Generic => "generic",
        }
    }
}

/// Connection settings of an LDAP directory. The bind password is not here: it comes from
/// the connector's [`Secret`] when the connection is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfig {
    /// `ldap://` or `ldaps://` URLs, tried in order (failover).
    pub urls: Vec<String>,
    /// The DN to bind as; none: an anonymous bind.
    pub bind_dn: Option<String>,
    /// PEM file with the certificate authorities to trust (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// Skips server certificate verification (tests only; warned about).
    pub tls_insecure: bool,
    /// StartTLS on `ldap://` URLs.
    pub starttls: bool,
    pub connect_timeout: std::time::Duration,
    /// The longest wait for one operation (a search page, a write).
    pub timeout: std::time::Duration,
    pub flavor: Flavor,
    /// The attribute that holds each object's anchor on the server.
    pub anchor_attribute: String,
    /// Entries per page of a paged search.
    pub page_size: i32,
}

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(PathBuf),
}

/// A validated deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub file: PathBuf,
    pub bundle: PathBuf,
    pub state: PathBuf,
    pub delete_threshold: usize,
    pub error_limit: usize,
    pub staging: bool,
    /// Run-history entries (steps) kept; older ones are pruned at the end of a run.
    pub keep_runs: usize,
    /// The time between the starts of two cycles `idflow serve` runs (`[schedule] interval`).
    pub interval: std::time::Duration,
    /// `[serve]`: tokens, TLS, metrics access.
    pub serve: ServeSettings,
    /// Where `idflow serve` sends its alerts (`[notify]`).
    pub notify: Notify,
    pub connectors: Vec<ConnectorConfig>,
}

impl Deployment {
    pub fn connector(&self, name: &str) -> Option<&ConnectorConfig> {
        self.connectors.iter().find(|c| c.name == name)
    }
}

fn value_of(v: &toml::Value) -> Value {
    match v {
        toml::Value::Integer(n) => Value::Num(*n),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::String(s) => Value::str(s.as_str()),
        other => Value::str(other.to_string()),
    }
}

/// Reads and validates a deployment file.
pub fn load(path: &Path) -> Result<Deployment, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            key: String::new(),
            message: format!("{}: {e}", path.display()),
        }]
    })?;
    parse(path, &text)
}

/// Validates deployment text (`path` locates relative paths and messages).
pub fn parse(path: &Path, text: &str) -> Result<Deployment, Vec<ConfigError>> {
    let raw: Raw = toml::from_str(text).map_err(|e| {
        vec![ConfigError {
            key: String::new(),
            message: toml_error(path, text, &e),
        }]
    })?;
    let _ = raw.entra_server_settings;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let mut errors = Vec::new();
    let mut err = |key: String, message: String| errors.push(ConfigError { key, message });
    let count =
        |key: &str, v: Option<i64>, default: usize, err: &mut dyn FnMut(String, String)| -> usize {
            match v {
                None => default,
                Some(n) if n >= 0 => n as usize,
                Some(n) => {
                    err(key.into(), format!("must be 0 or more, got {n}"));
                    default
                }
            }
        };
    let delete_threshold = count("delete_threshold", raw.delete_threshold, 500, &mut err);
    let error_limit = count(
        "error_limit",
        raw.error_limit,
        crate::engine::DEFAULT_ERROR_LIMIT,
        &mut err,
    );
    if error_limit == 0 {
        err("error_limit".into(), "must be at least 1".into());
    }
    let keep_runs = count(
        "keep_runs",
        raw.keep_runs,
        crate::store::DEFAULT_KEEP_RUNS,
        &mut err,
    );
    if keep_runs == 0 {
        err("keep_runs".into(), "must be at least 1".into());
    }
    let interval = match raw.schedule.as_ref().and_then(|s| s.interval.as_deref()) {
        None => DEFAULT_INTERVAL,
        Some(t) => parse_duration(t).unwrap_or_else(|m| {
            err("schedule.interval".into(), m);
            DEFAULT_INTERVAL
        }),
    };
    let serve = {
        let raw_serve = raw.serve.as_ref();
        let tls = match raw_serve.map(|s| (s.tls_cert.as_deref(), s.tls_key.as_deref())) {
            Some((Some(c), Some(k))) => Some((resolve(c), resolve(k))),
            Some((None, None)) | None => None,
            Some(_) => {
                err(
                    "serve.tls_cert".into(),
                    "tls_cert and tls_key go together: set both or neither".into(),
                );
                None
            }
        };
        ServeSettings {
            tokens_file: resolve(
                raw_serve
                    .and_then(|s| s.tokens_file.as_deref())
                    .unwrap_or("tokens"),
            ),
            tls,
            metrics_public: raw_serve.and_then(|s| s.metrics_public).unwrap_or(false),
        }
    };
    let notify = notify_settings(raw.notify, &resolve, &mut err);
    let Some(bundle) = raw.bundle else {
        err(
            "bundle".into(),
            "missing: the path of the rule bundle".into(),
        );
        return Err(errors);
    };
    let mut connectors = Vec::new();
    for (name, mut c) in raw.connectors {
        let key = |k: &str| format!("connectors.\"{name}\".{k}");
        let kind = c.kind.to_ascii_lowercase();
        if !FILE_KINDS.contains(&kind.as_str()) && !SERVER_KINDS.contains(&kind.as_str()) {
            err(
                key("kind"),
                format!(
                    "unknown connector kind `{}`; expected one of {}, {}",
                    c.kind,
                    FILE_KINDS.join(", "),
                    SERVER_KINDS.join(", ")
                ),
            );
        }
        if c.password.is_some() {
            err(key("password"), "secrets are never written inline: use password_env (an environment variable) or password_file".into());
        }
        if c.password_env.is_some() && c.password_file.is_some() {
            err(
                key("password_env"),
                "give password_env or password_file, not both".into(),
            );
        }
        if FILE_KINDS.contains(&kind.as_str()) && c.path.is_none() {
            err(
                key("path"),
                format!("missing: the file a {kind} connector reads"),
            );
        }
        let csv = if kind == "csv" {
            let (Some(object_type), Some(anchor), Some(dn)) =
                (c.object_type.clone(), c.anchor.clone(), c.dn.clone())
            else {
                err(key("object_type"), "a csv connector needs object_type, anchor and dn (a template such as \"CN={id},OU=HR\")".into());
                continue;
            };
            let separator = match c.separator.as_deref() {
                None => None,
                Some(s) if s.chars().count() == 1 => s.chars().next(),
                Some(s) => {
                    err(
                        key("separator"),
                        format!("must be one character, got \"{s}\""),
                    );
                    None
                }
            };
            Some(CsvConfig {
                object_type,
                anchor,
                dn,
                columns: c.columns.clone(),
                separator,
            })
        } else {
            None
        };
        let mut params: Vec<(String, Value)> = c
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), value_of(v)))
            .collect();
        let mut partitions = Vec::new();
        for p in std::mem::take(&mut c.partitions) {
            for (k, v) in &p.parameters {
                if !params.iter().any(|(n, _)| n == k) {
                    params.push((k.clone(), value_of(v)));
                }
            }
            let dns = std::iter::once(("name".to_string(), &p.name))
                .chain(
                    p.include
                        .iter()
                        .enumerate()
                        .map(|(j, d)| (format!("include[{j}]"), d)),
                )
                .chain(
                    p.exclude
                        .iter()
                        .enumerate()
                        .map(|(j, d)| (format!("exclude[{j}]"), d)),
                );
            for (k, d) in dns {
                if let Err(e) = Dn::parse(d) {
                    let i = partitions.len();
                    err(
                        key(&format!("partitions[{i}].{k}")),
                        format!("`{d}` is not a DN: {e}"),
                    );
                }
            }
            partitions.push(Partition {
                name: p.name,
                selected: p.selected,
                include: p.include,
                exclude: p.exclude,
            });
        }
        let ldap = if kind == "ldap" || kind == "ad" {
            ldap_settings(&c, &kind, &partitions, &resolve, &key, &mut err)
        } else {
            let http = kind == "scim" || kind == "graph";
            for (k, set) in [
                ("url", c.url.is_some() && !http),
                ("urls", !c.urls.is_empty()),
                ("bind_dn", c.bind_dn.is_some()),
                ("ca_file", c.ca_file.is_some() && !http),
                ("tls_insecure", c.tls_insecure.is_some() && !http),
                ("starttls", c.starttls.is_some()),
                ("flavor", c.flavor.is_some()),
                ("anchor_attribute", c.anchor_attribute.is_some()),
                ("page_size", c.page_size.is_some() && !http),
                ("connect_timeout", c.connect_timeout.is_some() && !http),
                ("timeout", c.timeout.is_some() && !http),
            ] {
                if set {
                    let who = if http {
                        "an ldap or ad connector"
                    } else {
                        "an ldap, ad or scim connector"
                    };
                    err(key(k), format!("only {who} has `{k}`"));
                }
            }
            None
        };
        let graph_kind = kind == "graph";
        let (http, mapping) = if kind == "scim" || graph_kind {
            if c.password_env.is_some() || c.password_file.is_some() {
                let how = if graph_kind {
                    "a Graph connector's client secret comes from secret_env or secret_file"
                } else {
                    "a SCIM connector's bearer token comes from token_env or token_file"
                };
                err(key("password_env"), how.into());
            }
            let default_url =
                (graph_kind && c.url.is_none() && c.url_env.is_none()).then_some(GRAPH_URL);
            let raw = scim::RawHttp {
                url: c.url.as_deref().or(default_url),
                url_env: c.url_env.as_deref(),
                concurrency: c.concurrency,
                rate_limit: c.rate_limit.as_ref().map(|v| match v {
                    toml::Value::Integer(n) => *n as f64,
                    toml::Value::Float(f) => *f,
                    _ => f64::NAN,
                }),
                connect_timeout: c.connect_timeout,
                timeout: c.timeout,
                retries: c.retries,
                ca_file: c.ca_file.as_deref(),
                tls_insecure: c.tls_insecure,
                page_size: c.page_size,
            };
            let http = scim::http_settings(&raw, &resolve, &key, &mut err);
            let mapping = match &c.mapping {
                Some(m) => scim::mapping(m, &resolve, &key, &mut err, graph_kind),
                None => {
                    err(
                        key("mapping"),
                        "missing: the mapping of the connector's object types (a file name, or a table)".into(),
                    );
                    None
                }
            };
            if graph_kind && let Some(m) = &mapping {
                scim::check_graph_mapping(m, &key, &mut err);
            }
            (http, mapping)
        } else {
            for (k, set) in [
                ("url_env", c.url_env.is_some()),
                ("token_env", c.token_env.is_some()),
                ("token_file", c.token_file.is_some()),
                ("concurrency", c.concurrency.is_some()),
                ("rate_limit", c.rate_limit.is_some()),
                ("retries", c.retries.is_some()),
                ("mapping", c.mapping.is_some()),
            ] {
                if set {
                    err(key(k), format!("only a scim or graph connector has `{k}`"));
                }
            }
            (None, None)
        };
        let graph = if graph_kind {
            if c.token_env.is_some() || c.token_file.is_some() {
                err(
                    key("token_env"),
                    "a Graph connector signs in with client credentials: secret_env or secret_file"
                        .into(),
                );
            }
            if c.secret_env.is_some() == c.secret_file.is_some() {
                err(
                    key("secret_env"),
                    "give secret_env (an environment variable) or secret_file: the client secret of the app registration".into(),
                );
            }
            let token_url = match (&c.token_url, &c.tenant_id) {
                (Some(u), _) => {
                    if let Err(m) = scim::check_url(u) {
                        err(key("token_url"), m);
                    }
                    Some(u.trim().to_string())
                }
                (None, Some(t)) if !t.trim().is_empty() && !t.contains(['/', '?', '#']) => {
                    Some(format!(
                        "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
                        t.trim()
                    ))
                }
                _ => {
                    err(
                        key("tenant_id"),
                        "missing: the tenant's id or domain (or token_url, the OAuth2 token endpoint)".into(),
                    );
                    None
                }
            };
            let client_id = c.client_id.clone().filter(|s| !s.trim().is_empty());
            if client_id.is_none() {
                err(
                    key("client_id"),
                    "missing: the application (client) id of the app registration".into(),
                );
            }
            match (token_url, client_id) {
                (Some(token_url), Some(client_id)) => Some(GraphConfig {
                    token_url,
                    client_id,
                    scope: c
                        .scope
                        .clone()
                        .unwrap_or_else(|| "https://graph.microsoft.com/.default".into()),
                }),
                _ => None,
            }
        } else {
            for (k, set) in [
                ("tenant_id", c.tenant_id.is_some()),
                ("client_id", c.client_id.is_some()),
                ("token_url", c.token_url.is_some()),
                ("scope", c.scope.is_some()),
                ("secret_env", c.secret_env.is_some()),
                ("secret_file", c.secret_file.is_some()),
            ] {
                if set {
                    err(key(k), format!("only a graph connector has `{k}`"));
                }
            }
            None
        };
        if c.token_env.is_some() && c.token_file.is_some() {
            err(
                key("token_env"),
                "give token_env or token_file, not both".into(),
            );
        }
        let _ = (&c.entra_id, &c.server, &c.user);
        connectors.push(ConnectorConfig {
            name,
            kind,
            path: c.path.as_deref().map(resolve),
            target: c.target.as_deref().map(resolve),
            parameters: params,
            partitions,
            csv,
            secret: c
                .password_env
                .or(c.token_env)
                .or(c.secret_env)
                .map(Secret::Env)
                .or(c
                    .password_file
                    .or(c.token_file)
                    .or(c.secret_file)
                    .as_deref()
                    .map(|f| Secret::File(resolve(f)))),
            ldap,
            http,
            mapping,
            graph,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Deployment {
        file: path.to_path_buf(),
        bundle: resolve(&bundle),
        state: resolve(raw.state.as_deref().unwrap_or("idflow.db")),
        delete_threshold,
        error_limit,
        staging: raw.staging.unwrap_or(false),
        keep_runs,
        interval,
        serve,
        notify,
        connectors,
    })
}

/// Validates the connection settings of an LDAP connector (`kind` is `ldap` or `ad`).
fn ldap_settings(
    c: &RawConnector,
    kind: &str,
    partitions: &[Partition],
    resolve: &dyn Fn(&str) -> PathBuf,
    key: &dyn Fn(&str) -> String,
    err: &mut dyn FnMut(String, String),
) -> Option<LdapConfig> {
    let mut ok = true;
    let mut urls: Vec<String> = c.url.iter().cloned().collect();
    urls.extend(c.urls.iter().cloned());
    if urls.is_empty() {
        err(
            key("url"),
            "missing: the directory's address, such as \"ldaps://dc1.contoso.com\" (or urls = [...] for failover)".into(),
        );
        ok = false;
    }
    let starttls = c.starttls.unwrap_or(false);
    for (i, u) in urls.iter().enumerate() {
        let k = if c.url.is_some() && i == 0 {
            key("url")
        } else {
            key(&format!("urls[{}]", i - usize::from(c.url.is_some())))
        };
        let lower = u.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("ldaps://")
            .or_else(|| lower.strip_prefix("ldap://"));
        match rest {
            None => {
                err(k, "must start with ldap:// or ldaps://".into());
                ok = false;
            }
            Some(r) if r.trim_end_matches('/').is_empty() || r.contains('@') => {
                err(
                    k,
                    "must name a host (and no user or password), such as ldaps://dc1.contoso.com:636".into(),
                );
                ok = false;
            }
            Some(_) if starttls && lower.starts_with("ldaps://") => {
                err(
                    k,
                    "starttls is for ldap:// URLs: an ldaps:// URL is TLS from the start".into(),
                );
                ok = false;
            }
            Some(_) => {}
        }
    }
    if c.bind_dn.is_some() && c.password_env.is_none() && c.password_file.is_none() {
        err(
            key("bind_dn"),
            "a bind needs its password: give password_env (an environment variable) or password_file".into(),
        );
        ok = false;
    }
    if let Some(d) = &c.bind_dn
        && let Err(e) = Dn::parse(d)
    {
        err(key("bind_dn"), format!("`{d}` is not a DN: {e}"));
        ok = false;
    }
    if partitions.is_empty() {
        err(
            key("partitions"),
            "missing: at least one [[partitions]] entry whose name is a base DN to read".into(),
        );
        ok = false;
    }
    let flavor = match c.flavor.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None if kind == "ad" => Flavor::Ad,
        None => Flavor::OpenLdap,
        Some("ad") => Flavor::Ad,
        Some("openldap") => Flavor::OpenLdap,
        Some("generic") => Flavor::Generic,
        Some(other) => {
            err(
                key("flavor"),
                format!("unknown flavor `{other}`; expected ad, openldap or generic"),
            );
            ok = false;
            Flavor::Generic
        }
    };
    let anchor_attribute = match (flavor, &c.anchor_attribute) {
        (_, Some(a)) => a.clone(),
        (Flavor::Ad, None) => "objectGUID".into(),
        (Flavor::OpenLdap, None) => "entryUUID".into(),
        (Flavor::Generic, None) => {
            err(
                key("anchor_attribute"),
                "missing: a generic directory needs the attribute that holds each object's anchor"
                    .into(),
            );
            ok = false;
            String::new()
        }
    };
    let mut seconds = |k: &str, v: Option<i64>, default: u64| -> std::time::Duration {
        match v {
            None => std::time::Duration::from_secs(default),
            Some(n) if n > 0 => std::time::Duration::from_secs(n as u64),
            Some(n) => {
                err(
                    key(k),
                    format!("must be a number of seconds above 0, got {n}"),
                );
                ok = false;
                std::time::Duration::from_secs(default)
            }
        }
    };
    let connect_timeout = seconds("connect_timeout", c.connect_timeout, 10);
    let timeout = seconds("timeout", c.timeout, 120);
    let page_size = match c.page_size {
        None => 1000,
        Some(n) if (1..=100_000).contains(&n) => n as i32,
        Some(n) => {
            err(key("page_size"), format!("must be 1 to 100000, got {n}"));
            ok = false;
            1000
        }
    };
    let tls_insecure = c.tls_insecure.unwrap_or(false);
    if tls_insecure && c.ca_file.is_some() {
        err(
            key("tls_insecure"),
            "give ca_file (verify against these authorities) or tls_insecure, not both".into(),
        );
        ok = false;
    }
    ok.then(|| LdapConfig {
        urls,
        bind_dn: c.bind_dn.clone(),
        ca_file: c.ca_file.as_deref().map(resolve),
        tls_insecure,
        starttls,
        connect_timeout,
        timeout,
        flavor,
        anchor_attribute,
        page_size,
    })
}

/// A TOML error without the file's text: `file: TOML error at line L, column C: message`, where
/// the message says what was expected but not the value found (the line may hold a secret,
/// such as a password typed where a key was meant).
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let at = e
        .span()
        .map(|s| {
            let before = text.get(..s.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(" at line {line}, column {col}")
        })
        .unwrap_or_default();
    format!(
        "{}: TOML error{at}: {}",
        path.display(),
        redact_message(e.message().trim_end())
    )
}

/// A serde or TOML message with the values it quotes replaced: `invalid type: string "x",
/// expected ...` becomes `invalid type: string (value hidden), expected ...`; an unknown enum
/// variant is not repeated. Keys (`unknown field `x``) are kept.
fn redact_message(message: &str) -> String {
    let mut out = Vec::new();
    for line in message.lines() {
        let mut l = line.to_string();
        for prefix in ["invalid type: ", "invalid value: "] {
            if let Some(rest) = l.strip_prefix(prefix) {
                let (found, expected) = match rest.find(", expected") {
                    Some(i) => rest.split_at(i),
                    None => (rest, ""),
                };
                let kind = found.split([' ', '`', '"']).next().unwrap_or("value");
                l = format!("{prefix}{kind} (value hidden){expected}");
            }
        }
        if let Some(rest) = l.strip_prefix("unknown variant ") {
            let expected = rest.find(", expected").map_or("", |i| &rest[i..]);
            l = format!("unknown variant (value hidden){expected}");
        }
        out.push(l);
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(t: &str) -> Result<Deployment, Vec<ConfigError>> {
        parse(Path::new("/srv/idflow/idflow.toml"), t)
    }

    #[test]
    fn serve_settings() {
        let d = parse_text("bundle = \"rules\"\n").unwrap();
        assert_eq!(d.serve.tokens_file, Path::new("/srv/idflow/tokens"));
        assert_eq!(
            (d.serve.tls.is_none(), d.serve.metrics_public),
            (true, false)
        );
        let d = parse_text(
            "bundle = \"rules\"\n[serve]\ntokens_file = \"/etc/t\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nmetrics_public = true\n",
        )
        .unwrap();
        assert_eq!(d.serve.tokens_file, Path::new("/etc/t"));
        assert_eq!(
            d.serve.tls,
            Some((
                Path::new("/srv/idflow/c.pem").to_path_buf(),
                Path::new("/srv/idflow/k.pem").to_path_buf()
            ))
        );
        assert!(d.serve.metrics_public);
        let e = parse_text("bundle = \"rules\"\n[serve]\ntls_cert = \"c.pem\"\n").unwrap_err();
        assert_eq!(e[0].key, "serve.tls_cert");
        assert!(parse_text("bundle = \"rules\"\n[serve]\nport = 1\n").is_err());
    }

    #[test]
    fn schedule_intervals() {
        use std::time::Duration;
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "30", "m", "0s", "5x", "1.5h", "-1m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        let d = parse_text("bundle = \"rules\"\n").unwrap();
        assert_eq!(d.interval, DEFAULT_INTERVAL);
        let d = parse_text("bundle = \"rules\"\n[schedule]\ninterval = \"5m\"\n").unwrap();
        assert_eq!(d.interval, Duration::from_secs(300));
        let e = parse_text("bundle = \"rules\"\n[schedule]\ninterval = \"soon\"\n").unwrap_err();
        assert_eq!(e[0].key, "schedule.interval");
    }

    #[test]
    fn a_complete_file() {
        let d = parse_text(
            r#"
bundle = "rules"
delete_threshold = 50
[connectors."contoso.com"]
kind = "ldif"
path = "ad.ldif"
parameters = { "Domain.FQDN" = "contoso.com" }
[[connectors."contoso.com".partitions]]
name = "DC=contoso,DC=com"
include = ["OU=CORP,DC=contoso,DC=com"]
exclude = ["OU=Disabled,OU=CORP,DC=contoso,DC=com"]
"#,
        )
        .unwrap();
        assert_eq!(d.bundle, PathBuf::from("/srv/idflow/rules"));
        assert_eq!(d.state, PathBuf::from("/srv/idflow/idflow.db"));
        assert_eq!(d.delete_threshold, 50);
        let c = &d.connectors[0];
        assert!(c.in_scope("CN=a,OU=CORP,DC=contoso,DC=com"));
        assert!(!c.in_scope("CN=a,OU=Disabled,OU=CORP,DC=contoso,DC=com"));
        assert!(!c.in_scope("CN=a,CN=Users,DC=contoso,DC=com"));
        assert!(!c.in_scope("CN=a,DC=fabrikam,DC=com"));
        // DNs compare parsed (issue 11): an escaped comma is not a separator, spaces and case
        // around separators do not matter.
        assert!(!c.in_scope(r"CN=Sneaky\,OU=CORP,DC=contoso,DC=com"));
        assert!(c.in_scope("CN=Aisha Allen, OU=Users, ou=CORP, DC=contoso, DC=com"));
        assert!(!c.in_scope("CN=a, OU=Disabled, OU=CORP, DC=contoso, DC=com"));
        assert!(c.in_scope(r"CN=a\,OU=Disabled,OU=CORP,DC=contoso,DC=com"));
    }

    #[test]
    fn partition_dns_must_parse() {
        let e = parse_text(
            r#"
bundle = "rules"
[connectors.x]
kind = "ldif"
path = "x.ldif"
[[connectors.x.partitions]]
name = "DC=x"
include = ["OU=a,DC=x", "OU=b,,DC=x"]
"#,
        )
        .unwrap_err();
        assert_eq!(e[0].key, "connectors.\"x\".partitions[0].include[1]");
        assert!(e[0].message.contains("at byte 5"), "{}", e[0].message);
    }

    #[test]
    fn errors_name_their_keys() {
        let e = parse_text(
            r#"
bundle = "rules"
delete_threshold = -1
[connectors.x]
kind = "ftp"
[connectors.y]
kind = "ldap"
password = "hunter2"
[connectors.z]
kind = "ldif"
"#,
        )
        .unwrap_err();
        let keys: Vec<&str> = e.iter().map(|x| x.key.as_str()).collect();
        assert!(keys.contains(&"delete_threshold"));
        assert!(keys.contains(&"connectors.\"x\".kind"));
        assert!(keys.contains(&"connectors.\"y\".password"));
        assert!(keys.contains(&"connectors.\"z\".path"));
    }

    #[test]
    fn notification_channels() {
        let d = parse_text(
            r#"
bundle = "rules"
[[notify.webhook]]
url = "https://hooks.example.com/a"
[[notify.webhook]]
url = "http://127.0.0.1:8080/b"
[notify.email]
smtp = "smtp.example.com"
from = "idflow@example.com"
to = ["ops@example.com"]
user = "idflow"
password_file = "secrets/smtp.pw"
"#,
        )
        .unwrap();
        assert_eq!(d.notify.webhooks.len(), 2);
        let e = d.notify.email.unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.starttls),
            ("smtp.example.com", 587, true)
        );
        assert_eq!(
            e.password,
            Some(Secret::File(PathBuf::from("/srv/idflow/secrets/smtp.pw")))
        );
        let d = parse_text(
            "bundle = \"rules\"\n[notify.email]\nsmtp = \"relay:25\"\nfrom = \"a@b\"\nto = [\"c@d\"]\nstarttls = \"none\"\n",
        )
        .unwrap();
        let e = d.notify.email.unwrap();
        assert_eq!((e.host.as_str(), e.port, e.starttls), ("relay", 25, false));
        assert_eq!(
            parse_text("bundle = \"rules\"\n").unwrap().notify,
            Notify::default()
        );
    }

    #[test]
    fn notification_errors_name_their_keys() {
        let e = parse_text(
            r#"
bundle = "rules"
[[notify.webhook]]
url = "ftp://example.com"
[notify.email]
smtp = "smtp.example.com:99999"
from = "idflow"
to = ["ops@example.com", "not an address"]
starttls = "maybe"
password = "hunter2"
"#,
        )
        .unwrap_err();
        let keys: Vec<&str> = e.iter().map(|x| x.key.as_str()).collect();
        for k in [
            "notify.webhook[0].url",
            "notify.email.smtp",
            "notify.email.from",
            "notify.email.to[1]",
            "notify.email.starttls",
            "notify.email.password",
        ] {
            assert!(keys.contains(&k), "{k}: {e:?}");
        }
        assert!(e.iter().all(|x| !x.message.contains("hunter2")), "{e:?}");
        let e = parse_text(
            "bundle = \"rules\"\n[notify.email]\nsmtp = \"relay\"\nfrom = \"a@b\"\nto = [\"c@d\"]\nstarttls = \"none\"\nuser = \"u\"\npassword_env = \"P\"\n",
        )
        .unwrap_err();
        assert_eq!(e[0].key, "notify.email.starttls");
        let e = parse_text(
            "bundle = \"rules\"\n[notify.email]\nsmtp = \"relay\"\nfrom = \"a@b\"\nto = []\nuser = \"u\"\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = e.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, ["notify.email.to", "notify.email.user"]);
    }

    #[test]
    fn toml_errors_do_not_quote_values() {
        for text in [
            "bundle = \"r\"\npassword = hunter2-secret\n",
            "bundle = \"r\"\nhunter2-secret\n",
            "bundle = \"r\"\ndelete_threshold = \"hunter2-secret\"\n",
            "bundle = \"r\"\n[connectors.x]\nkind = \"ldif\"\npath = \"a\"\nparameters = { a = [\"hunter2-secret\", 1] }\nx = \"hunter2-secret\n",
            "bundle = [\"hunter2-secret\"]\n",
        ] {
            let e = parse_text(text).unwrap_err();
            let shown = e
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.contains("/srv/idflow/idflow.toml: TOML error at line "),
                "{shown}"
            );
        }
        let e = parse_text("bundle = \"r\"\ndelete_threshold = \"x\"\n").unwrap_err();
        assert!(
            e[0].to_string().contains(
                "at line 2, column 20: invalid type: string (value hidden), expected i64"
            ),
            "{}",
            e[0]
        );
    }

    #[test]
    fn ldap_settings() {
        let d = parse_text(
            r#"
bundle = "rules"
[connectors.dir]
kind = "ldap"
url = "ldap://ldap1.example.com"
urls = ["ldap://ldap2.example.com:389"]
bind_dn = "cn=idflow,dc=example,dc=com"
password_file = "secrets/ldap.pw"
starttls = true
ca_file = "ca.pem"
timeout = 30
[[connectors.dir.partitions]]
name = "dc=example,dc=com"
[connectors.ad]
kind = "ad"
url = "ldaps://dc1.contoso.com"
[[connectors.ad.partitions]]
name = "DC=contoso,DC=com"
"#,
        )
        .unwrap();
        let l = d.connectors[1].ldap.as_ref().unwrap();
        assert_eq!(l.urls.len(), 2);
        assert_eq!(l.flavor, Flavor::OpenLdap);
        assert_eq!(l.anchor_attribute, "entryUUID");
        assert_eq!(l.ca_file, Some(PathBuf::from("/srv/idflow/ca.pem")));
        assert_eq!(l.timeout, std::time::Duration::from_secs(30));
        assert_eq!(
            d.connectors[1].secret,
            Some(Secret::File(PathBuf::from("/srv/idflow/secrets/ldap.pw")))
        );
        let ad = d.connectors[0].ldap.as_ref().unwrap();
        assert_eq!(
            (ad.flavor, ad.anchor_attribute.as_str()),
            (Flavor::Ad, "objectGUID")
        );
        assert!(!ad.tls_insecure && !ad.starttls);

        let e = parse_text(
            r#"
bundle = "rules"
[connectors.dir]
kind = "ldap"
urls = ["ldaps://a", "ldap://idflow:hunter2@b", "https://c"]
bind_dn = "cn=idflow,,dc=x"
starttls = true
flavor = "generic"
timeout = 0
tls_insecure = true
ca_file = "ca.pem"
[connectors.file]
kind = "ldif"
path = "x.ldif"
url = "ldap://x"
"#,
        )
        .unwrap_err();
        let shown: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        let key = |k: &str| format!("connectors.\"dir\".{k}");
        for k in [
            "urls[0]",
            "urls[1]",
            "urls[2]",
            "bind_dn",
            "partitions",
            "anchor_attribute",
            "timeout",
            "tls_insecure",
        ] {
            assert!(e.iter().any(|x| x.key == key(k)), "{k}: {shown:#?}");
        }
        assert!(
            e.iter().any(|x| x.key == "connectors.\"file\".url"),
            "{shown:#?}"
        );
        assert!(!shown.join("\n").contains("hunter2"), "{shown:#?}");
    }

    #[test]
    fn scim_settings() {
        let d = parse_text(
            r#"
bundle = "rules"
[connectors.cloud]
kind = "scim"
url_env = "SCIM_URL"
token_file = "secrets/scim.token"
concurrency = 8
rate_limit = 20.5
retries = 2
[connectors.cloud.mapping.user]
endpoint = "/Users/"
[connectors.cloud.mapping.user.attributes]
upn = "userName"
mail = 'emails[type eq "work"].value'
"#,
        )
        .unwrap();
        let c = &d.connectors[0];
        let h = c.http.as_ref().unwrap();
        assert_eq!(h.url, UrlSource::Env("SCIM_URL".into()));
        assert_eq!((h.concurrency, h.retries, h.rate_limit), (8, 2, Some(20.5)));
        assert_eq!(
            c.secret,
            Some(Secret::File(PathBuf::from(
                "/srv/idflow/secrets/scim.token"
            )))
        );
        let m = c.mapping.as_ref().unwrap();
        let user = m.of("USER").unwrap();
        assert_eq!(user.endpoint, "Users");
        assert_eq!(user.schemas, vec![scim::CORE_USER.to_string()]);
        assert_eq!(user.dn.text, "externalId");
        assert_eq!(user.path_of("mail").unwrap().filter[0].value, "work");

        let e = parse_text(
            r#"
bundle = "rules"
[connectors.cloud]
kind = "scim"
url = "ftp://x"
url_env = "X"
password_env = "P"
concurrency = 0
rate_limit = -1
tls_insecure = true
ca_file = "ca.pem"
[connectors.cloud.mapping.user]
endpoint = "Users"
delete = "soft"
[connectors.cloud.mapping.user.attributes]
a = 'emails[type eq "work"]'
b = "userName"
c = "userName"
[connectors.file]
kind = "ldif"
path = "x.ldif"
token_env = "T"
mapping = "m.toml"
"#,
        )
        .unwrap_err();
        let keys: Vec<&str> = e.iter().map(|x| x.key.as_str()).collect();
        for k in [
            "connectors.\"cloud\".url",
            "connectors.\"cloud\".password_env",
            "connectors.\"cloud\".concurrency",
            "connectors.\"cloud\".rate_limit",
            "connectors.\"cloud\".tls_insecure",
            "connectors.\"cloud\".mapping.user.delete",
            "connectors.\"cloud\".mapping.user.attributes.a",
            "connectors.\"cloud\".mapping.user.attributes.c",
            "connectors.\"file\".token_env",
            "connectors.\"file\".mapping",
        ] {
            assert!(keys.contains(&k), "{k}: {keys:#?}");
        }
        // A SCIM connector needs a URL and a mapping.
        let e = parse_text("bundle = \"r\"\n[connectors.c]\nkind = \"scim\"\n").unwrap_err();
        let keys: Vec<&str> = e.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, ["connectors.\"c\".url", "connectors.\"c\".mapping"]);
    }

    #[test]
    fn graph_settings() {
        let d = parse_text(
            r#"
bundle = "rules"
[connectors.aad]
kind = "graph"
tenant_id = "contoso.onmicrosoft.com"
client_id = "app"
secret_file = "graph.secret"
[connectors.aad.mapping.user]
endpoint = "users"
dn = "extension_1_dn"
attributes = { upn = "userPrincipalName" }
"#,
        )
        .unwrap();
        let c = &d.connectors[0];
        let g = c.graph.as_ref().unwrap();
        assert_eq!(
            g.token_url,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(
            c.http.as_ref().unwrap().url,
            UrlSource::Literal(GRAPH_URL.into())
        );
        assert_eq!(
            c.secret,
            Some(Secret::File(PathBuf::from("/srv/idflow/graph.secret")))
        );
        let e = parse_text(
            r#"
bundle = "rules"
[connectors.aad]
kind = "graph"
token_env = "T"
[connectors.aad.mapping.user]
endpoint = "contacts"
attributes = { mail = "emails.value" }
[connectors.other]
kind = "scim"
url = "https://x/v2"
client_id = "app"
mapping = { user = { endpoint = "Users" } }
"#,
        )
        .unwrap_err();
        let keys: Vec<&str> = e.iter().map(|x| x.key.as_str()).collect();
        for k in [
            "connectors.\"aad\".token_env",
            "connectors.\"aad\".secret_env",
            "connectors.\"aad\".tenant_id",
            "connectors.\"aad\".client_id",
            "connectors.\"aad\".mapping.user.endpoint",
            "connectors.\"aad\".mapping.user.attributes.mail",
            "connectors.\"other\".client_id",
        ] {
            assert!(keys.contains(&k), "{k}: {keys:#?}");
        }
    }

    #[test]
    fn keep_runs_is_validated() {
        assert_eq!(
            parse_text("bundle = \"r\"\n").unwrap().keep_runs,
            crate::store::DEFAULT_KEEP_RUNS
        );
        assert_eq!(
            parse_text("bundle = \"r\"\nkeep_runs = 5\n")
                .unwrap()
                .keep_runs,
            5
        );
        assert!(parse_text("bundle = \"r\"\nkeep_runs = 0\n").is_err());
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_errors() {
        assert!(parse_text("bundle = \"r\"\nstaging_mode = true\n").is_err());
        assert!(parse_text("bundle = \n").is_err());
        assert!(parse_text("staging = true\n").is_err());
    }
}
