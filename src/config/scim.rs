//! The settings of connectors that talk HTTP (`kind = "scim"`) and the SCIM attribute mapping.
//!
//! Consumes: the raw keys of one connector of `idflow.toml` and its `mapping` (a file of its own
//! or an inline table). Produces: a validated [`HttpConfig`] (where the service is, timeouts,
//! concurrency, rate limit, retries, TLS) and a [`ScimMapping`] (per connector object type: the
//! SCIM endpoint, the schemas, where the DN is kept, what a delete does, and the SCIM path of
//! each connector-space attribute), or errors naming the key. The bearer token is not here: it
//! is the connector's [`super::Secret`], read when the connector opens.
//!
//! A SCIM path ([`ScimPath`]) is `[URN:]attr[[filter]][.sub]` (RFC 7644 section 3.10): `userName`,
//! `name.givenName`, `emails[type eq "work"].value`,
//! `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`, `members`. A filter is
//! one or more `sub eq "text"` comparisons joined by `and`: they pick the element of a
//! multi-valued attribute a value goes to (and are the values such an element is created with).

use std::path::PathBuf;
use std::time::Duration;

/// The core schema of SCIM users.
pub const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core schema of SCIM groups.
pub const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Where the service's base URL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    /// Written in idflow.toml.
    Literal(String),
    /// The value of an environment variable, read when the connector opens.
    Env(String),
}

/// Connection settings of a connector that talks HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub url: UrlSource,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// At most this many requests per second (none: no limit).
    pub rate_limit: Option<f64>,
    pub connect_timeout: Duration,
    /// The longest wait for one request (sent, answered and read).
    pub timeout: Duration,
    /// How often a throttled, unavailable or timed-out request is sent again.
    pub retries: u32,
    /// PEM file with the certificate authorities to trust (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// No certificate verification (tests only; warned about).
    pub tls_insecure: bool,
    /// Resources asked for per page of a listing.
    pub page_size: usize,
}

/// What an export's delete of an object does on the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// `DELETE` the resource.
    Delete,
    /// `PATCH` it with `active: false` (the resource stays).
    Deactivate,
}

/// One `sub eq "text"` comparison of a path filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub sub: String,
    pub value: String,
}

/// A SCIM attribute path (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimPath {
    /// The path as written.
    pub text: String,
    /// The schema URN of an extension attribute (`None`: the resource's core schema).
    pub urn: Option<String>,
    pub attr: String,
    /// The element filter of a multi-valued attribute.
    pub filter: Vec<Cond>,
    pub sub: Option<String>,
}

impl ScimPath {
    /// Parses a path; the error says what is wrong.
    pub fn parse(text: &str) -> Result<ScimPath, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("an empty SCIM path".into());
        }
        // An extension attribute: the URN is everything up to the last colon before the
        // attribute (the URN itself holds dots, as in `2.0`, but no brackets).
        let head_end = t.find('[').unwrap_or(t.len());
        let (urn, rest) = if t.len() >= 4 && t[..4].eq_ignore_ascii_case("urn:") {
            let colon = t[..head_end]
                .rfind(':')
                .filter(|&c| t[..c].matches(':').count() >= 2)
                .ok_or_else(|| {
                    format!("`{t}`: an extension attribute is `urn:...:Schema:attribute`")
                })?;
            (Some(t[..colon].to_string()), &t[colon + 1..])
        } else {
            (None, t)
        };
        let name_end = rest.find(['[', '.']).unwrap_or(rest.len());
        let attr = &rest[..name_end];
        check_name(attr, t)?;
        let mut rest = &rest[name_end..];
        let mut filter = Vec::new();
        if let Some(r) = rest.strip_prefix('[') {
            let close = find_close(r).ok_or_else(|| format!("`{t}`: no `]` closes the filter"))?;
            filter = parse_filter(&r[..close]).map_err(|e| format!("`{t}`: {e}"))?;
            rest = &r[close + 1..];
        }
        let sub = match rest {
            "" => None,
            r => {
                let s = r
                    .strip_prefix('.')
                    .ok_or_else(|| format!("`{t}`: unexpected `{r}` after the attribute"))?;
                check_name(s, t)?;
                Some(s.to_string())
            }
        };
        if !filter.is_empty() && sub.is_none() {
            return Err(format!(
                "`{t}`: a filtered path names the sub-attribute that holds the value, as in `emails[type eq \"work\"].value`"
            ));
        }
        Ok(ScimPath {
            text: t.to_string(),
            urn,
            attr: attr.to_string(),
            filter,
            sub,
        })
    }

    /// The top-level attribute as the `attributes` parameter of a listing names it.
    pub fn top(&self) -> String {
        match &self.urn {
            Some(u) => format!("{u}:{}", self.attr),
            None => self.attr.clone(),
        }
    }

    /// The path of the attribute's elements that match the filter (`emails[type eq "work"]`),
    /// with `extra` comparisons added.
    pub fn element(&self, extra: &[Cond]) -> String {
        let conds: Vec<String> = self
            .filter
            .iter()
            .chain(extra)
            .map(|c| format!("{} eq {}", c.sub, quote(&c.value)))
            .collect();
        format!("{}[{}]", self.top(), conds.join(" and "))
    }
}

/// A filter literal: a JSON string.
pub fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn check_name(name: &str, path: &str) -> Result<(), String> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{path}`: `{name}` is not an attribute name"))
    }
}

/// The index of the `]` that closes a filter (brackets inside quoted text do not count).
fn find_close(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ']' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_filter(s: &str) -> Result<Vec<Cond>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    loop {
        let name_end = rest
            .find(char::is_whitespace)
            .ok_or("a filter is `sub eq \"text\"` (joined by `and`)")?;
        let sub = &rest[..name_end];
        check_name(sub, s)?;
        let r = rest[name_end..].trim_start();
        let r = r
            .strip_prefix("eq ")
            .or_else(|| r.strip_prefix("EQ "))
            .ok_or("only `eq` comparisons are supported in a path filter")?
            .trim_start();
        // The literal: a JSON string.
        let mut de = serde_json::Deserializer::from_str(r).into_iter::<String>();
        let value = match de.next() {
            Some(Ok(v)) => v,
            _ => return Err("the value of a filter comparison is a \"quoted\" string".into()),
        };
        out.push(Cond {
            sub: sub.to_string(),
            value,
        });
        let r = r[de.byte_offset()..].trim_start();
        if r.is_empty() {
            return Ok(out);
        }
        rest = r
            .strip_prefix("and ")
            .or_else(|| r.strip_prefix("AND "))
            .ok_or("comparisons of a path filter are joined by `and`")?
            .trim_start();
    }
}

/// How one connector object type maps to a SCIM resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimType {
    /// The connector object type (as the bundle names it).
    pub object_type: String,
    /// The endpoint, relative to the base URL (`Users`).
    pub endpoint: String,
    /// The schemas of a new resource: the core schema first, then the extensions.
    pub schemas: Vec<String>,
    /// Where the object's DN is kept (`externalId` by default).
    pub dn: ScimPath,
    pub delete: DeleteMode,
    /// Connector-space attribute → SCIM path, in the order written.
    pub attributes: Vec<(String, ScimPath)>,
}

impl ScimType {
    /// The core schema (the first of `schemas`).
    pub fn core_schema(&self) -> &str {
        self.schemas.first().map_or("", String::as_str)
    }

    /// The path of a connector-space attribute (names compare case-insensitively).
    pub fn path_of(&self, attr: &str) -> Option<&ScimPath> {
        self.attributes
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(attr))
            .map(|(_, p)| p)
    }
}

/// The SCIM mapping of a connector: its object types, in the order they are read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScimMapping {
    pub types: Vec<ScimType>,
}

impl ScimMapping {
    /// The mapping of an object type (case-insensitive).
    pub fn of(&self, object_type: &str) -> Option<&ScimType> {
        self.types
            .iter()
            .find(|t| t.object_type.eq_ignore_ascii_case(object_type))
    }
}

/// The raw keys of an HTTP connector (a subset of the connector's table).
pub(super) struct RawHttp<'a> {
    pub url: Option<&'a str>,
    pub url_env: Option<&'a str>,
    pub concurrency: Option<i64>,
    pub rate_limit: Option<f64>,
    pub connect_timeout: Option<i64>,
    pub timeout: Option<i64>,
    pub retries: Option<i64>,
    pub ca_file: Option<&'a str>,
    pub tls_insecure: Option<bool>,
    pub page_size: Option<i64>,
}

/// Validates the connection settings of an HTTP connector.
pub(super) fn http_settings(
    c: &RawHttp<'_>,
    resolve: &dyn Fn(&str) -> PathBuf,
    key: &dyn Fn(&str) -> String,
    err: &mut dyn FnMut(String, String),
) -> Option<HttpConfig> {
    let mut ok = true;
    let url = match (c.url, c.url_env) {
        (Some(_), Some(_)) => {
            err(key("url"), "give url or url_env, not both".into());
            ok = false;
            UrlSource::Env(String::new())
        }
        (None, None) => {
            err(
                key("url"),
                "missing: the service's base URL, such as \"https://scim.example.com/v2\" (or url_env, the environment variable that holds it)".into(),
            );
            ok = false;
            UrlSource::Env(String::new())
        }
        (Some(u), None) => {
            if let Err(m) = check_url(u) {
                err(key("url"), m);
                ok = false;
            }
            UrlSource::Literal(u.trim().to_string())
        }
        (None, Some(v)) => {
            if v.trim().is_empty() {
                err(key("url_env"), "the name of an environment variable".into());
                ok = false;
            }
            UrlSource::Env(v.trim().to_string())
        }
    };
    let mut int =
        |k: &str, v: Option<i64>, default: i64, range: std::ops::RangeInclusive<i64>| match v {
            None => default,
            Some(n) if range.contains(&n) => n,
            Some(n) => {
                err(
                    key(k),
                    format!("must be {} to {}, got {n}", range.start(), range.end()),
                );
                ok = false;
                default
            }
        };
    let concurrency = int("concurrency", c.concurrency, 4, 1..=64) as usize;
    let connect_timeout =
        Duration::from_secs(int("connect_timeout", c.connect_timeout, 10, 1..=3600) as u64);
    let timeout = Duration::from_secs(int("timeout", c.timeout, 60, 1..=3600) as u64);
    let retries = int("retries", c.retries, 4, 0..=20) as u32;
    let page_size = int("page_size", c.page_size, 500, 1..=10_000) as usize;
    let rate_limit = match c.rate_limit {
        None => None,
        Some(r) if r > 0.0 && r.is_finite() => Some(r),
        Some(_) => {
            err(
                key("rate_limit"),
                "must be a number of requests per second above 0".into(),
            );
            ok = false;
            None
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
    ok.then(|| HttpConfig {
        url,
        concurrency,
        rate_limit,
        connect_timeout,
        timeout,
        retries,
        ca_file: c.ca_file.map(resolve),
        tls_insecure,
        page_size,
    })
}

/// Whether a base URL is usable: http or https, a host, no user or password.
pub fn check_url(u: &str) -> Result<(), String> {
    let lower = u.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or("must start with https:// (or http://)")?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err(
            "must name a host (and no user or password), such as https://scim.example.com/v2"
                .into(),
        );
    }
    if lower.contains('?') || lower.contains('#') {
        return Err("a base URL has no query or fragment".into());
    }
    Ok(())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawType {
    endpoint: Option<String>,
    schemas: Option<Vec<String>>,
    dn: Option<String>,
    delete: Option<String>,
    #[serde(default)]
    attributes: toml::Table,
}

/// Reads a connector's `mapping`: a file name (relative to idflow.toml) or an inline table of
/// object types.
pub(super) fn mapping(
    value: &toml::Value,
    resolve: &dyn Fn(&str) -> PathBuf,
    key: &dyn Fn(&str) -> String,
    err: &mut dyn FnMut(String, String),
    graph: bool,
) -> Option<ScimMapping> {
    let (table, file): (toml::Table, Option<PathBuf>) = match value {
        toml::Value::Table(t) => (t.clone(), None),
        toml::Value::String(f) => {
            let path = resolve(f);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    err(
                        key("mapping"),
                        format!("cannot read {}: {e}", path.display()),
                    );
                    return None;
                }
            };
            match text.parse::<toml::Table>() {
                Ok(t) => (t, Some(path)),
                Err(e) => {
                    err(key("mapping"), super::toml_error(&path, &text, &e));
                    return None;
                }
            }
        }
        _ => {
            err(
                key("mapping"),
                "a file name (\"mapping.toml\") or a table of object types".into(),
            );
            return None;
        }
    };
    // Keys of a mapping file are named after the file; inline ones after idflow.toml's key.
    let at = |k: &str| match &file {
        Some(f) => format!("{}: {k}", f.display()),
        None => key(&format!("mapping.{k}")),
    };
    let mut ok = true;
    let mut types = Vec::new();
    for (ty, v) in table {
        let raw: RawType = match v.try_into() {
            Ok(r) => r,
            Err(e) => {
                err(at(&ty), super::redact_message(&e.to_string()));
                ok = false;
                continue;
            }
        };
        let endpoint = raw
            .endpoint
            .unwrap_or_default()
            .trim()
            .trim_matches('/')
            .to_string();
        if endpoint.is_empty() || endpoint.contains(['?', '#', ' ']) {
            err(
                at(&format!("{ty}.endpoint")),
                "missing: the SCIM endpoint of the type, such as \"Users\" or \"Groups\"".into(),
            );
            ok = false;
        }
        let schemas = match raw.schemas {
            Some(s) if !s.is_empty() => s,
            Some(_) => {
                err(
                    at(&format!("{ty}.schemas")),
                    "at least the core schema".into(),
                );
                ok = false;
                Vec::new()
            }
            None if endpoint.eq_ignore_ascii_case("Users") => vec![CORE_USER.to_string()],
            None if endpoint.eq_ignore_ascii_case("Groups") => vec![CORE_GROUP.to_string()],
            // Graph has no schemas.
            None if graph => Vec::new(),
            None => {
                if !endpoint.is_empty() {
                    err(
                        at(&format!("{ty}.schemas")),
                        format!(
                            "missing: the schemas of a {endpoint} resource, the core schema first"
                        ),
                    );
                    ok = false;
                }
                Vec::new()
            }
        };
        let parse =
            |k: String, p: &str, err: &mut dyn FnMut(String, String)| match ScimPath::parse(p) {
                Ok(p) => Some(p),
                Err(m) => {
                    err(k, m);
                    None
                }
            };
        let dn = parse(
            at(&format!("{ty}.dn")),
            raw.dn.as_deref().unwrap_or("externalId"),
            err,
        );
        let delete = match raw.delete.as_deref() {
            None | Some("delete") => DeleteMode::Delete,
            Some("deactivate") => DeleteMode::Deactivate,
            Some(_) => {
                err(
                    at(&format!("{ty}.delete")),
                    "\"delete\" (DELETE the resource) or \"deactivate\" (set active to false)"
                        .into(),
                );
                ok = false;
                DeleteMode::Delete
            }
        };
        let mut attributes: Vec<(String, ScimPath)> = Vec::new();
        for (name, p) in &raw.attributes {
            let k = at(&format!("{ty}.attributes.{name}"));
            let Some(text) = p.as_str() else {
                err(k, "a SCIM path, such as \"name.givenName\"".into());
                ok = false;
                continue;
            };
            let Some(path) = parse(k.clone(), text, err) else {
                ok = false;
                continue;
            };
            if let Some((other, _)) = attributes.iter().find(|(_, q)| same_place(q, &path)) {
                err(k, format!("`{text}` is mapped from `{other}` already"));
                ok = false;
                continue;
            }
            if dn.as_ref().is_some_and(|d| same_place(d, &path)) {
                err(k, format!("`{text}` holds the DN (`dn`)"));
                ok = false;
                continue;
            }
            attributes.push((name.clone(), path));
        }
        let Some(dn) = dn else {
            ok = false;
            continue;
        };
        types.push(ScimType {
            object_type: ty,
            endpoint,
            schemas,
            dn,
            delete,
            attributes,
        });
    }
    if types.is_empty() && ok {
        err(
            key("mapping"),
            "maps no object type: give a table per connector object type, such as [user] with endpoint = \"Users\"".into(),
        );
        ok = false;
    }
    ok.then_some(ScimMapping { types })
}

/// A Graph connector's mapping: the endpoints are `users` and `groups`, the paths are property
/// names (no URN, filter or sub-attribute).
pub(super) fn check_graph_mapping(
    m: &ScimMapping,
    key: &dyn Fn(&str) -> String,
    err: &mut dyn FnMut(String, String),
) {
    for t in &m.types {
        let ty = &t.object_type;
        if !["users", "groups"].contains(&t.endpoint.to_ascii_lowercase().as_str()) {
            err(
                key(&format!("mapping.{ty}.endpoint")),
                "a Graph connector maps users or groups".into(),
            );
        }
        for (name, p) in std::iter::once(("dn".to_string(), &t.dn)).chain(
            t.attributes
                .iter()
                .map(|(n, p)| (format!("attributes.{n}"), p)),
        ) {
            if p.urn.is_some() || !p.filter.is_empty() || p.sub.is_some() {
                err(
                    key(&format!("mapping.{ty}.{name}")),
                    format!(
                        "`{}`: a Graph property is a plain name, such as `jobTitle`",
                        p.text
                    ),
                );
            }
        }
    }
}

/// Whether two paths write the same place.
fn same_place(a: &ScimPath, b: &ScimPath) -> bool {
    a.urn.as_deref().map(str::to_ascii_lowercase) == b.urn.as_deref().map(str::to_ascii_lowercase)
        && a.attr.eq_ignore_ascii_case(&b.attr)
        && a.filter == b.filter
        && a.sub.as_deref().map(str::to_ascii_lowercase)
            == b.sub.as_deref().map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = ScimPath::parse("name.givenName").unwrap();
        assert_eq!(
            (p.attr.as_str(), p.sub.as_deref()),
            ("name", Some("givenName"))
        );
        let p = ScimPath::parse(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.filter[0].value, "work");
        assert_eq!(p.element(&[]), r#"emails[type eq "work"]"#);
        assert_eq!(
            p.element(&[Cond {
                sub: "value".into(),
                value: "a\"b".into()
            }]),
            r#"emails[type eq "work" and value eq "a\"b"]"#
        );
        let p =
            ScimPath::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
                .unwrap();
        assert_eq!(
            p.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(p.attr, "manager");
        let p =
            ScimPath::parse(r#"addresses[type eq "work" and primary eq "x"].locality"#).unwrap();
        assert_eq!(p.filter.len(), 2);
        for bad in [
            "",
            "emails[type eq \"work\"]",
            "emails[type ne \"work\"].value",
            "emails[type eq work].value",
            "name..x",
            "1abc",
            "urn:x",
            "emails[type eq \"work\"",
        ] {
            assert!(ScimPath::parse(bad).is_err(), "{bad}");
        }
    }
}
