//! The SCIM 2.0 connector (RFC 7643, RFC 7644): users, groups and any other resource type a
//! service offers, over [`super::http`].
//!
//! Consumes: a connector's [`HttpConfig`] (base URL, timeouts, concurrency, rate limit,
//! retries, TLS), its bearer token (the connector's [`Secret`], read when the connector opens),
//! its [`ScimMapping`] (per connector object type: the endpoint, the schemas, the SCIM path of
//! each connector-space attribute, where the DN is kept, what a delete does) and the object
//! types the bundle declares for it. Produces: [`ImportChange`]s in pages and one
//! [`ExportResult`] per export delta.
//!
//! - **Identity.** The server's `id` of a resource is the connector-space anchor (the type's
//!   anchor attribute); the object's DN is kept in the resource at the mapping's `dn` path
//!   (`externalId` by default), so a resource idflow created is known again by its DN (a
//!   resource without one gets `CN=<id>`). References (group `members`, the enterprise
//!   `manager`) are ids on the server and DNs in the connector space: the connector keeps a
//!   map of both, filled by every read and write of the run.
//! - **Import** ([`read`]): a full read of each mapped endpoint with `startIndex`/`count`
//!   paging; after the first page the rest are fetched `concurrency` at a time and handed to
//!   the engine in order. A service that offers cursor paging (RFC 9865) is read page after
//!   page with `cursor`. When a mapped attribute is a reference, a first listing of ids and
//!   DNs resolves them. A read whose listing changes while it runs (the ids read differ from
//!   the final total) fails rather than pass a short read off as complete. SCIM has no change
//!   tracking: a delta request is answered with a full read.
//! - **Export** ([`write`]): adds are `POST`ed (the answer's `id` is the anchor), in waves so
//!   that an object is created after the objects it references (a reference left in a cycle
//!   is added by a `PATCH` once both exist); updates are one `PATCH` each, with an operation
//!   per attribute change and per value added or removed (a member added to a group of 50,000
//!   is one small operation); deletes are `DELETE`s or `active: false` as the type's `delete`
//!   says. `If-Match` carries the version read when the service supports ETags. Every change
//!   can be sent twice without harm: an add whose DN is on the service already (a run that
//!   stopped before recording it) updates that resource instead of creating another one.
//!   HTTP answers map to [`ExportErrorCategory`]s (`write::result_of`). The answers are
//!   trusted ([`Connector::confirms_by_reimport`] is false).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod json;
pub mod read;
pub mod write;

use super::http::{Http, Method, Reply, Request, Token};
use super::{Connector, ConnectorError, ExportResult, ImportEnd, ImportMode, ImportSink};
use crate::config::scim::{ScimPath, ScimType};
use crate::config::{ConnectorConfig, HttpConfig, ScimMapping, Secret, UrlSource};
use crate::engine::compile::ConnectorPlan;
use crate::engine::export::ExportDelta;
use crate::sema::types::Base;
use std::collections::HashMap;
use std::sync::Arc;

/// The media type of SCIM requests.
pub const SCIM_JSON: &str = "application/scim+json";
/// The schema of PATCH requests.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// One mapped attribute of a type.
#[derive(Debug, Clone)]
pub struct AttrMap {
    /// The connector-space attribute, as the bundle spells it.
    pub name: String,
    pub path: ScimPath,
    pub base: Base,
    pub multi: bool,
}

impl AttrMap {
    pub fn is_ref(&self) -> bool {
        self.base == Base::Ref
    }
}

/// One mapped connector object type.
#[derive(Debug, Clone)]
pub struct TypeMap {
    pub def: ScimType,
    /// The type's name as the bundle spells it.
    pub name: String,
    /// The anchor attribute (it holds the SCIM id) and its declared type.
    pub anchor: (String, Base),
    pub attrs: Vec<AttrMap>,
}

impl TypeMap {
    pub fn attr(&self, name: &str) -> Option<&AttrMap> {
        self.attrs
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Whether a path is in the type's core schema (no URN, or the core schema's).
    pub fn is_core(&self, p: &ScimPath) -> bool {
        p.urn
            .as_deref()
            .is_none_or(|u| u.eq_ignore_ascii_case(self.def.core_schema()))
    }
}

/// What the connector knows of the resources on the service: ids by DN and DNs by id, and the
/// version of each resource it read or wrote.
#[derive(Debug, Default)]
pub struct Known {
    /// Whether a listing of this run filled the maps.
    pub loaded: bool,
    /// SCIM id → (type index, DN).
    pub by_id: HashMap<String, (usize, Arc<str>)>,
    /// DN key → SCIM id.
    pub by_dn: HashMap<Box<str>, String>,
    /// SCIM id → version (`meta.version` or the ETag).
    pub versions: HashMap<String, String>,
}

impl Known {
    pub fn insert(&mut self, ty: usize, id: &str, dn: &str) {
        if let Some((_, old)) = self.by_id.get(id)
            && crate::dn::index_key(old) != crate::dn::index_key(dn)
        {
            self.by_dn.remove(&crate::dn::index_key(old));
        }
        self.by_id.insert(id.to_string(), (ty, dn.into()));
        self.by_dn.insert(crate::dn::index_key(dn), id.to_string());
    }

    pub fn remove(&mut self, id: &str) {
        if let Some((_, dn)) = self.by_id.remove(id) {
            self.by_dn.remove(&crate::dn::index_key(&dn));
        }
        self.versions.remove(id);
    }

    pub fn id_of(&self, dn: &str) -> Option<&str> {
        self.by_dn
            .get(&crate::dn::index_key(dn))
            .map(String::as_str)
    }
}

/// What the service says it supports (its `/ServiceProviderConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    pub etag: bool,
    pub patch: bool,
    /// Cursor paging (RFC 9865): listings are read page after page with `cursor`.
    pub cursor: bool,
}

/// A SCIM service as a connector.
pub struct ScimConnector {
    pub name: String,
    pub http_cfg: HttpConfig,
    pub types: Vec<TypeMap>,
    secret: Option<Secret>,
    rt: tokio::runtime::Runtime,
    /// The client and the base URL (no trailing slash), once opened.
    open: Option<(Http, String)>,
    features: Option<Features>,
    pub known: Known,
}

impl ScimConnector {
    /// A connector for `cfg` (which must have SCIM settings and a mapping) and the bundle's
    /// types. Nothing is sent until the first import or export.
    pub fn new(
        cfg: &ConnectorConfig,
        plan: &ConnectorPlan,
    ) -> Result<ScimConnector, ConnectorError> {
        let (http_cfg, types, rt) = prepare(cfg, plan, "SCIM")?;
        Ok(ScimConnector {
            name: cfg.name.clone(),
            http_cfg,
            types,
            secret: cfg.secret.clone(),
            rt,
            open: None,
            features: None,
            known: Known::default(),
        })
    }

    /// The client and the base URL, set up (the URL and the token read) on first use.
    fn opened(&mut self) -> Result<(Http, String), ConnectorError> {
        if let Some(o) = &self.open {
            return Ok(o.clone());
        }
        let fail = |message: String| ConnectorError {
            source: self.name.clone(),
            line: None,
            message,
        };
        let base = match &self.http_cfg.url {
            UrlSource::Literal(u) => u.clone(),
            UrlSource::Env(var) => {
                let u = std::env::var(var).map_err(|_| {
                    fail(format!(
                        "url_env: the environment variable `{var}` is not set"
                    ))
                })?;
                crate::config::scim::check_url(&u)
                    .map_err(|m| fail(format!("url_env: the URL in `{var}` {m}")))?;
                u
            }
        };
        let base = base.trim().trim_end_matches('/').to_string();
        warn_cleartext(&self.name, &base, self.secret.is_some());
        let token = match &self.secret {
            Some(s) => Some(Token::new(read_token(&self.name, s)?)),
            None => None,
        };
        let http = {
            let _guard = self.rt.enter();
            Http::new(&self.name, &self.http_cfg, token)?
        };
        self.open = Some((http.clone(), base.clone()));
        Ok((http, base))
    }

    /// What the service supports, asked once per run (a service without a
    /// `/ServiceProviderConfig` is taken to support PATCH and neither ETags nor cursors).
    pub(crate) fn features(&mut self, http: &Http, base: &str) -> Features {
        if let Some(f) = self.features {
            return f;
        }
        let url = format!("{base}/ServiceProviderConfig");
        let reply = self.rt.block_on(http.send(Request::new(Method::Get, &url)));
        let defaults = Features {
            etag: false,
            patch: true,
            cursor: false,
        };
        let f = match reply {
            Ok(r) if r.ok() => {
                let j = r.json();
                let supported = |k: &str, default: bool| {
                    j.get(k)
                        .and_then(|v| v.get("supported"))
                        .and_then(|v| v.as_bool())
                        .unwrap_or(default)
                };
                Features {
                    etag: supported("etag", false),
                    patch: supported("patch", true),
                    cursor: j
                        .get("pagination")
                        .and_then(|p| p.get("cursor"))
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false),
                }
            }
            Ok(_) => defaults,
            // No answer: asked again by the next call (the request that follows reports the
            // connection problem).
            Err(_) => return defaults,
        };
        self.features = Some(f);
        f
    }

    /// An error of this connector's service.
    pub fn error(&self, base: &str, message: String) -> ConnectorError {
        ConnectorError {
            source: format!("{} ({base})", self.name),
            line: None,
            message,
        }
    }

    /// The mapped type named `name` (case-insensitive).
    pub fn type_index(&self, name: &str) -> Option<usize> {
        self.types
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(name))
    }
}

/// Warns when the token goes to a host other than this machine without TLS.
pub(crate) fn warn_cleartext(name: &str, base: &str, token: bool) {
    let lower = base.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("http://") else {
        return;
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let loopback = host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback());
    if !loopback && token {
        tracing::warn!(
            connector = name,
            "the service's URL is http://: the bearer token is sent unencrypted"
        );
    }
}

/// The bearer token: the environment variable's value or the file's content (without the final
/// line break).
fn read_token(connector: &str, s: &Secret) -> Result<String, ConnectorError> {
    read_secret(connector, s, ("token_env", "token_file"))
}

/// A secret: the environment variable's value or the file's content (without the final line
/// break); `keys` name the settings in messages. The value is never in a message.
pub(crate) fn read_secret(
    connector: &str,
    s: &Secret,
    keys: (&str, &str),
) -> Result<String, ConnectorError> {
    let fail = |message: String| ConnectorError {
        source: connector.to_string(),
        line: None,
        message,
    };
    let t = match s {
        Secret::Env(var) => std::env::var(var).map_err(|_| {
            fail(format!(
                "{}: the environment variable `{var}` is not set",
                keys.0
            ))
        })?,
        Secret::File(path) => std::fs::read_to_string(path)
            .map(|t| t.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| {
                fail(format!(
                    "{}: cannot read {}: {}",
                    keys.1,
                    path.display(),
                    e.kind()
                ))
            })?,
    };
    if t.is_empty() || t.contains(['\r', '\n']) {
        return Err(fail(format!(
            "{}: the secret is empty or spans several lines",
            keys.0
        )));
    }
    Ok(t)
}

/// What an HTTP connector is made of before it sends anything: its connection settings, its
/// mapping resolved against the bundle's types, and the runtime its requests run on (warning
/// when certificates are not verified). `service` names the kind of service in messages.
pub(crate) fn prepare(
    cfg: &ConnectorConfig,
    plan: &ConnectorPlan,
    service: &str,
) -> Result<(HttpConfig, Vec<TypeMap>, tokio::runtime::Runtime), ConnectorError> {
    let fail = |message: String| ConnectorError {
        source: cfg.name.clone(),
        line: None,
        message,
    };
    let http_cfg = cfg
        .http
        .clone()
        .ok_or_else(|| fail(format!("no {service} connection settings (url)")))?;
    let mapping = cfg
        .mapping
        .clone()
        .ok_or_else(|| fail(format!("no {service} mapping")))?;
    let types = type_maps(&mapping, plan).map_err(|e| fail(e.join("; ")))?;
    if http_cfg.tls_insecure {
        tracing::warn!(
            connector = cfg.name.as_str(),
            "tls_insecure is set: the server's certificate is not verified (for tests only)"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the connector's runtime: {e}")))?;
    Ok((http_cfg, types, rt))
}

/// The mapped types against the bundle's connector types: every type and attribute of the
/// mapping must be declared; a type's anchor holds the SCIM id and is not mapped. The errors
/// name the mapping's keys.
pub fn type_maps(mapping: &ScimMapping, plan: &ConnectorPlan) -> Result<Vec<TypeMap>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for st in &mapping.types {
        let Some(t) = plan
            .types
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(&st.object_type))
        else {
            let known: Vec<&str> = plan.types.iter().map(|t| &*t.name).collect();
            errors.push(format!(
                "mapping `{}`: connector \"{}\" declares no such object type (it has {})",
                st.object_type,
                plan.name,
                known.join(", ")
            ));
            continue;
        };
        let anchor = t
            .anchor
            .filter(|&a| Some(a) != t.dn)
            .and_then(|a| Some((t.names.get(a)?.to_string(), t.kinds.get(a)?.0)));
        let Some(anchor) = anchor else {
            errors.push(format!(
                "mapping `{}`: the type needs an anchor attribute of its own (`anchor <attribute>`): it holds the SCIM id",
                st.object_type
            ));
            continue;
        };
        let mut attrs = Vec::new();
        for (name, path) in &st.attributes {
            // Of names that differ in case only, the first in name order.
            let Some(slot) = t
                .names
                .iter()
                .enumerate()
                .filter(|(_, n)| n.eq_ignore_ascii_case(name))
                .min_by(|a, b| a.1.cmp(b.1))
                .map(|(s, _)| s)
            else {
                errors.push(format!(
                    "mapping `{}.attributes.{name}`: type `{}` of connector \"{}\" declares no attribute `{name}`",
                    st.object_type, t.name, plan.name
                ));
                continue;
            };
            if Some(slot) == t.anchor {
                errors.push(format!(
                    "mapping `{}.attributes.{name}`: `{name}` is the anchor: it holds the SCIM id and is not mapped",
                    st.object_type
                ));
                continue;
            }
            if Some(slot) == t.dn {
                errors.push(format!(
                    "mapping `{}.attributes.{name}`: the DN is kept at the type's `dn` path",
                    st.object_type
                ));
                continue;
            }
            let (base, multi) = t.kinds[slot];
            if base == Base::Ref && !path.filter.is_empty() {
                errors.push(format!(
                    "mapping `{}.attributes.{name}`: a reference maps to a complex attribute such as `members` or `manager` (its `value` is the id), not to `{}`",
                    st.object_type, path.text
                ));
                continue;
            }
            attrs.push(AttrMap {
                name: t.names[slot].to_string(),
                path: path.clone(),
                base,
                multi,
            });
        }
        out.push(TypeMap {
            def: st.clone(),
            name: t.name.to_string(),
            anchor,
            attrs,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The attributes of each mapped type that the SCIM service holds (the mapped ones, the anchor
/// and the DN), by type name: what a deployment narrows the connector's schema to
/// (`engine::compile::Plan::keep_flows`). Types the mapping does not name are not narrowed.
pub fn held_attributes(mapping: &ScimMapping, plan: &ConnectorPlan) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for st in &mapping.types {
        let Some(t) = plan
            .types
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(&st.object_type))
        else {
            continue;
        };
        let mut names: Vec<String> = st.attributes.iter().map(|(a, _)| a.clone()).collect();
        for s in [t.anchor, t.dn].into_iter().flatten() {
            if let Some(n) = t.names.get(s) {
                names.push(n.to_string());
            }
        }
        out.push((t.name.to_string(), names));
    }
    out
}

/// A reply that is not a success, as text: the status, SCIM's `scimType` and `detail`.
pub fn describe(r: &Reply) -> String {
    let j = r.json();
    let mut out = format!("HTTP {}", r.status);
    if let Some(t) = j.get("scimType").and_then(|v| v.as_str()) {
        out.push_str(&format!(" ({t})"));
    }
    match j.get("detail").and_then(|v| v.as_str()) {
        Some(d) => out.push_str(&format!(": {d}")),
        None if j.is_null() && !r.body.is_empty() => {
            let text = String::from_utf8_lossy(&r.body);
            let text: String = text.chars().take(200).collect();
            out.push_str(&format!(": {}", text.trim()));
        }
        None => {}
    }
    out
}

impl Connector for ScimConnector {
    fn import(
        &mut self,
        mode: ImportMode<'_>,
        sink: &mut dyn ImportSink,
    ) -> Result<ImportEnd, ConnectorError> {
        let _ = mode;
        let (http, base) = self.opened()?;
        let features = self.features(&http, &base);
        read::import(self, &http, &base, features.cursor, sink)
    }

    fn export(&mut self, deltas: &[ExportDelta]) -> Result<Vec<ExportResult>, ConnectorError> {
        if deltas.is_empty() {
            return Ok(Vec::new());
        }
        let (http, base) = self.opened()?;
        let features = self.features(&http, &base);
        if !features.patch {
            return Err(self.error(
                &base,
                "the service does not support PATCH (its ServiceProviderConfig says so): updates cannot be sent".into(),
            ));
        }
        write::export(self, &http, &base, features, deltas)
    }

    fn confirms_by_reimport(&self) -> bool {
        false
    }
}

impl ScimConnector {
    /// Runs a future on the connector's runtime.
    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}
