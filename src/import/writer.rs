//! Writes a [`Config`] as an idflow bundle.
//!
//! Consumes: a [`Config`] read by `import::xml` or `import::powershell`. Produces: the bundle's
//! files as `(relative path, text)` pairs — `bundle.idf` (name and metaverse schema),
//! `schema/<connector>.idf` (one per connector, limited to the attribute inclusion list plus
//! every attribute a rule references), `inbound/<connector>-<type>.idf` and
//! `outbound/<connector>-<type>.idf` (rules grouped by direction, connector and object type, in
//! precedence order), and `idflow.toml` (a deployment template with the connectors, their
//! parameters and container filters). Every `.idf` text is formatted by `syntax::format`, so it
//! is canonical and proven to parse. What cannot be expressed is added to `Config::unmapped`.

use super::model::{
    AttrType, Attribute, Config, Connector, Direction, FlowKind, ObjectType, Rule, Unmapped,
};
use crate::source::FileId;
use crate::syntax::{self, token::escape};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    /// Path relative to the bundle directory, with `/` separators.
    pub path: String,
    pub text: String,
}

/// Options of the writer.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The bundle name (`bundle "..."`).
    pub bundle_name: String,
    /// Connector names for connector ids that the configuration does not define (a
    /// PowerShell export names connectors by id only).
    pub connector_names: BTreeMap<String, String>,
}

/// Builds the bundle's files. Unmappable constructs are appended to `config.unmapped`.
pub fn write(config: &mut Config, options: &Options) -> Vec<OutFile> {
    let mut unmapped = Vec::new();
    let names = connector_names(config, options);
    let refs = references(config, &mut unmapped);
    let mut files = Vec::new();

    // A script holds rules only: they are written to add to an existing bundle.
    let rules_only = config.metaverse.is_empty() && config.connectors.is_empty();

    // bundle.idf: name and metaverse.
    if !rules_only {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "# Imported from an Entra Connect configuration by `idflow import entra`."
        );
        let _ = writeln!(text, "bundle {}", quote(&options.bundle_name));
        text.push_str("\nmetaverse {\n");
        for o in &config.metaverse {
            for a in o.attributes.iter().filter(|a| !valid_name(&a.name)) {
                unmapped.push(Unmapped {
                    source: "GlobalSettings/MV.xml".into(),
                    context: format!("metaverse object type {}", o.name),
                    what: format!("attribute name `{}` is not a valid idflow name", a.name),
                });
            }
            object_text(&mut text, o, None, |a| valid_name(&a.name));
        }
        text.push_str("}\n");
        report_missing_mv(config, &refs, &mut unmapped);
        files.push(formatted("bundle.idf", text, &mut unmapped));
    }

    // One schema file per connector.
    for c in &config.connectors {
        let name = names.get(&c.id).cloned().unwrap_or_else(|| c.name.clone());
        let mut text = String::new();
        let _ = writeln!(
            text,
            "# Connector {} ({}), Entra category {}.",
            c.id, c.name, c.category
        );
        let _ = writeln!(text, "connector {} {} {{", quote(&name), c.kind);
        // The parameters rules can use: Entra's intrinsic Forest.*/Domain.* ones and every
        // parameter a rule of this connector reads (connection settings stay in idflow.toml).
        let used_params = refs.params.get(&c.id);
        let mut params: BTreeSet<&str> = c.parameters.iter().map(|p| p.name.as_str()).collect();
        for p in &c.partitions {
            params.extend(p.parameters.iter().map(|p| p.name.as_str()));
        }
        params.retain(|p| {
            p.starts_with("Forest.")
                || p.starts_with("Domain.")
                || used_params.is_some_and(|u| u.contains(*p))
        });
        for p in used_params.into_iter().flatten() {
            if !params.contains(p.as_str()) && p != "Connector.ID" {
                unmapped.push(Unmapped {
                    source: c.source.clone(),
                    context: c.name.clone(),
                    what: format!(
                        "rules use parameter `%{p}%`, which the connector does not define; declared"
                    ),
                });
            }
        }
        let extra: Vec<&String> = used_params
            .into_iter()
            .flatten()
            .filter(|p| !params.contains(p.as_str()) && *p != "Connector.ID")
            .collect();
        params.extend(extra.into_iter().map(String::as_str));
        for p in params {
            if valid_param(p) {
                let _ = writeln!(text, "  param {p}");
            } else {
                unmapped.push(Unmapped {
                    source: c.source.clone(),
                    context: c.name.clone(),
                    what: format!("parameter name `{p}` is not a valid idflow name"),
                });
            }
        }
        let used = refs.connectors.get(&c.id);
        let included: BTreeSet<&str> = c.included_attributes.iter().map(String::as_str).collect();
        for o in &c.object_types {
            let referenced = used.and_then(|u| u.get(&o.name));
            // Only object types that rules use, or that carry included attributes.
            let mut attrs: Vec<Attribute> = o
                .attributes
                .iter()
                .filter(|a| {
                    included.contains(a.name.as_str())
                        || referenced.is_some_and(|r| r.contains(&a.name))
                })
                .filter(|a| valid_name(&a.name) && a.name != "dn")
                .cloned()
                .collect();
            if referenced.is_none() {
                continue;
            }
            // Referenced attributes the class does not list: take the type from another class.
            for r in referenced.into_iter().flatten() {
                if r == "dn" || attrs.iter().any(|a| &a.name == r) {
                    continue;
                }
                match c
                    .object_types
                    .iter()
                    .flat_map(|x| &x.attributes)
                    .find(|a| &a.name == r)
                {
                    Some(a) => attrs.push(a.clone()),
                    None => {
                        unmapped.push(Unmapped {
                            source: c.source.clone(),
                            context: format!("{} object type {}", c.name, o.name),
                            what: format!("attribute `{r}` is used by rules but not in the connector schema; declared as string"),
                        });
                        attrs.push(Attribute {
                            name: r.clone(),
                            ty: AttrType::String,
                            multi: false,
                        });
                    }
                }
            }
            if let Some(anchor) = &o.anchor
                && !attrs.iter().any(|a| &a.name == anchor)
                && let Some(a) = o.attributes.iter().find(|a| &a.name == anchor)
            {
                attrs.push(a.clone());
            }
            attrs.sort_by(|a, b| a.name.cmp(&b.name));
            attrs.dedup_by(|a, b| a.name == b.name);
            let obj = ObjectType {
                name: o.name.clone(),
                anchor: o.anchor.clone(),
                attributes: attrs,
            };
            object_text(&mut text, &obj, Some(1), |_| true);
        }
        text.push_str("}\n");
        files.push(formatted(
            &format!("schema/{}.idf", slug(&name)),
            text,
            &mut unmapped,
        ));
    }

    // Rules, grouped by direction, connector and object type.
    let mut groups: BTreeMap<String, Vec<&Rule>> = BTreeMap::new();
    for r in &config.rules {
        let cname = names
            .get(&r.connector)
            .cloned()
            .unwrap_or_else(|| r.connector.clone());
        let (dir, ty) = match r.direction {
            Direction::Inbound => ("inbound", &r.source_type),
            Direction::Outbound => ("outbound", &r.target_type),
        };
        let path = format!("{dir}/{}-{}.idf", slug(&cname), slug(ty));
        groups.entry(path).or_default().push(r);
    }
    let types = AttrTypes::new(config);
    for (path, mut rules) in groups {
        rules.sort_by_key(|r| r.precedence);
        let mut text = String::new();
        for (i, r) in rules.iter().enumerate() {
            if i > 0 {
                text.push('\n');
            }
            rule_text(&mut text, r, &names, &types, &mut unmapped);
        }
        files.push(formatted(&path, text, &mut unmapped));
    }

    if !rules_only {
        files.push(OutFile {
            path: "idflow.toml".into(),
            text: deployment(config, &names, options),
        });
    }
    config.unmapped.extend(unmapped);
    files
}

/// Connector names by Entra id: the configuration's names, overridden by the options.
fn connector_names(config: &Config, options: &Options) -> BTreeMap<String, String> {
    let mut names: BTreeMap<String, String> = config
        .connectors
        .iter()
        .map(|c| (c.id.clone(), display_name(c)))
        .collect();
    for (id, name) in &options.connector_names {
        names.insert(normalize_id(id), name.clone());
    }
    names
}

/// Entra names its cloud connector "tenant - AAD"; the idflow name drops the suffix.
fn display_name(c: &Connector) -> String {
    c.name.strip_suffix(" - AAD").unwrap_or(&c.name).to_string()
}

/// `{guid}` in lower case, the form rules use.
pub fn normalize_id(id: &str) -> String {
    format!(
        "{{{}}}",
        id.trim_matches(|c| c == '{' || c == '}')
            .to_ascii_lowercase()
    )
}

/// Attributes referenced by rules: per connector id and object type, and per metaverse type.
#[derive(Default)]
struct References {
    connectors: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    metaverse: BTreeMap<String, BTreeSet<String>>,
    /// Parameters (`%Name%`) used by the rules of each connector.
    params: BTreeMap<String, BTreeSet<String>>,
}

/// The `%Name%` parameters an expression uses.
fn param_names(e: &crate::syntax::ast::Expr, out: &mut BTreeSet<String>) {
    use crate::syntax::ast::ExprKind;
    match &e.kind {
        ExprKind::Param(p) => {
            out.insert(p.clone());
        }
        ExprKind::Call { args, .. } => args.iter().for_each(|a| param_names(a, out)),
        ExprKind::Binary { lhs, rhs, .. } => {
            param_names(lhs, out);
            param_names(rhs, out);
        }
        ExprKind::Neg(x) | ExprKind::Paren(x) => param_names(x, out),
        _ => {}
    }
}

fn references(config: &Config, unmapped: &mut Vec<Unmapped>) -> References {
    let mut refs = References::default();
    for r in &config.rules {
        let (cs_type, mv_type) = match r.direction {
            Direction::Inbound => (&r.source_type, &r.target_type),
            Direction::Outbound => (&r.target_type, &r.source_type),
        };
        let mut cs: BTreeSet<String> = BTreeSet::new();
        let mut mv: BTreeSet<String> = BTreeSet::new();
        for j in r.joins.iter().flatten() {
            cs.insert(j.cs_attribute.clone());
            mv.insert(j.mv_attribute.clone());
        }
        let (source, target) = match r.direction {
            Direction::Inbound => (&mut cs, &mut mv),
            Direction::Outbound => (&mut mv, &mut cs),
        };
        for c in r.scope.iter().flatten() {
            source.insert(c.attribute.clone());
        }
        for f in &r.flows {
            if f.target != "dn" {
                target.insert(f.target.clone());
            }
            match f.kind {
                FlowKind::Direct => {
                    source.insert(f.source.clone());
                }
                FlowKind::Constant => {}
                FlowKind::Expression => match syntax::parse_expr(FileId(0), &f.source) {
                    (Some(e), d) if d.is_empty() => {
                        source.extend(e.attribute_names().into_iter().map(str::to_string));
                        param_names(&e, refs.params.entry(r.connector.clone()).or_default());
                    }
                    _ => unmapped.push(Unmapped {
                        source: r.source.clone(),
                        context: r.name.clone(),
                        what: format!(
                            "the expression of the flow to `{}` does not parse: {}",
                            f.target, f.source
                        ),
                    }),
                },
            }
        }
        refs.connectors
            .entry(r.connector.clone())
            .or_default()
            .entry(cs_type.clone())
            .or_default()
            .extend(cs);
        if mv_type != "*" && !mv_type.is_empty() {
            refs.metaverse
                .entry(mv_type.clone())
                .or_default()
                .extend(mv);
        }
    }
    refs
}

fn report_missing_mv(config: &Config, refs: &References, unmapped: &mut Vec<Unmapped>) {
    for (ty, attrs) in &refs.metaverse {
        let Some(o) = config.metaverse.iter().find(|o| &o.name == ty) else {
            unmapped.push(Unmapped {
                source: "GlobalSettings/MV.xml".into(),
                context: format!("metaverse object type {ty}"),
                what: "used by rules but not in the metaverse schema".into(),
            });
            continue;
        };
        for a in attrs {
            if a != "dn" && !o.attributes.iter().any(|x| &x.name == a) {
                unmapped.push(Unmapped {
                    source: "GlobalSettings/MV.xml".into(),
                    context: format!("metaverse object type {ty}"),
                    what: format!(
                        "attribute `{a}` is used by rules but not in the metaverse schema"
                    ),
                });
            }
        }
    }
}

/// Attribute types by (connector id or "" for the metaverse, object type, attribute).
struct AttrTypes<'a> {
    config: &'a Config,
}

impl<'a> AttrTypes<'a> {
    fn new(config: &'a Config) -> Self {
        AttrTypes { config }
    }

    fn metaverse(&self, ty: &str, attr: &str) -> Option<&'a Attribute> {
        let by_type = self
            .config
            .metaverse
            .iter()
            .find(|o| o.name == ty)
            .and_then(|o| o.attributes.iter().find(|a| a.name == attr));
        by_type.or_else(|| {
            self.config
                .metaverse
                .iter()
                .flat_map(|o| &o.attributes)
                .find(|a| a.name == attr)
        })
    }

    fn connector(&self, id: &str, ty: &str, attr: &str) -> Option<&'a Attribute> {
        let c = self.config.connectors.iter().find(|c| c.id == id)?;
        let by_type = c
            .object_types
            .iter()
            .find(|o| o.name == ty)
            .and_then(|o| o.attributes.iter().find(|a| a.name == attr));
        by_type.or_else(|| {
            c.object_types
                .iter()
                .flat_map(|o| &o.attributes)
                .find(|a| a.name == attr)
        })
    }
}

fn rule_text(
    out: &mut String,
    r: &Rule,
    names: &BTreeMap<String, String>,
    types: &AttrTypes<'_>,
    unmapped: &mut Vec<Unmapped>,
) {
    let mut lost = |what: String| {
        unmapped.push(Unmapped {
            source: r.source.clone(),
            context: r.name.clone(),
            what,
        });
    };
    let dir = match r.direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    };
    let connector = names
        .get(&r.connector)
        .cloned()
        .unwrap_or_else(|| r.connector.clone());
    let _ = writeln!(out, "{dir} rule {} {{", quote(&r.name));
    let _ = writeln!(out, "  connector {}", quote(&connector));
    let _ = writeln!(out, "  source {}", r.source_type);
    let target = if r.target_type.is_empty() || r.target_type == "*" {
        "*"
    } else {
        &r.target_type
    };
    let _ = writeln!(out, "  target {target}");
    let link = match r.link_type.to_ascii_lowercase().as_str() {
        "join" => "join",
        "stickyjoin" => "stickyjoin",
        "provision" => "provision",
        "joinnoflow" => "joinnoflow",
        other => {
            lost(format!("unknown link type `{other}`; written as join"));
            "join"
        }
    };
    let _ = writeln!(out, "  link {link}");
    let _ = writeln!(out, "  precedence {}", r.precedence);
    if !r.description.trim().is_empty() {
        let _ = writeln!(out, "  description {}", quote(r.description.trim()));
    }
    if let Some(tag) = &r.immutable_tag {
        let _ = writeln!(out, "  tag {}", quote(tag));
    }
    if r.password_sync {
        out.push_str("  password-sync\n");
    }
    if r.disabled {
        out.push_str("  disabled\n");
    }
    for group in &r.scope {
        out.push_str("  scope {\n");
        for c in group {
            if !valid_name(&c.attribute) {
                lost(format!(
                    "scope attribute `{}` is not a valid idflow name",
                    c.attribute
                ));
                continue;
            }
            match &c.value {
                Some(v) => {
                    let _ = writeln!(out, "    {} {} {}", c.attribute, c.operator, quote(v));
                }
                None => {
                    let _ = writeln!(out, "    {} {}", c.attribute, c.operator);
                }
            }
        }
        out.push_str("  }\n");
    }
    for group in &r.joins {
        out.push_str("  join {\n");
        for j in group {
            let (left, right) = match r.direction {
                Direction::Inbound => (&j.cs_attribute, &j.mv_attribute),
                Direction::Outbound => (&j.mv_attribute, &j.cs_attribute),
            };
            let cs = if j.case_sensitive {
                " case-sensitive"
            } else {
                ""
            };
            let _ = writeln!(out, "    {left} = {right}{cs}");
        }
        out.push_str("  }\n");
    }
    for f in &r.flows {
        let target_attr = match r.direction {
            Direction::Inbound => types.metaverse(&r.target_type, &f.target),
            Direction::Outbound => types.connector(&r.connector, &r.target_type, &f.target),
        };
        let expr = match f.kind {
            FlowKind::Direct => format!("[{}]", f.source),
            FlowKind::Constant => constant(&f.source, target_attr.map(|a| a.ty)),
            FlowKind::Expression => {
                match syntax::parse_expr(FileId(0), &f.source) {
                    (Some(e), d) if d.is_empty() => crate::syntax::printer::expr(&e),
                    _ => {
                        // Already reported by `references`; keep the text as a comment.
                        for line in f.source.lines() {
                            let _ = writeln!(out, "  # unmapped flow {}: {}", f.target, line);
                        }
                        continue;
                    }
                }
            }
        };
        let merge = match f.merge.to_ascii_lowercase().as_str() {
            "" | "update" => "",
            "merge" => " merge",
            "mergecaseinsensitive" => " merge-case-insensitive",
            "replace" => " replace",
            other => {
                lost(format!(
                    "flow to `{}`: unknown merge type `{other}`; written as update",
                    f.target
                ));
                ""
            }
        };
        let once = if f.execute_once { " once" } else { "" };
        let _ = writeln!(out, "  flow {} <- {expr}{merge}{once}", f.target);
    }
    out.push_str("}\n");
}

/// A constant flow's literal: booleans and numbers for attributes of those types, else a string.
fn constant(text: &str, ty: Option<AttrType>) -> String {
    match ty {
        Some(AttrType::Boolean) if text.eq_ignore_ascii_case("true") => "True".into(),
        Some(AttrType::Boolean) if text.eq_ignore_ascii_case("false") => "False".into(),
        Some(AttrType::Integer) if text.trim().parse::<i64>().is_ok() => text.trim().to_string(),
        // Without a schema (a script's rules), Entra's boolean constants stay booleans.
        None if text.eq_ignore_ascii_case("true") => "True".into(),
        None if text.eq_ignore_ascii_case("false") => "False".into(),
        _ => quote(text),
    }
}

fn object_text(
    out: &mut String,
    o: &ObjectType,
    depth: Option<usize>,
    keep: impl Fn(&Attribute) -> bool,
) {
    let indent = "  ".repeat(depth.unwrap_or(1));
    let anchor = o
        .anchor
        .as_ref()
        .map(|a| format!(" anchor {a}"))
        .unwrap_or_default();
    let _ = writeln!(out, "{indent}object {}{anchor} {{", o.name);
    for a in o.attributes.iter().filter(|a| keep(a)) {
        let multi = if a.multi { " multi" } else { "" };
        let _ = writeln!(out, "{indent}  {} {}{multi}", a.name, a.ty.keyword());
    }
    let _ = writeln!(out, "{indent}}}");
}

/// Formats generated text; a failure is a defect of the writer, reported as unmapped.
fn formatted(path: &str, text: String, unmapped: &mut Vec<Unmapped>) -> OutFile {
    match syntax::format(FileId(0), &text) {
        Ok(t) => OutFile {
            path: path.to_string(),
            text: t,
        },
        Err(e) => {
            unmapped.push(Unmapped {
                source: path.into(),
                context: path.to_string(),
                what: format!("generated text does not format: {e:?}"),
            });
            OutFile {
                path: path.to_string(),
                text,
            }
        }
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

/// Whether `s` is a name of the rule language (letters, digits, `_`, inner `-` and `.`).
pub fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !s.ends_with(['-', '.'])
        && !s.contains("--")
        && !matches!(s, "param" | "multi" | "case-sensitive")
}

fn valid_param(s: &str) -> bool {
    valid_name(s)
}

/// A file-name slug: lower case, runs of other characters become `-`.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let t = out.trim_matches('-').to_string();
    if t.is_empty() { "connector".into() } else { t }
}

/// The `idflow.toml` deployment template.
fn deployment(config: &Config, names: &BTreeMap<String, String>, options: &Options) -> String {
    let mut root = toml::Table::new();
    root.insert("bundle".into(), ".".into());
    root.insert("state".into(), "idflow.db".into());
    let global = |name: &str| {
        config
            .global_parameters
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.clone())
    };
    let threshold_on = global("Microsoft.OptionalFeature.ExportDeletionThreshold")
        .is_none_or(|v| v.eq_ignore_ascii_case("true"));
    let threshold = global("Microsoft.OptionalFeature.ExportDeletionThresholdValue")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(500);
    // A disabled threshold in Entra is written as 0 (no protection).
    root.insert(
        "delete_threshold".into(),
        (if threshold_on { threshold } else { 0 }).into(),
    );
    root.insert("error_limit".into(), 5000.into());
    let staging =
        global("Microsoft.Synchronize.StagingMode").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    root.insert("staging".into(), staging.into());
    let mut connectors = toml::Table::new();
    for c in &config.connectors {
        let mut t = toml::Table::new();
        t.insert("kind".into(), c.kind.clone().into());
        t.insert("entra_id".into(), c.id.clone().into());
        let mut params = toml::Table::new();
        for p in &c.parameters {
            if let Some(v) = &p.value {
                params.insert(p.name.clone(), v.clone().into());
            }
        }
        if !params.is_empty() {
            t.insert("parameters".into(), toml::Value::Table(params));
        }
        let mut parts = Vec::new();
        for p in &c.partitions {
            let mut pt = toml::Table::new();
            pt.insert("name".into(), p.name.clone().into());
            pt.insert("selected".into(), p.selected.into());
            if !p.include_containers.is_empty() {
                pt.insert("include".into(), p.include_containers.clone().into());
            }
            if !p.exclude_containers.is_empty() {
                pt.insert("exclude".into(), p.exclude_containers.clone().into());
            }
            let mut pp = toml::Table::new();
            // The partition's `cookie` is a run watermark, not configuration.
            for x in p.parameters.iter().filter(|x| x.name != "cookie") {
                if let Some(v) = &x.value {
                    pp.insert(x.name.clone(), v.clone().into());
                }
            }
            if !pp.is_empty() {
                pt.insert("parameters".into(), toml::Value::Table(pp));
            }
            parts.push(toml::Value::Table(pt));
        }
        if !parts.is_empty() {
            t.insert("partitions".into(), toml::Value::Array(parts));
        }
        let name = names.get(&c.id).cloned().unwrap_or_else(|| c.name.clone());
        connectors.insert(name, toml::Value::Table(t));
    }
    root.insert("connectors".into(), toml::Value::Table(connectors));
    if !config.global_parameters.is_empty() {
        let mut g = toml::Table::new();
        for p in &config.global_parameters {
            g.insert(p.name.clone(), p.value.clone().unwrap_or_default().into());
        }
        root.insert("entra_server_settings".into(), toml::Value::Table(g));
    }
    let body = toml::to_string_pretty(&root).unwrap_or_default();
    format!(
        "# Deployment settings for the bundle \"{}\", generated by `idflow import entra`.\n\
         # Connection settings (servers, accounts) are not part of an Entra export: add them per\n\
         # connector. Secrets are given by environment variable or file, never inline.\n\
         # [entra_server_settings] keeps the exported server-wide settings for reference;\n\
         # delete_threshold and staging are taken from them. Partition watermarks (`cookie`)\n\
         # are run state and are not carried over.\n\n{body}",
        options.bundle_name
    )
}
