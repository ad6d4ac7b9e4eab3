//! The LDAP connector: OpenLDAP, 389-DS style and Active Directory servers, on the ldap3
//! crate (its blocking client, which runs a current-thread runtime of its own).
//!
//! Consumes: a connector's [`LdapConfig`] (URLs tried in order, bind DN, the password from the
//! connector's [`Secret`], TLS settings, timeouts, the flavor), its partitions (base DNs with
//! container include and exclude lists) and the object types the bundle declares for it.
//! Produces: [`ImportChange`]s in pages and one [`ExportResult`] per export delta.
//!
//! - **Connection** ([`conn`]): each URL in turn until one answers and the bind succeeds;
//!   `ldaps://` or StartTLS, certificates verified against `ca_file` or the system's
//!   authorities (`tls_insecure` turns verification off, with a warning). Errors name the
//!   server and never hold the password.
//! - **Full import** ([`read`]): a paged search of each partition for the declared object
//!   classes, asking only for the declared attributes, the object classes and the anchor; an
//!   entry's object type is its most specific declared class (`structuralObjectClass` when the
//!   server gives it, else the last declared value of `objectClass`, which is how Active
//!   Directory lists them). Entries outside the included containers are skipped. Binary values
//!   stay binary; values become the declared types as in the LDIF connector. Pages go to the
//!   sink as the server sends them.
//! - **Delta import** ([`read`]): for `flavor = "openldap"`, RFC 4533 content synchronization
//!   (refreshOnly) with the cookie of each partition as the watermark: added, changed and
//!   renamed entries come whole, deletes by `entryUUID`; a server that answers with a present
//!   phase (no session log) or asks for a refresh gets a full read instead. For `flavor =
//!   "generic"`, entries with `modifyTimestamp` at or after the watermark (no deletes: a full
//!   import finds those). For `flavor = "ad"`, the DirSync control ([`dirsync`]) from the
//!   naming context's root with the cookie as the watermark, filtered to the partitions here:
//!   changed objects as partial updates, added and moved ones whole, deletes from the
//!   `isDeleted` tombstones by objectGUID; without a cookie, a complete DirSync read. A full
//!   import of an `ad` directory takes the DirSync cookie before its paged read. Ranged
//!   values (`member;range=0-1499`) are read to the end with follow-up reads.
//! - **Export** ([`write`]): adds, modifies (value adds, deletes and replaces), modrdn for
//!   renames and moves, deletes; parents are created before their children and children
//!   deleted before their parents. LDAP result codes map to [`ExportErrorCategory`]; busy and
//!   unavailable answers are retried. An add of an entry that exists with the same values, and
//!   a delete of an entry that is gone, count as applied, so a change sent again is harmless.
//!   The server's answer is trusted ([`Connector::confirms_by_reimport`] is false). For
//!   `ad`, a value flowed to `unicodePwd` is sent as the quoted password in UTF-16LE, and only
//!   over TLS (refused on a plain connection).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod conn;
pub mod dirsync;
pub mod read;
pub mod schema;
pub mod write;

use super::ldif::{AttrTypes, text_value};
use super::{Connector, ConnectorError, ExportResult, ImportEnd, ImportMode, ImportSink};
use crate::config::{ConnectorConfig, Flavor, LdapConfig};
use crate::engine::export::ExportDelta;
use crate::sema::types::Base;
use crate::value::Value;

/// One object type the bundle declares for the connector.
#[derive(Debug, Clone)]
pub struct TypeInfo {
    /// The type's name: the object class it stands for.
    pub name: String,
    /// The type's anchor attribute and its declared type.
    pub anchor: Option<(String, Base)>,
}

/// An LDAP directory as a connector.
pub struct LdapConnector {
    /// The connector's settings (partitions, secret, connection).
    pub cfg: ConnectorConfig,
    pub ldap: LdapConfig,
    pub types: Vec<TypeInfo>,
    /// Declared attributes: lower-cased name → base type.
    pub attr_types: AttrTypes,
    /// Declared attribute names as the bundle spells them, lower-cased name → spelling.
    pub names: std::collections::HashMap<String, String>,
    conn: Option<conn::Connection>,
}

impl LdapConnector {
    /// A connector for `cfg` (which must have LDAP settings) and the bundle's types.
    pub fn new(
        cfg: &ConnectorConfig,
        plan: &crate::engine::compile::ConnectorPlan,
    ) -> Result<LdapConnector, ConnectorError> {
        let ldap = cfg.ldap.clone().ok_or_else(|| ConnectorError {
            source: cfg.name.clone(),
            line: None,
            message: "no LDAP connection settings (url, partitions)".into(),
        })?;
        let types = plan
            .types
            .iter()
            .map(|t| TypeInfo {
                name: t.name.to_string(),
                anchor: t
                    .anchor
                    .filter(|&a| Some(a) != t.dn)
                    .and_then(|a| Some((t.names.get(a)?.to_string(), t.kinds.get(a)?.0))),
            })
            .collect();
        let mut names = std::collections::HashMap::new();
        for t in &plan.types {
            for (i, n) in t.names.iter().enumerate() {
                if Some(i) != t.dn && !n.is_empty() {
                    names
                        .entry(n.to_lowercase())
                        .or_insert_with(|| n.to_string());
                }
            }
        }
        if ldap.tls_insecure {
            tracing::warn!(
                connector = cfg.name.as_str(),
                "tls_insecure is set: the server's certificate is not verified (for tests only)"
            );
        }
        Ok(LdapConnector {
            cfg: cfg.clone(),
            attr_types: super::ldif::attr_types(plan.types.iter().map(|t| &t.def)),
            names,
            ldap,
            types,
            conn: None,
        })
    }

    /// The open connection, connecting (and binding) first when there is none. The caller
    /// gives it back with [`LdapConnector::put_conn`] when it is still good; a connection
    /// that failed is dropped, and the next operation connects again, trying every URL.
    pub(crate) fn take_conn(&mut self) -> Result<conn::Connection, ConnectorError> {
        if let Some(mut c) = self.conn.take()
            && !c.is_closed()
        {
            return Ok(c);
        }
        conn::Connection::open(&self.cfg, &self.ldap)
    }

    /// Keeps a connection for the next operation.
    pub(crate) fn put_conn(&mut self, c: conn::Connection) {
        self.conn = Some(c);
    }

    /// The anchor of an entry of `ty` from the server's anchor attribute: text or bytes,
    /// converted to the declared type of the type's anchor (an `entryUUID` or `objectGUID`
    /// becomes 16 bytes for a binary anchor, the UUID text for a string anchor).
    pub(crate) fn anchor_value(&self, ty: Option<&TypeInfo>, raw: RawValue<'_>) -> Option<Value> {
        let base = ty
            .or(self.types.first())
            .and_then(|t| t.anchor.as_ref())
            .map(|(_, b)| *b);
        let ad = self.ldap.flavor == Flavor::Ad;
        match (raw, base) {
            (RawValue::Text(t), Some(Base::Bin)) => Some(match uuid::Uuid::parse_str(t) {
                Ok(u) if ad => Value::bin(u.to_bytes_le().to_vec()),
                Ok(u) => Value::bin(u.as_bytes().to_vec()),
                Err(_) => Value::bin(t.as_bytes().to_vec()),
            }),
            (RawValue::Text(t), b) => text_value(t, b).ok(),
            (RawValue::Bytes(b), Some(Base::Bin) | None) => Some(Value::bin(b.to_vec())),
            (RawValue::Bytes(b), Some(_)) => Some(match uuid::Uuid::from_slice(b) {
                Ok(_) if b.len() != 16 => return None,
                Ok(u) if ad => Value::str(uuid::Uuid::from_bytes_le(*u.as_bytes()).to_string()),
                Ok(u) => Value::str(u.to_string()),
                Err(_) => Value::str(String::from_utf8_lossy(b).into_owned()),
            }),
        }
    }

    /// The type named `name` (case-insensitive).
    pub(crate) fn type_named(&self, name: &str) -> Option<&TypeInfo> {
        self.types
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Where the connector reads: its URLs, for messages.
    pub fn servers(&self) -> String {
        self.ldap.urls.join(", ")
    }
}

/// The value of attribute `name` declared as `base` (None: undeclared, a string or bytes).
pub(crate) fn value_as(name: &str, base: Option<Base>, raw: RawValue<'_>) -> Result<Value, String> {
    match raw {
        RawValue::Text(t) => text_value(t, base),
        RawValue::Bytes(b) => match base {
            None | Some(Base::Bin) => Ok(Value::bin(b.to_vec())),
            Some(_) => Err(format!("the value of `{name}` is not UTF-8 text")),
        },
    }
}

/// A value as the server sent it.
#[derive(Debug, Clone, Copy)]
pub enum RawValue<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl Connector for LdapConnector {
    fn reads_partitions_only(&self) -> bool {
        true
    }

    fn import(
        &mut self,
        mode: ImportMode<'_>,
        sink: &mut dyn ImportSink,
    ) -> Result<ImportEnd, ConnectorError> {
        read::import(self, mode, sink)
    }

    fn export(&mut self, deltas: &[ExportDelta]) -> Result<Vec<ExportResult>, ConnectorError> {
        write::export(self, deltas)
    }

    fn confirms_by_reimport(&self) -> bool {
        false
    }
}
