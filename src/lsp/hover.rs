//! Hover: what the name under the cursor is.
//!
//! Consumes: an [`Analysis`] (its symbol index and schema) and the `stdlib/` declarations.
//! Produces: Markdown for a function (signatures, documentation, examples), an attribute (type,
//! multiplicity, declaring object type and schema file, the rules that write it by precedence),
//! an object type, a connector, a parameter (its declaration and where its value comes from),
//! a constant, and a rule (direction, connector, object types, link type, precedence).

use super::index::{Role, RuleInfo, Space, Symbol, attr_def};
use super::workspace::Analysis;
use crate::sema::schema::AttrDef;
use crate::source::FileId;
use crate::stdlib::Stdlib;
use crate::syntax::ast::Direction;
use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind};
use std::fmt::Write;

pub fn hover(a: &Analysis, file: FileId, offset: usize) -> Option<Hover> {
    let occ = a.index().at(file, offset)?;
    let text = match &occ.symbol {
        Symbol::Function(name) => function(name)?,
        Symbol::Attr {
            space,
            object,
            name,
        } => attribute(a, space, object, name),
        Symbol::Object { space, name } => object_type(a, space, name),
        Symbol::Connector(name) => connector(a, name),
        Symbol::Param { connector, name } => parameter(a, connector.as_deref(), name),
        Symbol::Constant(name) => constant(name),
        Symbol::Rule(_) => rule(a, occ.rule?),
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: text,
        }),
        range: Some(a.range(file, &occ.span)),
    })
}

/// A location as `file:line` relative to nothing (the file name as loaded).
fn place(a: &Analysis, file: FileId, offset: usize) -> String {
    let f = a.map.get(file);
    let name = std::path::Path::new(&f.name)
        .file_name()
        .map_or(f.name.clone(), |n| n.to_string_lossy().into_owned());
    format!("{name}:{}", f.line_of(offset))
}

pub fn function(name: &str) -> Option<String> {
    let f = Stdlib::get().function(name)?;
    let mut s = String::from("```idf\n");
    for sig in &f.signatures {
        let _ = writeln!(s, "{}", sig.text);
    }
    s.push_str("```\n\n");
    s.push_str(&f.doc);
    s.push('\n');
    if !f.examples.is_empty() {
        s.push_str("\nExamples:\n\n```idf\n");
        for ex in &f.examples {
            let outcome = ex.outcome();
            let input = ex
                .input
                .as_ref()
                .filter(|t| !t.is_empty())
                .map(|t| {
                    let parts: Vec<String> =
                        t.iter().map(|(k, v)| format!("[{k}] = {v}")).collect();
                    format!("    # with {}", parts.join(", "))
                })
                .unwrap_or_default();
            let _ = writeln!(s, "{}{input}\n  --> {outcome}", ex.expr);
        }
        s.push_str("```\n");
    }
    Some(s)
}

pub fn attr_type(d: &AttrDef) -> String {
    let mut t = d.base.schema_name().to_string();
    if let Some(r) = &d.ref_target {
        let _ = write!(t, "({r})");
    }
    if d.multi {
        t.push_str(" multi");
    }
    if d.unique {
        t.push_str(" unique");
    }
    t
}

fn attribute(a: &Analysis, space: &Space, object: &str, name: &str) -> String {
    let schema = &a.checked.bundle.schema;
    let mut s = String::new();
    match attr_def(schema, space, object, name) {
        Some(d) => {
            let _ = writeln!(s, "```idf\n{name} {}\n```\n", attr_type(d));
            let many = if d.multi {
                "multi-valued"
            } else {
                "single-valued"
            };
            let _ = writeln!(
                s,
                "Attribute of object type `{object}` in {}: {} {many}{}. Declared at {}.",
                space.describe(),
                d.base.schema_name(),
                if d.unique { ", unique" } else { "" },
                place(a, d.file, d.span.start)
            );
            let implicit = match space {
                Space::Connector(c) => schema
                    .connectors
                    .get(c)
                    .and_then(|c| c.objects.get(object))
                    .is_some_and(|o| o.span == d.span && o.file == d.file),
                Space::Metaverse => false,
            };
            if implicit {
                s.push_str("\n`dn` is implicit on every connector object type.\n");
            }
        }
        None => {
            let _ = writeln!(
                s,
                "`{name}`: not an attribute of object type `{object}` in {}.",
                space.describe()
            );
        }
    }
    let symbol = Symbol::Attr {
        space: space.clone(),
        object: object.to_string(),
        name: name.to_string(),
    };
    let index = a.index();
    let mut writers: Vec<&RuleInfo> = index
        .find(&symbol)
        .filter(|o| o.role == Role::Write)
        .filter_map(|o| index.rules.get(o.rule?))
        .collect();
    writers.sort_by_key(|r| (r.precedence.unwrap_or(i64::MAX), r.name.clone()));
    let mut readers: Vec<usize> = index
        .find(&symbol)
        .filter(|o| o.role == Role::Read)
        .filter_map(|o| o.rule)
        .collect();
    readers.sort_unstable();
    readers.dedup();
    if !writers.is_empty() {
        s.push_str("\nWritten by (the lowest precedence wins):\n");
        const SHOWN: usize = 12;
        for r in writers.iter().take(SHOWN) {
            let _ = writeln!(
                s,
                "- precedence {}: \"{}\"{}",
                r.precedence
                    .map_or_else(|| "?".to_string(), |p| p.to_string()),
                r.name,
                if r.disabled { " (disabled)" } else { "" }
            );
        }
        if writers.len() > SHOWN {
            let _ = writeln!(s, "- and {} more", writers.len() - SHOWN);
        }
    }
    if !readers.is_empty() {
        let _ = writeln!(
            s,
            "\nRead by {} rule{}.",
            readers.len(),
            if readers.len() == 1 { "" } else { "s" }
        );
    }
    s
}

fn object_type(a: &Analysis, space: &Space, name: &str) -> String {
    let schema = &a.checked.bundle.schema;
    let objects = match space {
        Space::Metaverse => Some(&schema.metaverse),
        Space::Connector(c) => schema.connectors.get(c).map(|c| &c.objects),
    };
    match objects.and_then(|o| o.get(name)) {
        Some(o) => {
            let anchor = o
                .anchor
                .as_ref()
                .map(|x| format!(" anchor {x}"))
                .unwrap_or_default();
            format!(
                "```idf\nobject {name}{anchor}\n```\n\nObject type of {} with {} attribute{}. Declared at {}.\n",
                space.describe(),
                o.attrs.len(),
                if o.attrs.len() == 1 { "" } else { "s" },
                place(a, o.file, o.span.start)
            )
        }
        None => format!("`{name}`: not an object type of {}.\n", space.describe()),
    }
}

fn connector(a: &Analysis, name: &str) -> String {
    match a.checked.bundle.schema.connectors.get(name) {
        Some(c) => {
            let mut s = format!(
                "```idf\nconnector \"{name}\" {}\n```\n\nDeclared at {}.\n",
                c.kind,
                place(a, c.file, c.span.start)
            );
            let types: Vec<&str> = c.objects.keys().map(String::as_str).collect();
            if !types.is_empty() {
                let _ = writeln!(s, "\nObject types: {}.", types.join(", "));
            }
            let params: Vec<String> = c.params.keys().map(|p| format!("%{p}%")).collect();
            if !params.is_empty() {
                let _ = writeln!(s, "\nParameters: {}.", params.join(", "));
            }
            s
        }
        None => format!("`\"{name}\"`: no connector of that name is declared.\n"),
    }
}

fn parameter(a: &Analysis, connector: Option<&str>, name: &str) -> String {
    let schema = &a.checked.bundle.schema;
    let def = match connector {
        Some(c) => schema.connectors.get(c).and_then(|c| c.params.get(name)),
        None => schema.params.get(name),
    };
    let ty = def.map_or("string", |d| d.base.schema_name());
    let mut s = format!("```idf\n%{name}%: {ty}\n```\n\n");
    if crate::sema::typeck::INTRINSIC_PARAMS.contains(&name) && def.is_none() {
        s.push_str(
            "Intrinsic: the identifier of the connector whose rule runs; always available.\n",
        );
        return s;
    }
    match (connector, def) {
        (Some(c), Some(_)) => {
            let _ = writeln!(
                s,
                "Declared by connector \"{c}\". Its value comes from the deployment: \
                 `[connectors.\"{c}\".parameters]` in idflow.toml, or the `parameters` of one \
                 of the connector's partitions."
            );
        }
        (None, Some(_)) => {
            s.push_str(
                "Declared by the bundle. Its value comes from the deployment: the `parameters` \
                 of the connector whose rule runs (`[connectors.\"NAME\".parameters]` in \
                 idflow.toml, or a partition's `parameters`).\n",
            );
        }
        _ => s.push_str("Not declared by the connector or the bundle.\n"),
    }
    s
}

fn constant(name: &str) -> String {
    let what = match name {
        "True" | "False" => "A boolean constant.".to_string(),
        "NULL" => "No value: the flow contributes nothing for this object.".to_string(),
        "AuthoritativeNull" => "Removes the value, even where a rule of lower precedence \
                                contributes one."
            .to_string(),
        "IgnoreThisFlow" => "The flow contributes nothing; other rules decide the value.".into(),
        "CRLF" => "A carriage return and line feed (`\\r\\n`).".into(),
        _ => {
            let lib = Stdlib::get();
            match lib.constant(name).and_then(|i| lib.enums.get(i as usize)) {
                Some(e) => format!(
                    "A constant of the enumeration `{}`: {}.",
                    e.name,
                    e.values.join(", ")
                ),
                None => "Not a constant of the expression language.".into(),
            }
        }
    };
    format!("```idf\n{name}\n```\n\n{what}\n")
}

/// What a link type does.
pub fn link_doc(link: &str, direction: Direction) -> &'static str {
    match (link, direction) {
        ("join", _) => {
            "joins by the rule's join conditions (or links through another rule's join) and \
             flows"
        }
        ("provision", Direction::Inbound) => {
            "joins, or projects a new metaverse object when nothing joins; keeps the metaverse \
             object alive"
        }
        ("provision", Direction::Outbound) => {
            "joins, or creates the object in the connected directory when nothing joins"
        }
        ("stickyjoin", _) => {
            "joins and keeps the metaverse object alive like `provision`, without projecting"
        }
        ("joinnoflow", _) => "joins like `join` and flows nothing (Entra's JoinNoFlow)",
        _ => "not a link type (join, stickyjoin, joinnoflow, provision)",
    }
}

fn rule(a: &Analysis, rule: usize) -> String {
    let index = a.index();
    let Some(r) = index.rules.get(rule) else {
        return String::new();
    };
    let dir = r.direction.as_str();
    let mut s = format!("```idf\n{dir} rule \"{}\"\n```\n\n", r.name);
    if r.disabled {
        s.push_str("**Disabled.**\n\n");
    }
    let q = |o: &Option<String>| o.clone().unwrap_or_else(|| "?".into());
    let _ = writeln!(
        s,
        "Connector \"{}\": `{}` → `{}`.\n",
        q(&r.connector),
        q(&r.source),
        q(&r.target)
    );
    if let Some(l) = &r.link {
        let _ = writeln!(s, "Link `{l}`: {}.\n", link_doc(l, r.direction));
    }
    if let Some(p) = r.precedence {
        // Where the rule stands among the rules of its connector and direction.
        let mut peers: Vec<i64> = index
            .rules
            .iter()
            .filter(|o| o.direction == r.direction && o.connector == r.connector)
            .filter_map(|o| o.precedence)
            .collect();
        peers.sort_unstable();
        let rank = peers.iter().filter(|&&x| x < p).count() + 1;
        let _ = writeln!(
            s,
            "Precedence {p}: where rules flow into the same attribute, the lowest precedence \
             wins. Number {rank} of {} {dir} rules of this connector.",
            peers.len()
        );
    }
    s
}
