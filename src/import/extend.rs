//! Extends a bundle's schema files with what imported rules use.
//!
//! Consumes: the bundle's `.idf` files as they are once a script's rules are merged into them
//! (`merge`), and the names of the imported rules. Produces: [`Extended`]: the schema files
//! with the object types and attributes the imported rules use and the bundle does not
//! declare, formatted, and one [`Added`] per declaration with where its type came from.
//!
//! - A connector object type (a rule's source type inbound, its target type outbound) is added
//!   when the shipped schema of the connector's kind has the class (`schemas`: Active Directory
//!   for `ad`, the Entra connector for `entra`), with the anchor of the connector's other types.
//! - A connector attribute (read inbound: scope, join, flow expressions; written outbound: flow
//!   targets, join) takes its type from the shipped schema; failing that, the type of the
//!   metaverse attribute it flows to or from as a plain attribute, or is joined with.
//! - A metaverse object type is added as the rules name it. A metaverse attribute takes the
//!   type of the connector attribute that flows into it as a plain attribute (`[dn]`), else the
//!   type the checker gives the flow's expression, else that of the connector attribute it flows
//!   to or is joined with.
//!
//! Types found in one round may type more in the next (a metaverse attribute typed by a
//! connector attribute added before), so the rounds repeat until nothing is added. What
//! cannot be typed is not added: the check of the result reports it.

use super::merge::Existing;
use super::schemas::{self, DirectorySchema};
use super::writer::OutFile;
use crate::frontend::{self, Checked};
use crate::sema::schema::ObjectDef;
use crate::sema::types::{Base, Ty};
use crate::source::{FileId, SourceMap};
use crate::stdlib::Stdlib;
use crate::syntax::{self, ast};
use std::collections::BTreeMap;

/// The schema an addition goes into.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    Connector(String),
    Metaverse,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Connector(c) => write!(f, "connector \"{c}\""),
            Owner::Metaverse => f.write_str("metaverse"),
        }
    }
}

/// An attribute declaration to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttr {
    pub name: String,
    pub ty: &'static str,
    pub multi: bool,
}

/// One declaration the import adds to a schema file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The file, relative to the bundle.
    pub path: String,
    pub owner: Owner,
    pub object: String,
    /// The attribute added to `object`; None when the object type itself is new.
    pub attr: Option<NewAttr>,
    /// The anchor of a new connector object type.
    pub anchor: Option<String>,
    /// Where the type comes from.
    pub why: String,
}

impl std::fmt::Display for Added {
    /// `object user anchor objectGUID` or `user.mail string multi`, with its reason.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.attr {
            None => {
                write!(f, "object {}", self.object)?;
                if let Some(a) = &self.anchor {
                    write!(f, " anchor {a}")?;
                }
            }
            Some(a) => {
                write!(f, "{}.{} {}", self.object, a.name, a.ty)?;
                if a.multi {
                    f.write_str(" multi")?;
                }
            }
        }
        write!(f, " ({})", self.why)
    }
}

/// The result of [`extend`].
#[derive(Debug, Clone, Default)]
pub struct Extended {
    /// The schema files that changed, formatted.
    pub files: Vec<OutFile>,
    /// What was added, in file, schema and object order.
    pub added: Vec<Added>,
    /// Why the additions cannot be written (a schema file that does not parse or format).
    pub errors: Vec<String>,
}

/// At most this many rounds (each types what the one before made known).
const ROUNDS: usize = 8;

/// Adds to the schema files of `files` the object types and attributes that the rules named
/// in `rules` use and the bundle does not declare (see the module doc).
pub fn extend(files: &[Existing], rules: &[String]) -> Extended {
    let mut added: Vec<Added> = Vec::new();
    let mut out = Extended::default();
    let mut texts = Vec::new();
    for round in 0..=ROUNDS {
        texts = match apply(files, &added) {
            Ok(t) => t,
            Err(e) => {
                out.errors.push(e);
                return out;
            }
        };
        if round == ROUNDS {
            break;
        }
        let mut map = SourceMap::new();
        for (f, t) in files.iter().zip(&texts) {
            map.add(f.path.clone(), t.as_deref().unwrap_or(&f.text).to_string());
        }
        let checked = frontend::check(&map);
        let before = added.len();
        Round {
            files,
            checked: &checked,
            added: &mut added,
        }
        .collect(rules);
        if added.len() == before {
            break;
        }
    }
    for (f, t) in files.iter().zip(texts) {
        if let Some(text) = t {
            out.files.push(OutFile {
                path: f.path.clone(),
                text,
            });
        }
    }
    added.sort_by(|a, b| {
        (&a.path, &a.owner, &a.object, a.attr.is_some())
            .cmp(&(&b.path, &b.owner, &b.object, b.attr.is_some()))
            .then_with(|| {
                let name = |x: &Added| x.attr.as_ref().map(|a| a.name.clone());
                name(a).cmp(&name(b))
            })
    });
    out.added = added;
    out
}

/// The keyword of a checked type's base, when it is a type an attribute can have.
fn keyword(base: Base) -> Option<&'static str> {
    matches!(
        base,
        Base::Str | Base::Num | Base::Bool | Base::Bin | Base::Ref | Base::Dt
    )
    .then(|| base.schema_name())
}

/// The attribute names an expression reads: `[name]` and the quoted names of functions that
/// take one (`ImportedValue("name")`).
fn expr_attrs(e: &ast::Expr, out: &mut Vec<String>) {
    match &e.kind {
        ast::ExprKind::Attr(n) => out.push(n.clone()),
        ast::ExprKind::Call { name, args } => {
            let quoted = Stdlib::get().function(&name.name).map(|f| {
                (0..args.len())
                    .map(|i| {
                        f.signatures.iter().any(|s| {
                            s.params
                                .get(i)
                                .is_some_and(|p| p.0 == crate::sema::types::ParamTy::AttrName)
                        })
                    })
                    .collect::<Vec<bool>>()
            });
            for (i, a) in args.iter().enumerate() {
                match (&a.kind, quoted.as_ref().and_then(|q| q.get(i))) {
                    (ast::ExprKind::Str { value, .. }, Some(true)) => out.push(value.clone()),
                    _ => expr_attrs(a, out),
                }
            }
        }
        ast::ExprKind::Binary { lhs, rhs, .. } => {
            expr_attrs(lhs, out);
            expr_attrs(rhs, out);
        }
        ast::ExprKind::Neg(x) | ast::ExprKind::Paren(x) => expr_attrs(x, out),
        _ => {}
    }
}

/// The attribute a flow copies, when its expression is one attribute (`[mail]`).
fn plain_attr(e: &ast::Expr) -> Option<&str> {
    match &e.kind {
        ast::ExprKind::Attr(n) => Some(n),
        ast::ExprKind::Paren(x) => plain_attr(x),
        _ => None,
    }
}

/// What one imported rule uses.
struct Uses<'a> {
    name: &'a str,
    connector: &'a str,
    inbound: bool,
    source: &'a str,
    target: Option<&'a str>,
    /// Attributes read on the source type.
    reads: Vec<String>,
    /// Attributes written or joined on the target type.
    writes: Vec<String>,
    /// Pairs (source attribute, target attribute) that flow as a plain attribute (true) or
    /// are joined (false): each may take the other's type.
    pairs: Vec<(String, String, bool)>,
    /// Flows: target attribute and expression.
    flows: Vec<(&'a str, &'a ast::Expr)>,
}

fn uses(r: &ast::Rule) -> Option<Uses<'_>> {
    let mut connector = None;
    let mut source = None;
    let mut target = None;
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    let mut pairs = Vec::new();
    let mut flows = Vec::new();
    for item in &r.body {
        match item {
            ast::RuleItem::Connector(c, _) => connector = Some(c.value.as_str()),
            ast::RuleItem::Source(n, _) => source = Some(n.name.as_str()),
            ast::RuleItem::Target(ast::TargetType::Named(n), _) => target = Some(n.name.as_str()),
            ast::RuleItem::Scope(g) => {
                for c in &g.clauses {
                    match c {
                        ast::ScopeClause::Compare { attr, .. } => reads.push(attr.name.clone()),
                        ast::ScopeClause::Expr(e, _) => expr_attrs(e, &mut reads),
                    }
                }
            }
            ast::RuleItem::Join(g) => {
                for c in &g.conditions {
                    reads.push(c.source.name.clone());
                    writes.push(c.target.name.clone());
                    pairs.push((c.source.name.clone(), c.target.name.clone(), false));
                }
            }
            ast::RuleItem::Flow(f) => {
                expr_attrs(&f.expr, &mut reads);
                if f.target.name != "dn" {
                    writes.push(f.target.name.clone());
                    if let Some(a) = plain_attr(&f.expr) {
                        pairs.push((a.to_string(), f.target.name.clone(), true));
                    }
                }
                flows.push((f.target.name.as_str(), &f.expr));
            }
            _ => {}
        }
    }
    Some(Uses {
        name: &r.name.value,
        connector: connector?,
        inbound: r.direction == ast::Direction::Inbound,
        source: source?,
        target,
        reads,
        writes,
        pairs,
        flows,
    })
}

struct Round<'a> {
    files: &'a [Existing],
    checked: &'a Checked,
    added: &'a mut Vec<Added>,
}

impl<'a> Round<'a> {
    fn path(&self, file: FileId) -> String {
        self.files
            .get(file.0 as usize)
            .map(|f| f.path.clone())
            .unwrap_or_default()
    }

    /// The declared or added type of an attribute: (keyword, multi).
    fn attr_type(&self, owner: &Owner, object: &str, name: &str) -> Option<(&'static str, bool)> {
        let schema = &self.checked.bundle.schema;
        let obj: Option<&ObjectDef> = match owner {
            Owner::Connector(c) => schema.connectors.get(c).and_then(|c| c.objects.get(object)),
            Owner::Metaverse => schema.metaverse.get(object),
        };
        if let Some(a) = obj.and_then(|o| o.attr(name)) {
            return keyword(a.base).map(|k| (k, a.multi));
        }
        self.added
            .iter()
            .filter(|a| a.owner == *owner && a.object == object)
            .find_map(|a| a.attr.as_ref().filter(|x| x.name == name))
            .map(|a| (a.ty, a.multi))
    }

    fn has_object(&self, owner: &Owner, object: &str) -> bool {
        let schema = &self.checked.bundle.schema;
        let declared = match owner {
            Owner::Connector(c) => schema
                .connectors
                .get(c)
                .is_some_and(|c| c.objects.contains_key(object)),
            Owner::Metaverse => schema.metaverse.contains_key(object),
        };
        declared
            || self
                .added
                .iter()
                .any(|a| a.owner == *owner && a.object == object && a.attr.is_none())
    }

    fn has_attr(&self, owner: &Owner, object: &str, name: &str) -> bool {
        let schema = &self.checked.bundle.schema;
        let declared = match owner {
            Owner::Connector(c) => schema
                .connectors
                .get(c)
                .and_then(|c| c.objects.get(object))
                .is_some_and(|o| o.attrs.contains_key(name)),
            Owner::Metaverse => schema
                .metaverse
                .get(object)
                .is_some_and(|o| o.attrs.contains_key(name)),
        };
        declared
            || self.added.iter().any(|a| {
                a.owner == *owner
                    && a.object == object
                    && a.attr.as_ref().is_some_and(|x| x.name == name)
            })
    }

    /// The file that holds (or will hold) the declarations of `owner`'s `object`.
    fn file_of(&self, owner: &Owner, object: &str) -> Option<String> {
        let schema = &self.checked.bundle.schema;
        match owner {
            Owner::Connector(c) => {
                let c = schema.connectors.get(c)?;
                Some(self.path(c.objects.get(object).map_or(c.file, |o| o.file)))
            }
            Owner::Metaverse => match schema.metaverse.get(object) {
                Some(o) => Some(self.path(o.file)),
                None => self
                    .checked
                    .parsed
                    .iter()
                    .position(|p| {
                        p.file
                            .items
                            .iter()
                            .any(|i| matches!(i, ast::Item::Metaverse(_)))
                    })
                    .map(|i| self.files[i].path.clone()),
            },
        }
    }

    fn add(
        &mut self,
        owner: &Owner,
        object: &str,
        attr: Option<NewAttr>,
        anchor: Option<String>,
        why: String,
    ) {
        let Some(path) = self.file_of(owner, object) else {
            return;
        };
        self.added.push(Added {
            path,
            owner: owner.clone(),
            object: object.to_string(),
            attr,
            anchor,
            why,
        });
    }

    fn add_attr(
        &mut self,
        owner: &Owner,
        object: &str,
        name: &str,
        ty: (&'static str, bool),
        why: String,
    ) {
        let attr = NewAttr {
            name: name.to_string(),
            ty: ty.0,
            multi: ty.1,
        };
        self.add(owner, object, Some(attr), None, why);
    }

    fn collect(&mut self, rules: &[String]) {
        let checked = self.checked;
        let wanted: std::collections::BTreeSet<&str> = rules.iter().map(String::as_str).collect();
        let mut seen = std::collections::BTreeSet::new();
        for p in &checked.parsed {
            for item in &p.file.items {
                let ast::Item::Rule(r) = item else {
                    continue;
                };
                if !wanted.contains(r.name.value.as_str()) || !seen.insert(r.name.value.as_str()) {
                    continue;
                }
                if let Some(u) = uses(r) {
                    self.rule(&u);
                }
            }
        }
    }

    fn rule(&mut self, u: &Uses<'_>) {
        let checked: &'a Checked = self.checked;
        let schema = &checked.bundle.schema;
        let Some(conn) = schema.connectors.get(u.connector) else {
            return;
        };
        let data = schemas::for_kind(&conn.kind);
        let cs = Owner::Connector(conn.name.clone());
        let (cs_type, mv_type) = if u.inbound {
            (Some(u.source), u.target)
        } else {
            (u.target, Some(u.source))
        };
        // Object types.
        if let Some(t) = cs_type
            && !self.has_object(&cs, t)
            && let Some(class) = data.and_then(|d| d.class(t))
        {
            let anchor = conn
                .objects
                .values()
                .find_map(|o| {
                    let a = o.anchor.as_ref()?;
                    let def = o.attr(a)?;
                    Some((a.clone(), keyword(def.base)?, def.multi))
                })
                .or_else(|| match conn.kind.as_str() {
                    "ad" => Some(("objectGUID".into(), "binary", false)),
                    "entra" => Some(("cloudAnchor".into(), "string", false)),
                    _ => None,
                });
            if let Some((anchor, ty, multi)) = anchor {
                self.add(
                    &cs,
                    t,
                    None,
                    Some(anchor.clone()),
                    class.source.describe().into(),
                );
                self.add_attr(
                    &cs,
                    t,
                    &anchor,
                    (ty, multi),
                    "the connector's anchor".into(),
                );
            }
        }
        if let Some(t) = mv_type
            && !self.has_object(&Owner::Metaverse, t)
        {
            self.add(
                &Owner::Metaverse,
                t,
                None,
                None,
                format!("named by \"{}\"", u.name),
            );
        }
        let (Some(cs_type), Some(mv_type)) = (cs_type, mv_type) else {
            return;
        };
        let (cs_attrs, mv_attrs) = if u.inbound {
            (&u.reads, &u.writes)
        } else {
            (&u.writes, &u.reads)
        };
        // (connector attribute, metaverse attribute, how: a flow or a join) pairs.
        let pairs: Vec<(&str, &str, bool)> = u
            .pairs
            .iter()
            .map(|(s, t, flow)| {
                if u.inbound {
                    (s.as_str(), t.as_str(), *flow)
                } else {
                    (t.as_str(), s.as_str(), *flow)
                }
            })
            .collect();
        // How the rule relates the attribute being typed to its partner (`into_typed`: the
        // partner flows into it).
        let how = |flow: bool, into_typed: bool| match (flow, into_typed) {
            (false, _) => "joins it with",
            (true, true) => "flows into it",
            (true, false) => "flows it to",
        };
        let mv = Owner::Metaverse;
        if self.has_object(&cs, cs_type) {
            for name in cs_attrs {
                if self.has_attr(&cs, cs_type, name) {
                    continue;
                }
                if let Some(a) = data.and_then(|d: &DirectorySchema| d.attr(name)) {
                    let why = a.source.describe().to_string();
                    self.add_attr(&cs, cs_type, name, (a.ty.keyword(), a.multi), why);
                    continue;
                }
                let partner =
                    pairs
                        .iter()
                        .filter(|(c, _, _)| c == name)
                        .find_map(|(_, m, flow)| {
                            self.attr_type(&mv, mv_type, m).map(|t| (*m, *flow, t))
                        });
                if let Some((m, flow, t)) = partner {
                    let why = format!(
                        "like {mv_type}.{m}, which \"{}\" {}",
                        u.name,
                        how(flow, !u.inbound)
                    );
                    self.add_attr(&cs, cs_type, name, t, why);
                }
            }
        }
        if !self.has_object(&mv, mv_type) {
            return;
        }
        let flow_types: BTreeMap<&str, Ty> = checked
            .bundle
            .rules
            .iter()
            .find(|r| r.name == u.name)
            .map(|r| r.flows.iter().map(|f| (f.target.as_str(), f.ty)).collect())
            .unwrap_or_default();
        for name in mv_attrs {
            if self.has_attr(&mv, mv_type, name) {
                continue;
            }
            let partner = pairs
                .iter()
                .filter(|(_, m, _)| m == name)
                .find_map(|(c, _, flow)| self.attr_type(&cs, cs_type, c).map(|t| (*c, *flow, t)));
            if let Some((c, flow, t)) = partner {
                let why = format!(
                    "like {cs_type}.{c}, which \"{}\" {}",
                    u.name,
                    how(flow, u.inbound)
                );
                self.add_attr(&mv, mv_type, name, t, why);
                continue;
            }
            if u.inbound
                && u.flows.iter().any(|(t, _)| t == name)
                && let Some(ty) = flow_types.get(name.as_str())
                && let Some(k) = keyword(ty.base)
            {
                let why = format!("the type of its flow in \"{}\"", u.name);
                self.add_attr(&mv, mv_type, name, (k, ty.multi), why);
            }
        }
    }
}

/// The text of each file with the additions in it (formatted), or None when it has none.
fn apply(files: &[Existing], added: &[Added]) -> Result<Vec<Option<String>>, String> {
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let mine: Vec<&Added> = added.iter().filter(|a| a.path == f.path).collect();
        if mine.is_empty() {
            out.push(None);
            continue;
        }
        let (parsed, diags) = syntax::parse(FileId(0), &f.text);
        if !diags.is_empty() {
            return Err(format!(
                "{} does not parse; fix it before the import adds declarations to it",
                f.path
            ));
        }
        let mut edits: Vec<(usize, String)> = Vec::new();
        for item in &parsed.file.items {
            let (owner, objects, span): (Owner, Vec<&ast::ObjectType>, &std::ops::Range<usize>) =
                match item {
                    ast::Item::Connector(c) => (
                        Owner::Connector(c.name.value.clone()),
                        c.members
                            .iter()
                            .filter_map(|m| match m {
                                ast::ConnectorMember::Object(o) => Some(o),
                                _ => None,
                            })
                            .collect(),
                        &c.span,
                    ),
                    ast::Item::Metaverse(m) => {
                        (Owner::Metaverse, m.objects.iter().collect(), &m.span)
                    }
                    _ => continue,
                };
            // Attributes of declared object types, at their place in name order.
            for o in &objects {
                for a in mine
                    .iter()
                    .filter(|a| a.owner == owner && a.object == o.name.name)
                {
                    let Some(attr) = &a.attr else { continue };
                    let at = o
                        .attrs
                        .iter()
                        .find(|d| d.name.name.as_str() > attr.name.as_str())
                        .map_or_else(|| closing(&f.text, &o.span), |d| d.span.start);
                    edits.push((at, format!("{}\n", decl(attr))));
                }
            }
            // New object types, at the end of the block (only in the first block of the owner).
            let new: Vec<&&Added> = mine
                .iter()
                .filter(|a| a.owner == owner && a.attr.is_none())
                .filter(|a| !objects.iter().any(|o| o.name.name == a.object))
                .collect();
            for n in new {
                if edits
                    .iter()
                    .any(|(_, t)| t.starts_with(&format!("object {} ", n.object)))
                {
                    continue;
                }
                let mut text = format!("object {}", n.object);
                if let Some(anchor) = &n.anchor {
                    text.push_str(&format!(" anchor {anchor}"));
                }
                text.push_str(" {\n");
                let mut attrs: Vec<&NewAttr> = mine
                    .iter()
                    .filter(|a| a.owner == owner && a.object == n.object)
                    .filter_map(|a| a.attr.as_ref())
                    .collect();
                attrs.sort_by(|a, b| a.name.cmp(&b.name));
                for a in attrs {
                    text.push_str(&decl(a));
                    text.push('\n');
                }
                text.push_str("}\n");
                edits.push((closing(&f.text, span), text));
            }
        }
        edits.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        let mut text = f.text.clone();
        for (at, t) in edits {
            text.insert_str(at, &t);
        }
        match syntax::format(FileId(0), &text) {
            Ok(t) => out.push(Some(t)),
            Err(_) => {
                return Err(format!(
                    "{} does not format with the added declarations; nothing written",
                    f.path
                ));
            }
        }
    }
    Ok(out)
}

fn decl(a: &NewAttr) -> String {
    if a.multi {
        format!("{} {} multi", a.name, a.ty)
    } else {
        format!("{} {}", a.name, a.ty)
    }
}

/// Where to insert before the closing brace of a block spanning `span`: the start of the
/// brace's line when only blanks precede it there, else the brace itself (after a newline).
fn closing(text: &str, span: &std::ops::Range<usize>) -> usize {
    let brace = text[..span.end].rfind('}').unwrap_or(span.end);
    let line = text[..brace].rfind('\n').map_or(0, |i| i + 1);
    if text[line..brace].trim().is_empty() {
        line
    } else {
        brace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> Existing {
        Existing {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn declarations_go_into_their_blocks_in_name_order_and_comments_stay() {
        let schema = "# The directory.\nconnector \"dir\" ldap {\n  object person anchor entryUUID {\n    entryUUID string\n    sn string # kept\n  }\n}\n\nmetaverse {\n  object person {}\n}\n";
        let rules = "inbound rule \"In\" {\n  connector \"dir\"\n  source person\n  target person\n  link join\n  precedence 1\n  flow surname <- [sn]\n  flow label <- Left([sn], 1)\n  flow title <- [title]\n}\n\noutbound rule \"Out\" {\n  connector \"dir\"\n  source person\n  target person\n  link join\n  precedence 2\n  flow cn <- [surname]\n  flow ou <- [unit]\n}\n";
        let files = [file("schema.idf", schema), file("rules.idf", rules)];
        let x = extend(&files, &["In".into(), "Out".into()]);
        assert!(x.errors.is_empty(), "{:?}", x.errors);
        let listed: Vec<String> = x.added.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            listed,
            [
                "person.cn string (like person.surname, which \"Out\" flows into it)",
                "person.label string (the type of its flow in \"In\")",
                "person.surname string (like person.sn, which \"In\" flows into it)",
            ]
        );
        // `title` (an ldap connector has no shipped schema, and nothing types it) and `unit`
        // (read by an outbound rule, flowing to an attribute nothing types) stay unknown.
        assert_eq!(x.files.len(), 1);
        assert_eq!(
            x.files[0].text,
            "# The directory.\nconnector \"dir\" ldap {\n  object person anchor entryUUID {\n    cn        string\n    entryUUID string\n    sn        string # kept\n  }\n}\n\nmetaverse {\n  object person {\n    label   string\n    surname string\n  }\n}\n"
        );
    }
}
