//! A directory server's schema, read for `idflow schema pull`: the subschema entry's
//! `attributeTypes` and `objectClasses` (RFC 4512) of an OpenLDAP or generic server, or the
//! `attributeSchema` and `classSchema` objects of Active Directory's schema partition; and
//! the connector block of a bundle's schema file made from it.

use super::conn::Connection;
use crate::config::Flavor;
use crate::connector::ConnectorError;
use crate::sema::types::Base;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Scope, SearchEntry};
use std::collections::{BTreeMap, BTreeSet};

/// An attribute type: its idflow type and whether it holds one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrType {
    pub base: Base,
    pub single: bool,
}

/// An object class: its superclass, auxiliary classes and attributes (own, not inherited).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassDef {
    pub sup: Vec<String>,
    pub aux: Vec<String>,
    pub attrs: Vec<String>,
}

/// A server's schema: attribute types and object classes by lower-cased name, with the
/// server's spelling.
#[derive(Debug, Clone, Default)]
pub struct ServerSchema {
    pub attrs: BTreeMap<String, (String, AttrType)>,
    pub classes: BTreeMap<String, (String, ClassDef)>,
}

impl ServerSchema {
    /// The attributes an entry of `class` may hold: its own, its superclasses' and its
    /// auxiliary classes', by the server's spelling (sorted, without repeats). None for a
    /// class the server does not have.
    pub fn attributes_of(&self, class: &str) -> Option<BTreeSet<String>> {
        self.classes.get(&class.to_lowercase())?;
        let mut out = BTreeSet::new();
        let mut todo = vec![class.to_lowercase()];
        let mut seen = BTreeSet::new();
        while let Some(c) = todo.pop() {
            if !seen.insert(c.clone()) {
                continue;
            }
            let Some((_, def)) = self.classes.get(&c) else {
                continue;
            };
            for a in &def.attrs {
                let name = self
                    .attrs
                    .get(&a.to_lowercase())
                    .map(|(n, _)| n.clone())
                    .unwrap_or_else(|| a.clone());
                out.insert(name);
            }
            todo.extend(def.sup.iter().map(|s| s.to_lowercase()));
            todo.extend(def.aux.iter().map(|s| s.to_lowercase()));
        }
        Some(out)
    }
}

/// Reads the schema of the server `conn` is bound to.
pub fn read(conn: &mut Connection, flavor: Flavor) -> Result<ServerSchema, ConnectorError> {
    let root = root_dse(conn)?;
    match flavor {
        Flavor::Ad => {
            let nc = first(&root, "schemaNamingContext")
                .ok_or_else(|| conn.error("the root DSE", "no schemaNamingContext"))?;
            read_ad(conn, &nc)
        }
        _ => {
            let sub = first(&root, "subschemaSubentry")
                .ok_or_else(|| conn.error("the root DSE", "no subschemaSubentry"))?;
            read_subschema(conn, &sub)
        }
    }
}

/// The root DSE's attributes.
pub fn root_dse(conn: &mut Connection) -> Result<SearchEntry, ConnectorError> {
    let timeout = conn.timeout;
    let r = conn
        .ldap
        .with_timeout(timeout)
        .search(
            "",
            Scope::Base,
            "(objectClass=*)",
            vec!["*", "subschemaSubentry"],
        )
        .map_err(|e| conn.error("the read of the root DSE", e))?;
    let Some(re) = r.0.into_iter().next() else {
        return Err(conn.error("the read of the root DSE", "no entry"));
    };
    super::read::construct(re).map_err(|e| conn.error("the read of the root DSE", e))
}

/// The first value of an attribute (name compared case-insensitively).
pub fn first(e: &SearchEntry, name: &str) -> Option<String> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first().cloned())
}

fn all(e: &SearchEntry, name: &str) -> Vec<String> {
    e.attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter().cloned())
        .collect()
}

/// A paged search: every entry.
fn paged(
    conn: &mut Connection,
    base: &str,
    filter: &str,
    attrs: &[&str],
) -> Result<Vec<SearchEntry>, ConnectorError> {
    let adapters: Vec<Box<dyn Adapter<'_, &str, Vec<&str>>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(500)),
    ];
    let timeout = conn.timeout;
    let what = format!("the search of `{base}`");
    let mut out = Vec::new();
    let url = conn.url.clone();
    let fail = |e: &dyn std::fmt::Display| ConnectorError {
        source: url.clone(),
        line: None,
        message: format!("{what}: {e}"),
    };
    let mut stream = conn
        .ldap
        .with_timeout(timeout)
        .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
        .map_err(|e| fail(&e))?;
    while let Some(re) = stream.next().map_err(|e| fail(&e))? {
        let e = super::read::construct(re).map_err(|e| fail(&e))?;
        out.push(e);
    }
    let res = stream.result();
    if res.rc != 0 {
        return Err(fail(&super::write::describe(&res)));
    }
    Ok(out)
}

/// Active Directory's schema partition: `attributeSchema` and `classSchema` objects.
fn read_ad(conn: &mut Connection, nc: &str) -> Result<ServerSchema, ConnectorError> {
    let mut s = ServerSchema::default();
    let mut constructed = BTreeSet::new();
    for e in paged(
        conn,
        nc,
        "(objectClass=attributeSchema)",
        &[
            "lDAPDisplayName",
            "attributeSyntax",
            "oMSyntax",
            "isSingleValued",
            "systemFlags",
        ],
    )? {
        let Some(name) = first(&e, "lDAPDisplayName") else {
            continue;
        };
        // Constructed attributes (tokenGroups, ...): computed per entry, and a search of a
        // subtree may not ask for them. Left out.
        let flags: i64 = first(&e, "systemFlags")
            .and_then(|f| f.parse().ok())
            .unwrap_or(0);
        if flags & FLAG_ATTR_IS_CONSTRUCTED != 0 {
            constructed.insert(name.to_lowercase());
            continue;
        }
        let syntax = first(&e, "attributeSyntax").unwrap_or_default();
        let om = first(&e, "oMSyntax").unwrap_or_default();
        let single = first(&e, "isSingleValued").is_some_and(|v| v.eq_ignore_ascii_case("TRUE"));
        s.attrs.insert(
            name.to_lowercase(),
            (
                name,
                AttrType {
                    base: ad_syntax(&syntax, &om),
                    single,
                },
            ),
        );
    }
    for e in paged(
        conn,
        nc,
        "(objectClass=classSchema)",
        &[
            "lDAPDisplayName",
            "subClassOf",
            "mayContain",
            "mustContain",
            "systemMayContain",
            "systemMustContain",
            "auxiliaryClass",
            "systemAuxiliaryClass",
        ],
    )? {
        let Some(name) = first(&e, "lDAPDisplayName") else {
            continue;
        };
        let sup: Vec<String> = all(&e, "subClassOf")
            .into_iter()
            .filter(|c| !c.eq_ignore_ascii_case(&name))
            .collect();
        let mut attrs = Vec::new();
        for k in [
            "mayContain",
            "mustContain",
            "systemMayContain",
            "systemMustContain",
        ] {
            attrs.extend(all(&e, k));
        }
        attrs.retain(|a| !constructed.contains(&a.to_lowercase()));
        let mut aux = all(&e, "auxiliaryClass");
        aux.extend(all(&e, "systemAuxiliaryClass"));
        s.classes
            .insert(name.to_lowercase(), (name, ClassDef { sup, aux, attrs }));
    }
    Ok(s)
}

/// systemFlags of a constructed attribute (MS-ADTS 2.2.10).
const FLAG_ATTR_IS_CONSTRUCTED: i64 = 0x4;

/// The idflow type of an Active Directory attribute syntax (attributeSyntax, oMSyntax).
pub fn ad_syntax(syntax: &str, om: &str) -> Base {
    match syntax {
        "2.5.5.1" => Base::Ref,
        // DN-Binary (oMSyntax 127) and DN-String: references; OR-Name too.
        "2.5.5.7" | "2.5.5.14" if om == "127" => Base::Ref,
        "2.5.5.8" => Base::Bool,
        "2.5.5.9" | "2.5.5.16" => Base::Num,
        "2.5.5.10" | "2.5.5.15" | "2.5.5.17" => Base::Bin,
        _ => Base::Str,
    }
}

/// An OpenLDAP (RFC 4512) subschema entry.
fn read_subschema(conn: &mut Connection, dn: &str) -> Result<ServerSchema, ConnectorError> {
    let timeout = conn.timeout;
    let what = format!("the read of the subschema `{dn}`");
    let r = conn
        .ldap
        .with_timeout(timeout)
        .search(
            dn,
            Scope::Base,
            "(objectClass=subschema)",
            vec!["attributeTypes", "objectClasses"],
        )
        .map_err(|e| conn.error(&what, e))?;
    if r.1.rc != 0 {
        return Err(conn.error(&what, super::write::describe(&r.1)));
    }
    let Some(re) = r.0.into_iter().next() else {
        return Err(conn.error(&what, "no entry"));
    };
    let e = super::read::construct(re).map_err(|e| conn.error(&what, e))?;
    Ok(parse_subschema(
        &all(&e, "attributeTypes"),
        &all(&e, "objectClasses"),
    ))
}

/// Parses RFC 4512 attribute type and object class descriptions.
pub fn parse_subschema(attribute_types: &[String], object_classes: &[String]) -> ServerSchema {
    let mut s = ServerSchema::default();
    // Attribute types: (names, SUP, SYNTAX, SINGLE-VALUE); the syntax may be inherited.
    let mut raw: BTreeMap<String, (String, Option<String>, Option<String>, bool)> = BTreeMap::new();
    for d in attribute_types {
        let t = tokens(d);
        let names = names_of(&t, "NAME");
        let Some(first) = names.first() else {
            continue;
        };
        let sup = value_of(&t, "SUP");
        let syntax = value_of(&t, "SYNTAX").map(|v| v.split('{').next().unwrap_or("").to_string());
        let single = t.iter().any(|x| x == "SINGLE-VALUE");
        for n in &names {
            raw.insert(
                n.to_lowercase(),
                (first.clone(), sup.clone(), syntax.clone(), single),
            );
        }
    }
    for (key, (name, _, _, single)) in &raw {
        let mut syntax = None;
        let mut cur = Some(key.clone());
        for _ in 0..16 {
            let Some(k) = cur else { break };
            let Some((_, sup, syn, _)) = raw.get(&k) else {
                break;
            };
            if let Some(x) = syn {
                syntax = Some(x.clone());
                break;
            }
            cur = sup.as_ref().map(|s| s.to_lowercase());
        }
        s.attrs.insert(
            key.clone(),
            (
                name.clone(),
                AttrType {
                    base: rfc4517_syntax(syntax.as_deref().unwrap_or("")),
                    single: *single,
                },
            ),
        );
    }
    for d in object_classes {
        let t = tokens(d);
        let names = names_of(&t, "NAME");
        let Some(first) = names.first() else {
            continue;
        };
        let mut attrs = names_of(&t, "MUST");
        attrs.extend(names_of(&t, "MAY"));
        let def = ClassDef {
            sup: names_of(&t, "SUP"),
            aux: Vec::new(),
            attrs,
        };
        for n in &names {
            s.classes
                .insert(n.to_lowercase(), (first.clone(), def.clone()));
        }
    }
    s
}

/// The idflow type of an RFC 4517 syntax OID.
pub fn rfc4517_syntax(oid: &str) -> Base {
    match oid.trim_start_matches("1.3.6.1.4.1.1466.115.121.1.") {
        "12" | "34" => Base::Ref,
        "27" => Base::Num,
        "7" => Base::Bool,
        "4" | "5" | "8" | "9" | "10" | "28" | "40" | "49" => Base::Bin,
        _ => Base::Str,
    }
}

/// The tokens of an RFC 4512 description: parentheses, words and quoted strings (quotes
/// removed).
fn tokens(d: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = d.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '(' | ')' | '$' => {
                out.push(c.to_string());
                chars.next();
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    s.push(c);
                }
                out.push(format!("'{s}"));
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '\'' | '$') {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    out
}

/// The names after a keyword: one name or a parenthesized `$` list (quoted or not).
fn names_of(t: &[String], key: &str) -> Vec<String> {
    let Some(i) = t.iter().position(|x| x == key) else {
        return Vec::new();
    };
    let clean = |s: &str| s.trim_start_matches('\'').to_string();
    match t.get(i + 1).map(String::as_str) {
        Some("(") => t[i + 2..]
            .iter()
            .take_while(|x| *x != ")")
            .filter(|x| *x != "$")
            .map(|x| clean(x))
            .collect(),
        Some(x) => vec![clean(x)],
        None => Vec::new(),
    }
}

fn value_of(t: &[String], key: &str) -> Option<String> {
    names_of(t, key).into_iter().next()
}

/// The idflow schema type name of a base type (`string` for what is no schema type).
pub fn type_name(b: Base) -> &'static str {
    match b {
        Base::Str | Base::Num | Base::Bool | Base::Bin | Base::Ref | Base::Dt => b.schema_name(),
        _ => "string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4512_descriptions_parse_with_inherited_syntaxes() {
        let at = [
            "( 2.5.4.41 NAME 'name' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{32768} )".to_string(),
            "( 2.5.4.3 NAME ( 'cn' 'commonName' ) DESC 'RFC4519: common name(s)' SUP name )".to_string(),
            "( 2.5.4.31 NAME 'member' SUP distinguishedName )".to_string(),
            "( 2.5.4.49 NAME 'distinguishedName' SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )".to_string(),
            "( 1.1 NAME 'uidNumber' SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )".to_string(),
            "( 1.2 NAME 'jpegPhoto' SYNTAX 1.3.6.1.4.1.1466.115.121.1.28 )".to_string(),
        ];
        let oc = [
            "( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )".to_string(),
            "( 2.5.6.9 NAME 'groupOfNames' SUP top STRUCTURAL MUST ( member $ cn ) MAY ( description $ o ) )".to_string(),
            "( 9.9 NAME 'posixThing' SUP groupOfNames MAY uidNumber )".to_string(),
        ];
        let s = parse_subschema(&at, &oc);
        assert_eq!(s.attrs["cn"].1.base, Base::Str);
        assert_eq!(s.attrs["commonname"].0, "cn");
        assert_eq!(s.attrs["member"].1.base, Base::Ref);
        assert_eq!(
            s.attrs["uidnumber"].1,
            AttrType {
                base: Base::Num,
                single: true
            }
        );
        assert_eq!(s.attrs["jpegphoto"].1.base, Base::Bin);
        let attrs: Vec<String> = s.attributes_of("posixThing").unwrap().into_iter().collect();
        assert_eq!(
            attrs,
            [
                "cn",
                "description",
                "member",
                "o",
                "objectClass",
                "uidNumber"
            ]
        );
        assert!(s.attributes_of("nothing").is_none());
    }

    #[test]
    fn ad_syntaxes_map_to_idflow_types() {
        assert_eq!(ad_syntax("2.5.5.1", "127"), Base::Ref);
        assert_eq!(ad_syntax("2.5.5.10", "4"), Base::Bin);
        assert_eq!(ad_syntax("2.5.5.17", "4"), Base::Bin);
        assert_eq!(ad_syntax("2.5.5.9", "2"), Base::Num);
        assert_eq!(ad_syntax("2.5.5.16", "65"), Base::Num);
        assert_eq!(ad_syntax("2.5.5.8", "1"), Base::Bool);
        assert_eq!(ad_syntax("2.5.5.11", "24"), Base::Str);
        assert_eq!(ad_syntax("2.5.5.12", "64"), Base::Str);
    }
}
