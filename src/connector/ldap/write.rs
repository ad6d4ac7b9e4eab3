//! Exports to an LDAP server. See the module doc of [`super`].
//!
//! The deltas are applied in tree order: adds, updates and renames by the depth of the DN
//! they leave the object at (parents first), then deletes deepest first (children before
//! their parents); the results are answered in the deltas' order. When the server goes away
//! the connector connects again (trying every URL) once; if that fails, the changes not yet
//! sent are answered "retry", so the ones the server applied are recorded and the others stay
//! staged for the next run.

use super::super::{ConnectorError, ExportErrorCategory, ExportResult};
use super::conn::Connection;
use super::{LdapConnector, RawValue};
use crate::dn::Dn;
use crate::engine::export::{AttrOp, ExportDelta};
use crate::engine::model::ExportOp;
use crate::value::Value;
use ldap3::{LdapError, LdapResult, Mod, Scope, SearchEntry};
use std::collections::HashSet;

/// An LDAP result as text: the code's name and number, and the server's message.
pub fn describe(r: &LdapResult) -> String {
    let name = code_name(r.rc);
    if r.text.is_empty() {
        format!("{name} ({})", r.rc)
    } else {
        format!("{name} ({}): {}", r.rc, r.text)
    }
}

fn code_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        71 => "affectsMultipleDSAs",
        80 => "other",
        4096 => "e-syncRefreshRequired",
        _ => "result",
    }
}

/// The export result of an LDAP result code that is not success.
pub fn result_of(r: &LdapResult) -> ExportResult {
    use ExportErrorCategory as C;
    let detail = describe(r);
    let category = match r.rc {
        3 | 51 | 52 => {
            return ExportResult::Retry {
                after: None,
                reason: detail,
            };
        }
        // An entry or a value that is already there: a value the directory holds unique
        // (a DN, a unique attribute) held by another object, Entra's "Duplicate Attribute".
        68 | 20 => C::DuplicateAttribute,
        32 => C::NoSuchObject,
        // A value the attribute's constraints or syntax refuse: "Data Validation Failure".
        19 | 21 => C::DataValidation,
        // A change the schema refuses as a whole: an attribute or class it does not allow.
        16 | 17 | 18 | 65 | 66 | 67 | 69 => C::ConstraintViolation,
        34 | 64 => C::InvalidDn,
        8 | 48 | 49 | 50 => C::PermissionDenied,
        _ => C::Other,
    };
    ExportResult::Failed { category, detail }
}

/// A value as the bytes the server stores; None for what is no value.
fn bytes(v: &Value) -> Option<Vec<u8>> {
    Some(match v {
        Value::Str(s) | Value::Ref(s) => s.as_bytes().to_vec(),
        Value::Num(n) => n.to_string().into_bytes(),
        Value::Bool(b) => (if *b { "TRUE" } else { "FALSE" }).as_bytes().to_vec(),
        Value::Bin(b) => b.to_vec(),
        Value::Dt(d) => super::super::ldif::generalized_time(d).into_bytes(),
        _ => return None,
    })
}

/// The scalar values of a value, as bytes, without empty strings and repeats.
fn value_set(v: &Value) -> HashSet<Vec<u8>> {
    v.values()
        .iter()
        .filter_map(bytes)
        .filter(|b| !b.is_empty())
        .collect()
}

fn values_set(vs: &[Value]) -> HashSet<Vec<u8>> {
    vs.iter().flat_map(value_set).collect()
}

/// The depth of a DN (RDN count; an unparsable DN sorts first and fails on its own).
fn depth(dn: &str) -> usize {
    Dn::parse(dn).map(|d| d.len()).unwrap_or(0)
}

/// What went wrong with one operation: the server's answer, or the connection.
enum OpError {
    Answer(LdapResult),
    Connection(String),
}

impl From<LdapError> for OpError {
    fn from(e: LdapError) -> OpError {
        match e {
            LdapError::LdapResult { result } => OpError::Answer(result),
            other => OpError::Connection(other.to_string()),
        }
    }
}

fn check(r: Result<LdapResult, LdapError>) -> Result<(), OpError> {
    let r = r?;
    if r.rc == 0 {
        Ok(())
    } else {
        Err(OpError::Answer(r))
    }
}

pub fn export(
    c: &mut LdapConnector,
    deltas: &[ExportDelta],
) -> Result<Vec<ExportResult>, ConnectorError> {
    let mut order: Vec<usize> = (0..deltas.len()).collect();
    order.sort_by_key(|&i| {
        let d = &deltas[i];
        match d.kind {
            ExportOp::Delete => (1, usize::MAX - depth(&d.dn)),
            _ => (0, depth(d.target_dn())),
        }
    });
    let mut results: Vec<Option<ExportResult>> = vec![None; deltas.len()];
    let mut conn: Option<Connection> = None;
    let mut reconnected = false;
    let mut gone: Option<String> = None;
    for i in order {
        if let Some(why) = &gone {
            results[i] = Some(ExportResult::Retry {
                after: None,
                reason: why.clone(),
            });
            continue;
        }
        let d = &deltas[i];
        loop {
            let cn = match conn.as_mut() {
                Some(cn) => cn,
                None => match c.take_conn() {
                    Ok(cn) => conn.insert(cn),
                    Err(e) => {
                        // No server answers: nothing is sent; the changes stay staged.
                        if results.iter().all(Option::is_none) {
                            return Err(e);
                        }
                        let why = format!("not sent: {e}");
                        gone = Some(why.clone());
                        results[i] = Some(ExportResult::Retry {
                            after: None,
                            reason: why,
                        });
                        break;
                    }
                },
            };
            match apply(c, cn, d) {
                Ok(r) => {
                    results[i] = Some(r);
                    break;
                }
                Err(why) => {
                    // The connection failed: whether this change was applied is unknown. It
                    // is sent again (every change is idempotent) on a new connection, once.
                    let url = cn.url.clone();
                    conn = None;
                    if reconnected {
                        let why = format!("{url}: the connection failed: {why}");
                        gone = Some(why.clone());
                        results[i] = Some(ExportResult::Retry {
                            after: None,
                            reason: why,
                        });
                        break;
                    }
                    reconnected = true;
                }
            }
        }
    }
    if let Some(cn) = conn {
        c.put_conn(cn);
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or(ExportResult::Retry {
                after: None,
                reason: "not sent".into(),
            })
        })
        .collect())
}

/// Active Directory's password attribute: written only, as the quoted password in UTF-16LE.
pub const PASSWORD_ATTR: &str = "unicodePwd";

/// Whether `attr` is Active Directory's password of an `ad` connector.
fn is_password(c: &LdapConnector, attr: &str) -> bool {
    c.ldap.flavor == crate::config::Flavor::Ad && attr.eq_ignore_ascii_case(PASSWORD_ATTR)
}

/// A `unicodePwd` value: the password in double quotes, in UTF-16LE.
pub fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// Whether the connection is encrypted: ldaps://, or StartTLS on ldap://.
fn over_tls(c: &LdapConnector, cn: &Connection) -> bool {
    let url = cn.url.to_ascii_lowercase();
    url.starts_with("ldaps://") || (c.ldap.starttls && url.starts_with("ldap://"))
}

/// The values of an attribute change as the server takes them (a password encoded).
fn encode(c: &LdapConnector, attr: &str, set: HashSet<Vec<u8>>) -> HashSet<Vec<u8>> {
    if !is_password(c, attr) {
        return set;
    }
    set.into_iter()
        .map(|v| unicode_pwd(&String::from_utf8_lossy(&v)))
        .collect()
}

/// Applies one delta: its result, or the connection error that stopped it.
fn apply(c: &LdapConnector, cn: &mut Connection, d: &ExportDelta) -> Result<ExportResult, String> {
    if d.changes.iter().any(|ch| is_password(c, &ch.attr)) && !over_tls(c, cn) {
        // Active Directory refuses a password over a plain connection, and it must not
        // travel in clear text: refused here, before anything is sent.
        return Ok(ExportResult::Failed {
            category: ExportErrorCategory::PermissionDenied,
            detail: format!(
                "{}: `{PASSWORD_ATTR}` (a password) is only sent over TLS: use an ldaps:// URL or starttls = true",
                cn.url
            ),
        });
    }
    let r = match d.kind {
        ExportOp::Add => add(c, cn, d),
        ExportOp::Update => update(c, cn, d),
        ExportOp::Delete => match check(cn.ldap.with_timeout(cn.timeout).delete(d.dn.trim())) {
            // Gone already: what the delete was for.
            Err(OpError::Answer(r)) if r.rc == 32 => Ok(ExportResult::Applied { anchor: None }),
            Err(e) => Err(e),
            Ok(()) => Ok(ExportResult::Applied { anchor: None }),
        },
    };
    match r {
        Ok(r) => Ok(r),
        Err(OpError::Answer(r)) => Ok(result_of(&r)),
        Err(OpError::Connection(e)) => Err(e),
    }
}

/// The attributes of an add: objectClass (the type, unless the changes give classes) and the
/// values of the changes.
fn add_attrs(c: &LdapConnector, d: &ExportDelta) -> Vec<(Vec<u8>, HashSet<Vec<u8>>)> {
    let mut attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = Vec::new();
    let mut classes = false;
    for ch in &d.changes {
        let set = match &ch.op {
            AttrOp::Replace(v) => value_set(v),
            AttrOp::Add(vs) => values_set(vs),
            AttrOp::Clear | AttrOp::Remove(_) => HashSet::new(),
        };
        if set.is_empty() {
            continue;
        }
        let set = encode(c, &ch.attr, set);
        if ch.attr.eq_ignore_ascii_case("objectClass") {
            classes = true;
        }
        match attrs
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(ch.attr.as_bytes()))
        {
            Some((_, s)) => s.extend(set),
            None => attrs.push((ch.attr.as_bytes().to_vec(), set)),
        }
    }
    if !classes {
        attrs.insert(
            0,
            (
                b"objectClass".to_vec(),
                HashSet::from([d.object_type.as_bytes().to_vec()]),
            ),
        );
    }
    attrs
}

fn add(c: &LdapConnector, cn: &mut Connection, d: &ExportDelta) -> Result<ExportResult, OpError> {
    let dn = d.dn.trim();
    let attrs = add_attrs(c, d);
    match check(cn.ldap.with_timeout(cn.timeout).add(dn, attrs.clone())) {
        Ok(()) => {}
        Err(OpError::Answer(r)) if r.rc == 68 => {
            // An add sent again: applied when the entry holds what it would have added (a
            // password cannot be read back: it is not compared).
            let readable: Vec<_> = attrs
                .iter()
                .filter(|(n, _)| !is_password(c, &String::from_utf8_lossy(n)))
                .cloned()
                .collect();
            let Some(e) = read_entry(c, cn, dn, &readable)? else {
                return Ok(result_of(&r));
            };
            if !holds(&e, &readable) {
                return Ok(result_of(&r));
            }
            return Ok(ExportResult::Applied {
                anchor: anchor_of(c, &d.object_type, &e),
            });
        }
        Err(e) => return Err(e),
    }
    let e = read_entry(c, cn, dn, &[])?;
    Ok(ExportResult::Applied {
        anchor: e.and_then(|e| anchor_of(c, &d.object_type, &e)),
    })
}

/// The entry at `dn` with the anchor and the given attributes; None when there is none.
fn read_entry(
    c: &LdapConnector,
    cn: &mut Connection,
    dn: &str,
    attrs: &[(Vec<u8>, HashSet<Vec<u8>>)],
) -> Result<Option<SearchEntry>, OpError> {
    let mut names: Vec<String> = attrs
        .iter()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect();
    names.push(c.ldap.anchor_attribute.clone());
    let r = cn
        .ldap
        .with_timeout(cn.timeout)
        .search(dn, Scope::Base, "(objectClass=*)", names)?;
    if r.1.rc == 32 {
        return Ok(None);
    }
    if r.1.rc != 0 {
        return Err(OpError::Answer(r.1));
    }
    Ok(r.0
        .into_iter()
        .next()
        .and_then(|re| super::read::construct(re).ok()))
}

/// Whether an entry holds every value of `attrs` (object classes: the ones named).
fn holds(e: &SearchEntry, attrs: &[(Vec<u8>, HashSet<Vec<u8>>)]) -> bool {
    attrs.iter().all(|(name, want)| {
        let name = String::from_utf8_lossy(name);
        let mut have: HashSet<Vec<u8>> = HashSet::new();
        for (k, vs) in &e.attrs {
            if k.eq_ignore_ascii_case(&name) {
                have.extend(vs.iter().map(|v| v.as_bytes().to_vec()));
            }
        }
        for (k, vs) in &e.bin_attrs {
            if k.eq_ignore_ascii_case(&name) {
                have.extend(vs.iter().cloned());
            }
        }
        if name.eq_ignore_ascii_case("objectClass") {
            let have: HashSet<Vec<u8>> = have.iter().map(|v| v.to_ascii_lowercase()).collect();
            want.iter().all(|w| have.contains(&w.to_ascii_lowercase()))
        } else {
            *want == have
        }
    })
}

/// The anchor the server gave an entry, as the type declares it.
fn anchor_of(c: &LdapConnector, ty: &str, e: &SearchEntry) -> Option<Value> {
    let t = c.type_named(ty);
    t.and_then(|t| t.anchor.as_ref())?;
    let a = &c.ldap.anchor_attribute;
    let text = e
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(a))
        .and_then(|(_, v)| v.first())
        .map(|v| RawValue::Text(v));
    let raw = text.or_else(|| {
        e.bin_attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(a))
            .and_then(|(_, v)| v.first())
            .map(|v| RawValue::Bytes(v))
    })?;
    c.anchor_value(t, raw)
}

/// An update: the rename or move first (modrdn), then the attribute changes.
fn update(
    c: &LdapConnector,
    cn: &mut Connection,
    d: &ExportDelta,
) -> Result<ExportResult, OpError> {
    let mut dn = d.dn.trim().to_string();
    if let Some(new) = d.new_dn.as_deref().map(str::trim).filter(|n| !n.is_empty())
        && !crate::dn::same(&dn, new)
    {
        let (Ok(old), Ok(target)) = (Dn::parse(&dn), Dn::parse(new)) else {
            return Ok(ExportResult::Failed {
                category: ExportErrorCategory::InvalidDn,
                detail: format!("`{new}` is not a DN"),
            });
        };
        let rdn = target.rdns().next().unwrap_or_default().to_string();
        let parent = target.parent().unwrap_or_default();
        let new_sup = (old.parent().unwrap_or_default() != parent).then(|| parent.to_string());
        match check(
            cn.ldap
                .with_timeout(cn.timeout)
                .modifydn(&dn, &rdn, true, new_sup.as_deref()),
        ) {
            Ok(()) => {}
            // Sent again after it was applied: the object is at its new DN already.
            Err(OpError::Answer(r)) if r.rc == 32 && exists(cn, new)? => {}
            Err(e) => return Err(e),
        }
        dn = new.to_string();
    }
    let mut mods: Vec<Mod<Vec<u8>>> = Vec::new();
    for ch in &d.changes {
        let name = ch.attr.as_bytes().to_vec();
        match &ch.op {
            AttrOp::Replace(Value::IgnoreThisFlow) => {}
            AttrOp::Replace(v) => mods.push(Mod::Replace(name, encode(c, &ch.attr, value_set(v)))),
            AttrOp::Clear => mods.push(Mod::Replace(name, HashSet::new())),
            AttrOp::Add(vs) => {
                let s = encode(c, &ch.attr, values_set(vs));
                if !s.is_empty() {
                    mods.push(Mod::Add(name, s));
                }
            }
            AttrOp::Remove(vs) => {
                let s = encode(c, &ch.attr, values_set(vs));
                if !s.is_empty() {
                    mods.push(Mod::Delete(name, s));
                }
            }
        }
    }
    if !mods.is_empty() {
        check(cn.ldap.with_timeout(cn.timeout).modify(&dn, mods))?;
    }
    Ok(ExportResult::Applied { anchor: None })
}

/// Whether an entry exists at `dn`.
fn exists(cn: &mut Connection, dn: &str) -> Result<bool, OpError> {
    let r =
        cn.ldap
            .with_timeout(cn.timeout)
            .search(dn, Scope::Base, "(objectClass=*)", vec!["1.1"])?;
    Ok(r.1.rc == 0 && !r.0.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each result code the connector names, as the export result it becomes.
    #[test]
    fn result_codes_map_to_export_results() {
        use ExportErrorCategory as C;
        let failed = |c| Some(c);
        let cases: &[(u32, Option<C>)] = &[
            (3, None),                           // timeLimitExceeded: retried
            (51, None),                          // busy
            (52, None),                          // unavailable
            (19, failed(C::DataValidation)),     // constraintViolation
            (21, failed(C::DataValidation)),     // invalidAttributeSyntax
            (68, failed(C::DuplicateAttribute)), // entryAlreadyExists
            (20, failed(C::DuplicateAttribute)), // attributeOrValueExists
            (50, failed(C::PermissionDenied)),   // insufficientAccessRights
            (8, failed(C::PermissionDenied)),    // strongerAuthRequired
            (32, failed(C::NoSuchObject)),
            (34, failed(C::InvalidDn)),           // invalidDNSyntax
            (64, failed(C::InvalidDn)),           // namingViolation
            (65, failed(C::ConstraintViolation)), // objectClassViolation
            (17, failed(C::ConstraintViolation)), // undefinedAttributeType
            (80, failed(C::Other)),
        ];
        for &(rc, want) in cases {
            let r = LdapResult {
                rc,
                matched: String::new(),
                text: "the server's words".into(),
                refs: Vec::new(),
                ctrls: Vec::new(),
            };
            match (result_of(&r), want) {
                (ExportResult::Retry { reason, .. }, None) => {
                    assert!(reason.contains("the server's words"), "{rc}: {reason}")
                }
                (ExportResult::Failed { category, detail }, Some(want)) => {
                    assert_eq!(category, want, "{rc}");
                    assert!(detail.contains(code_name(rc)), "{rc}: {detail}");
                }
                (got, want) => panic!("{rc}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn a_password_is_quoted_utf16le() {
        assert_eq!(
            super::unicode_pwd("Ab1é"),
            [b'"', 0, b'A', 0, b'b', 0, b'1', 0, 0xe9, 0, b'"', 0]
        );
    }
}
