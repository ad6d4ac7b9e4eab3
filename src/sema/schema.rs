//! Schema resolution: the metaverse, connectors, their object types and attributes.
//!
//! Consumes: the declaration items of all files of a bundle. Produces: [`Schema`] (name-indexed
//! object types with typed attributes, connector parameters) and E01xx diagnostics for
//! duplicates, unknown types and kinds, and missing anchors.

use super::types::{Base, Ty};
use crate::diag::{Diagnostic, suggest};
use crate::source::{FileId, Span};
use crate::syntax::ast;
use std::collections::BTreeMap;

/// Connector kinds idflow knows.
pub const CONNECTOR_KINDS: &[&str] = &[
    "ad", "ldap", "entra", "graph", "scim", "ldif", "csv", "jsonl",
];

/// One attribute of an object type.
#[derive(Debug, Clone)]
pub struct AttrDef {
    pub name: String,
    /// Position of the attribute in its object type (name order): the index of its value in
    /// an object's attribute vector.
    pub slot: u32,
    pub base: Base,
    pub multi: bool,
    /// Values must be unique among the connector's objects.
    pub unique: bool,
    /// For references: the object type referenced, when declared.
    pub ref_target: Option<String>,
    pub file: FileId,
    pub span: Span,
}

impl AttrDef {
    pub fn ty(&self) -> Ty {
        Ty {
            base: self.base,
            multi: self.multi,
        }
    }
}

/// An object type of the metaverse or of a connector.
#[derive(Debug, Clone)]
pub struct ObjectDef {
    pub name: String,
    pub anchor: Option<String>,
    pub attrs: BTreeMap<String, AttrDef>,
    pub file: FileId,
    pub span: Span,
}

impl ObjectDef {
    pub fn attr(&self, name: &str) -> Option<&AttrDef> {
        self.attrs.get(name)
    }
}

/// A declared parameter (`%Domain.FQDN%`).
#[derive(Debug, Clone)]
pub struct ParamDef {
    pub name: String,
    pub base: Base,
}

#[derive(Debug, Clone)]
pub struct ConnectorDef {
    pub name: String,
    pub kind: String,
    pub params: BTreeMap<String, ParamDef>,
    pub objects: BTreeMap<String, ObjectDef>,
    pub file: FileId,
    pub span: Span,
}

/// All declarations of a bundle.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub bundle_name: Option<String>,
    pub params: BTreeMap<String, ParamDef>,
    pub metaverse: BTreeMap<String, ObjectDef>,
    pub has_metaverse: bool,
    pub connectors: BTreeMap<String, ConnectorDef>,
    /// Connector names in declaration order (files in path order): the engine's processing
    /// order.
    pub connector_order: Vec<String>,
}

impl Schema {
    /// The metaverse attribute `name` in any object type (for `target *`).
    pub fn any_metaverse_attr(&self, name: &str) -> Option<&AttrDef> {
        self.metaverse.values().find_map(|o| o.attr(name))
    }
}

fn param_def(p: &ast::ParamDecl, file: FileId, diags: &mut Vec<Diagnostic>) -> ParamDef {
    let base = match &p.ty {
        None => Base::Str,
        Some(t) => Base::from_schema(&t.name).unwrap_or_else(|| {
            diags.push(unknown_type(file, t));
            Base::Any
        }),
    };
    ParamDef {
        name: p.name.name.clone(),
        base,
    }
}

fn unknown_type(file: FileId, t: &ast::Ident) -> Diagnostic {
    let mut d = Diagnostic::new(
        "E0109",
        file,
        t.span.clone(),
        format!("unknown attribute type `{}`", t.name),
    )
    .with_label("not a type");
    let names = [
        "string",
        "integer",
        "boolean",
        "binary",
        "reference",
        "datetime",
    ];
    d = d.with_help(
        suggest(&t.name, names).unwrap_or_else(|| format!("types are {}", names.join(", "))),
    );
    d
}

fn object_def(
    o: &ast::ObjectType,
    file: FileId,
    connector: bool,
    diags: &mut Vec<Diagnostic>,
) -> ObjectDef {
    let mut attrs: BTreeMap<String, AttrDef> = BTreeMap::new();
    for a in &o.attrs {
        let base = Base::from_schema(&a.ty.name).unwrap_or_else(|| {
            diags.push(unknown_type(file, &a.ty));
            Base::Any
        });
        if let Some(prev) = attrs.get(&a.name.name) {
            diags.push(
                Diagnostic::new(
                    "E0101",
                    file,
                    a.name.span.clone(),
                    format!(
                        "attribute `{}` is declared twice in object type `{}`",
                        a.name.name, o.name.name
                    ),
                )
                .with_related(prev.file, prev.span.clone(), "first declared here"),
            );
            continue;
        }
        attrs.insert(
            a.name.name.clone(),
            AttrDef {
                name: a.name.name.clone(),
                slot: 0,
                base,
                multi: a.multi,
                unique: a.unique,
                ref_target: a.ref_target.as_ref().map(|t| t.name.clone()),
                file,
                span: a.name.span.clone(),
            },
        );
    }
    if connector {
        // `dn` is implicit on connector object types.
        attrs.entry("dn".to_string()).or_insert(AttrDef {
            name: "dn".into(),
            slot: 0,
            base: Base::Str,
            multi: false,
            unique: false,
            ref_target: None,
            file,
            span: o.name.span.clone(),
        });
        match &o.anchor {
            Some(anchor) if !attrs.contains_key(&anchor.name) => diags.push(
                Diagnostic::new(
                    "E0107",
                    file,
                    anchor.span.clone(),
                    format!(
                        "anchor `{}` is not an attribute of `{}`",
                        anchor.name, o.name.name
                    ),
                )
                .with_label("not declared in this object type"),
            ),
            Some(_) => {}
            None => diags.push(
                Diagnostic::new(
                    "E0107",
                    file,
                    o.name.span.clone(),
                    format!("connector object type `{}` has no anchor", o.name.name),
                )
                .with_help("write `object NAME anchor ATTRIBUTE { ... }`"),
            ),
        }
    }
    assign_slots(&mut attrs);
    ObjectDef {
        name: o.name.name.clone(),
        anchor: o.anchor.as_ref().map(|a| a.name.clone()),
        attrs,
        file,
        span: o.name.span.clone(),
    }
}

/// Numbers the attributes of an object type in name order.
pub fn assign_slots(attrs: &mut BTreeMap<String, AttrDef>) {
    for (i, a) in attrs.values_mut().enumerate() {
        a.slot = i as u32;
    }
}

fn insert_object(
    map: &mut BTreeMap<String, ObjectDef>,
    def: ObjectDef,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) {
    if let Some(prev) = map.get(&def.name) {
        diags.push(
            Diagnostic::new(
                "E0101",
                def.file,
                def.span.clone(),
                format!("object type `{}` is declared twice in {what}", def.name),
            )
            .with_related(prev.file, prev.span.clone(), "first declared here"),
        );
        return;
    }
    map.insert(def.name.clone(), def);
}

/// Builds the schema from every file's declarations.
pub fn resolve(files: &[(FileId, &ast::File)], diags: &mut Vec<Diagnostic>) -> Schema {
    let mut schema = Schema::default();
    let mut bundle_seen: Option<(FileId, Span)> = None;
    for (file, ast) in files {
        let file = *file;
        for item in &ast.items {
            match item {
                ast::Item::Bundle(name, span) => {
                    if let Some((f, s)) = &bundle_seen {
                        diags.push(
                            Diagnostic::new(
                                "E0101",
                                file,
                                span.clone(),
                                "the bundle is named twice",
                            )
                            .with_related(
                                *f,
                                s.clone(),
                                "first named here",
                            ),
                        );
                    } else {
                        bundle_seen = Some((file, span.clone()));
                        schema.bundle_name = Some(name.value.clone());
                    }
                }
                ast::Item::Param(p) => {
                    let def = param_def(p, file, diags);
                    if schema.params.insert(def.name.clone(), def).is_some() {
                        diags.push(Diagnostic::new(
                            "E0101",
                            file,
                            p.name.span.clone(),
                            format!("parameter `{}` is declared twice", p.name.name),
                        ));
                    }
                }
                ast::Item::Metaverse(m) => {
                    schema.has_metaverse = true;
                    for o in &m.objects {
                        let def = object_def(o, file, false, diags);
                        insert_object(&mut schema.metaverse, def, "the metaverse", diags);
                    }
                }
                ast::Item::Connector(c) => {
                    if !CONNECTOR_KINDS.contains(&c.kind.name.as_str()) {
                        let help = suggest(&c.kind.name, CONNECTOR_KINDS.iter().copied())
                            .unwrap_or_else(|| format!("kinds are {}", CONNECTOR_KINDS.join(", ")));
                        diags.push(
                            Diagnostic::new(
                                "E0108",
                                file,
                                c.kind.span.clone(),
                                format!("unknown connector kind `{}`", c.kind.name),
                            )
                            .with_help(help),
                        );
                    }
                    if let Some(prev) = schema.connectors.get(&c.name.value) {
                        diags.push(
                            Diagnostic::new(
                                "E0101",
                                file,
                                c.name.span.clone(),
                                format!("connector \"{}\" is declared twice", c.name.value),
                            )
                            .with_related(
                                prev.file,
                                prev.span.clone(),
                                "first declared here",
                            ),
                        );
                        continue;
                    }
                    let mut def = ConnectorDef {
                        name: c.name.value.clone(),
                        kind: c.kind.name.clone(),
                        params: BTreeMap::new(),
                        objects: BTreeMap::new(),
                        file,
                        span: c.name.span.clone(),
                    };
                    for m in &c.members {
                        match m {
                            ast::ConnectorMember::Param(p) => {
                                let pd = param_def(p, file, diags);
                                if def.params.insert(pd.name.clone(), pd).is_some() {
                                    diags.push(Diagnostic::new(
                                        "E0101",
                                        file,
                                        p.name.span.clone(),
                                        format!("parameter `{}` is declared twice", p.name.name),
                                    ));
                                }
                            }
                            ast::ConnectorMember::Object(o) => {
                                let od = object_def(o, file, true, diags);
                                let what = format!("connector \"{}\"", c.name.value);
                                insert_object(&mut def.objects, od, &what, diags);
                            }
                        }
                    }
                    schema.connector_order.push(def.name.clone());
                    schema.connectors.insert(def.name.clone(), def);
                }
                ast::Item::Rule(_) | ast::Item::Test(_) => {}
            }
        }
    }
    // Reference targets must name declared object types of the same space.
    for o in schema.metaverse.values() {
        for a in o.attrs.values() {
            if let Some(t) = &a.ref_target
                && !schema.metaverse.contains_key(t)
            {
                diags.push(
                    Diagnostic::new(
                        "E0103",
                        a.file,
                        a.span.clone(),
                        format!("unknown object type `{t}`"),
                    )
                    .with_help(
                        suggest(t, schema.metaverse.keys().map(String::as_str))
                            .unwrap_or_else(|| "declare it in the metaverse".into()),
                    ),
                );
            }
        }
    }
    schema
}
