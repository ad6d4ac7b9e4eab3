//! Reads a `Get-ADSyncServerConfiguration` export folder into a [`Config`].
//!
//! Consumes: `SynchronizationRules/*.xml`, `Connectors/*.xml`, `GlobalSettings/MV.xml`.
//! Produces: [`Config`] with every rule, connector and the metaverse schema; constructs that
//! cannot be mapped are listed in `Config::unmapped`.
//!
//! `read` fails only when a file cannot be read or is not well-formed XML (the message names
//! the file and, for XML errors, the line and column); anything else that does not fit the
//! model becomes an [`Unmapped`] entry.
//!
//! Connector ids (`{AE4DB4CC-...}` in `Connectors/*.xml`, `{ae4db4cc-...}` in the rules) are
//! normalised to lower case so that rules resolve to their connectors.
//!
//! Deliberately skipped, without an [`Unmapped`] entry:
//! - in a rule: `internal-id`, `version`, `precedence-after`, `precedence-before` (ordering
//!   hints that `precedence` already resolves), `softDeleteExpiryInterval` when zero, the
//!   `<src>` attribute list of an expression mapping (the expression names its inputs), empty
//!   scope or join groups;
//! - in a connector: the partition object-class filter (used only to pick the AD object types),
//!   `custom-data` (duplicated by the partition parameters), run profiles (`ma-run-data`),
//!   password-sync settings, the MAConfig class mappings and parameter definitions, and the
//!   dynamic auxiliary classes of an AD `dit-content-rule` (every class lists the same set;
//!   the rule's own attribute list, i.e. the class's static auxiliary classes, is used);
//! - in `MV.xml`: nothing (the global `parameter-values` become `Config::global_parameters`)
//!   and the password-sync settings.

use super::model::{
    AttrType, Attribute, Config, Connector, Direction, Flow, FlowKind, JoinCondition, ObjectType,
    Parameter, Partition, Rule, ScopeClause, Unmapped,
};
use roxmltree::{Document, Node};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Reads an export folder.
pub fn read(dir: &Path) -> Result<Config, String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    let mut config = Config::default();
    let mut out = Vec::new();

    for path in xml_files(&dir.join("SynchronizationRules"))? {
        let text = load(&path)?;
        let doc = parse(&path, &text)?;
        if let Some(rule) = rule_from(&path, &doc, &mut out) {
            config.rules.push(rule);
        }
    }
    config
        .rules
        .sort_by_key(|r| (direction_rank(r.direction), r.precedence));

    // Object types each connector's rules work on (AD schemas are limited to these).
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &config.rules {
        let ty = match r.direction {
            Direction::Inbound => &r.source_type,
            Direction::Outbound => &r.target_type,
        };
        used.entry(r.connector.clone())
            .or_default()
            .insert(ty.clone());
    }

    for path in xml_files(&dir.join("Connectors"))? {
        let text = load(&path)?;
        let doc = parse(&path, &text)?;
        if let Some(c) = connector_from(&path, &doc, &used, &mut out) {
            config.connectors.push(c);
        }
    }

    let mv = dir.join("GlobalSettings").join("MV.xml");
    let text = load(&mv)?;
    let doc = parse(&mv, &text)?;
    config.metaverse = metaverse_from(&mv, &doc, &mut out);
    config.global_parameters = doc
        .descendants()
        .filter(|d| d.is_element() && name_of(*d) == "parameter-values")
        .flat_map(parameters)
        .collect();

    let known: BTreeSet<&str> = config.connectors.iter().map(|c| c.id.as_str()).collect();
    for r in &config.rules {
        if !known.contains(r.connector.as_str()) {
            out.push(Unmapped {
                source: r.source.clone(),
                context: r.name.clone(),
                what: format!(
                    "the rule refers to connector {}, which the export does not define",
                    r.connector
                ),
            });
        }
    }

    config.unmapped = out;
    Ok(config)
}

// ---------------------------------------------------------------------------------------------
// Files

fn xml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for e in entries {
        let p = e.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml")) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a file as text: UTF-8 (with or without a byte-order mark) or UTF-16 with a mark.
fn load(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    decode(&bytes).ok_or_else(|| format!("{}: not UTF-8 or UTF-16 text", path.display()))
}

fn decode(bytes: &[u8]) -> Option<String> {
    fn utf16(b: &[u8], unit: fn([u8; 2]) -> u16) -> Option<String> {
        if !b.len().is_multiple_of(2) {
            return None;
        }
        let units: Vec<u16> = b.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
        String::from_utf16(&units).ok()
    }
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8(rest.to_vec()).ok(),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ => String::from_utf8(bytes.to_vec()).ok(),
    }
}

fn parse<'a>(path: &Path, text: &'a str) -> Result<Document<'a>, String> {
    Document::parse(text).map_err(|e| {
        let p = e.pos();
        format!(
            "{}:{}:{}: ill-formed XML: {e}",
            path.display(),
            p.row,
            p.col
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// Collects unmapped constructs for one rule, connector or the metaverse.
struct Notes<'a> {
    source: &'a Path,
    context: String,
    out: &'a mut Vec<Unmapped>,
}

impl Notes<'_> {
    fn add(&mut self, what: impl Into<String>) {
        self.out.push(Unmapped {
            source: self.source.to_path_buf(),
            context: self.context.clone(),
            what: what.into(),
        });
    }
}

fn name_of<'i>(n: Node<'_, 'i>) -> &'i str {
    n.tag_name().name()
}

fn elements<'a, 'i>(n: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(Node::is_element)
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    elements(n).find(|c| name_of(*c) == name)
}

fn children<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    elements(n).filter(move |c| name_of(*c) == name)
}

/// The element's text exactly as written (entities and CDATA resolved by the parser).
fn raw_text(n: Node) -> String {
    n.descendants()
        .filter(Node::is_text)
        .filter_map(|t| t.text())
        .collect()
}

/// The trimmed text of a child element; `None` when absent or empty.
fn field(n: Node, name: &str) -> Option<String> {
    let t = raw_text(child(n, name)?);
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        t if t.eq_ignore_ascii_case("true") || t == "1" => Some(true),
        t if t.eq_ignore_ascii_case("false") || t == "0" => Some(false),
        _ => None,
    }
}

/// `{AE4DB4CC-...}` → `{ae4db4cc-...}` (the same normalisation as `writer::normalize_id`).
fn normalize_id(id: &str) -> String {
    format!(
        "{{{}}}",
        id.trim()
            .trim_matches(|c| c == '{' || c == '}')
            .to_ascii_lowercase()
    )
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn direction_rank(d: Direction) -> u8 {
    match d {
        Direction::Inbound => 0,
        Direction::Outbound => 1,
    }
}

// ---------------------------------------------------------------------------------------------
// Synchronization rules

/// Rule elements that are mapped.
const RULE_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "immutable-tag",
    "direction",
    "disabled",
    "connector",
    "sourceObjectType",
    "targetObjectType",
    "linkType",
    "precedence",
    "EnablePasswordSync",
    "attribute-mappings",
    "relationshipCriteria",
    "synchronizationCriteria",
];

/// Rule metadata skipped on purpose (`softDeleteExpiryInterval` is reported when not zero).
const RULE_METADATA: &[&str] = &[
    "internal-id",
    "version",
    "precedence-after",
    "precedence-before",
    "softDeleteExpiryInterval",
];

fn rule_from(path: &Path, doc: &Document, out: &mut Vec<Unmapped>) -> Option<Rule> {
    let root = doc.root_element();
    let name = field(root, "name").unwrap_or_else(|| file_stem(path));
    let mut notes = Notes {
        source: path,
        context: name.clone(),
        out,
    };
    if name_of(root) != "synchronizationRule" {
        notes.add(format!(
            "the root element is <{}>, not <synchronizationRule>; file not imported",
            name_of(root)
        ));
        return None;
    }
    for a in root.attributes() {
        notes.add(format!(
            "unknown attribute `{}` on <synchronizationRule>",
            a.name()
        ));
    }
    for c in elements(root) {
        let n = name_of(c);
        if n == "softDeleteExpiryInterval" {
            let v = raw_text(c);
            let v = v.trim();
            if !(v.is_empty()
                || v == "0"
                || v.chars().all(|ch| ch == '0' || ch == ':' || ch == '.'))
            {
                notes.add(format!("softDeleteExpiryInterval {v} is not supported"));
            }
        } else if !RULE_FIELDS.contains(&n) && !RULE_METADATA.contains(&n) {
            notes.add(format!("unknown element <{n}> in the rule"));
        }
    }

    let missing = |notes: &mut Notes, what: &str| {
        notes.add(format!("missing or empty <{what}>; rule not imported"));
    };
    let direction = match field(root, "direction") {
        Some(d) if d.eq_ignore_ascii_case("inbound") => Direction::Inbound,
        Some(d) if d.eq_ignore_ascii_case("outbound") => Direction::Outbound,
        Some(d) => {
            notes.add(format!("unknown direction `{d}`; rule not imported"));
            return None;
        }
        None => {
            missing(&mut notes, "direction");
            return None;
        }
    };
    let required = |notes: &mut Notes, what: &str| {
        let v = field(root, what);
        if v.is_none() {
            missing(notes, what);
        }
        v
    };
    let connector = required(&mut notes, "connector").map(|c| normalize_id(&c));
    let source_type = required(&mut notes, "sourceObjectType");
    let target_type = required(&mut notes, "targetObjectType");
    let link_type = required(&mut notes, "linkType");
    let precedence = required(&mut notes, "precedence");
    let (Some(connector), Some(source_type), Some(target_type), Some(link_type), Some(precedence)) =
        (connector, source_type, target_type, link_type, precedence)
    else {
        return None;
    };
    let Ok(precedence) = precedence.parse::<i64>() else {
        notes.add(format!(
            "precedence `{precedence}` is not an integer; rule not imported"
        ));
        return None;
    };
    if !["Join", "StickyJoin", "Provision", "JoinNoFlow"].contains(&link_type.as_str()) {
        notes.add(format!("unknown linkType `{link_type}` (kept as exported)"));
    }
    let flag = |notes: &mut Notes, what: &str| match field(root, what) {
        None => Some(false),
        Some(v) => {
            let b = parse_bool(&v);
            if b.is_none() {
                notes.add(format!(
                    "<{what}> `{v}` is not True or False; rule not imported"
                ));
            }
            b
        }
    };
    let disabled = flag(&mut notes, "disabled");
    let password_sync = flag(&mut notes, "EnablePasswordSync");
    let (Some(disabled), Some(password_sync)) = (disabled, password_sync) else {
        return None;
    };

    let scope = child(root, "synchronizationCriteria")
        .map(|s| scope_groups(s, &mut notes))
        .unwrap_or_default();
    let joins = child(root, "relationshipCriteria")
        .map(|s| join_groups(s, &mut notes))
        .unwrap_or_default();
    let mut flows = Vec::new();
    if let Some(m) = child(root, "attribute-mappings") {
        for c in elements(m) {
            if name_of(c) == "mapping" {
                if let Some(f) = flow_from(c, &mut notes) {
                    flows.push(f);
                }
            } else {
                notes.add(format!(
                    "unknown element <{}> in <attribute-mappings>",
                    name_of(c)
                ));
            }
        }
    }

    Some(Rule {
        id: field(root, "id").unwrap_or_default(),
        name,
        description: child(root, "description").map(raw_text).unwrap_or_default(),
        immutable_tag: field(root, "immutable-tag"),
        direction,
        disabled,
        connector,
        connector_ref: super::model::ConnectorRef::Id,
        source_type,
        target_type,
        link_type,
        precedence,
        password_sync,
        scope,
        joins,
        flows,
        source: path.to_path_buf(),
    })
}

fn unknown_children(n: Node, known: &[&str], notes: &mut Notes) {
    for c in elements(n) {
        if !known.contains(&name_of(c)) {
            notes.add(format!(
                "unknown element <{}> in <{}>",
                name_of(c),
                name_of(n)
            ));
        }
    }
}

/// `synchronizationCriteria/conditions` → ORed groups of `scope` clauses.
fn scope_groups(criteria: Node, notes: &mut Notes) -> Vec<Vec<ScopeClause>> {
    unknown_children(criteria, &["conditions"], notes);
    let mut groups = Vec::new();
    for conds in children(criteria, "conditions") {
        unknown_children(conds, &["scope"], notes);
        let mut group = Vec::new();
        for s in children(conds, "scope") {
            unknown_children(s, &["csAttribute", "csOperator", "csValue"], notes);
            let (Some(attribute), Some(operator)) =
                (field(s, "csAttribute"), field(s, "csOperator"))
            else {
                notes.add("scope clause without csAttribute or csOperator; clause not imported");
                continue;
            };
            let value = child(s, "csValue").map(raw_text);
            let unary = operator.eq_ignore_ascii_case("ISNULL")
                || operator.eq_ignore_ascii_case("ISNOTNULL");
            let value = value.filter(|v| !(unary && v.trim().is_empty()));
            group.push(ScopeClause {
                attribute,
                operator,
                value,
            });
        }
        if !group.is_empty() {
            groups.push(group);
        }
    }
    groups
}

/// `relationshipCriteria/conditions` → join groups of `condition`s, in evaluation order.
fn join_groups(criteria: Node, notes: &mut Notes) -> Vec<Vec<JoinCondition>> {
    unknown_children(criteria, &["conditions"], notes);
    let mut groups = Vec::new();
    for conds in children(criteria, "conditions") {
        unknown_children(conds, &["condition"], notes);
        let mut group = Vec::new();
        for c in children(conds, "condition") {
            unknown_children(c, &["csAttribute", "ilmAttribute", "caseSensitive"], notes);
            let (Some(cs_attribute), Some(mv_attribute)) =
                (field(c, "csAttribute"), field(c, "ilmAttribute"))
            else {
                notes.add(
                    "join condition without csAttribute or ilmAttribute; condition not imported",
                );
                continue;
            };
            let case_sensitive = match field(c, "caseSensitive") {
                None => false,
                Some(v) => parse_bool(&v).unwrap_or_else(|| {
                    notes.add(format!(
                        "join condition {cs_attribute} = {mv_attribute}: caseSensitive `{v}` is not True or False; \
                         taken as False"
                    ));
                    false
                }),
            };
            group.push(JoinCondition {
                cs_attribute,
                mv_attribute,
                case_sensitive,
            });
        }
        if !group.is_empty() {
            groups.push(group);
        }
    }
    groups
}

/// One `attribute-mappings/mapping`: `<expression>` → Expression, `<src><attr/></src>` → Direct,
/// `<src>text</src>` → Constant.
fn flow_from(m: Node, notes: &mut Notes) -> Option<Flow> {
    let dests: Vec<Node> = children(m, "dest").collect();
    let target = dests
        .first()
        .map(|d| raw_text(*d).trim().to_string())
        .unwrap_or_default();
    let label = if target.is_empty() {
        "mapping".to_string()
    } else {
        format!("mapping to `{target}`")
    };
    if target.is_empty() {
        notes.add("mapping without <dest>; flow not imported");
        return None;
    }
    if dests.len() > 1 {
        notes.add(format!(
            "{label} has {} <dest> elements; only the first is imported",
            dests.len()
        ));
    }
    let mut execute_once = false;
    for a in m.attributes() {
        if a.name() == "execute-once" {
            match parse_bool(a.value()) {
                Some(b) => execute_once = b,
                None => notes.add(format!(
                    "{label}: execute-once `{}` is not true or false",
                    a.value()
                )),
            }
        } else {
            notes.add(format!("{label}: unknown attribute `{}`", a.name()));
        }
    }
    for c in elements(m) {
        match name_of(c) {
            "dest" | "src" | "expression" | "valueMergeType" => {}
            "execute-once" => match parse_bool(&raw_text(c)) {
                Some(b) => execute_once = b,
                None => notes.add(format!(
                    "{label}: execute-once `{}` is not true or false",
                    raw_text(c).trim()
                )),
            },
            other => notes.add(format!("{label}: unknown element <{other}>")),
        }
    }
    // Entra's default merge type when the element is absent.
    let merge = field(m, "valueMergeType").unwrap_or_else(|| "Update".to_string());

    let (kind, source) = if let Some(e) = child(m, "expression") {
        let text = raw_text(e);
        if text.trim().is_empty() {
            notes.add(format!("{label}: empty <expression>; flow not imported"));
            return None;
        }
        (FlowKind::Expression, text)
    } else if let Some(src) = child(m, "src") {
        let parts: Vec<Node> = elements(src).collect();
        if parts.is_empty() {
            let text = raw_text(src);
            if text.is_empty() {
                notes.add(format!(
                    "{label}: empty <src> and no expression; flow not imported"
                ));
                return None;
            }
            (FlowKind::Constant, text)
        } else if parts.iter().any(|p| name_of(*p) != "attr") {
            let names: BTreeSet<&str> = parts
                .iter()
                .map(|p| name_of(*p))
                .filter(|n| *n != "attr")
                .collect();
            let names: Vec<&str> = names.into_iter().collect();
            notes.add(format!(
                "{label}: unknown <src> content <{}>; flow not imported",
                names.join(">, <")
            ));
            return None;
        } else if parts.len() > 1 {
            let attrs: Vec<String> = parts
                .iter()
                .map(|p| raw_text(*p).trim().to_string())
                .collect();
            notes.add(format!(
                "{label}: {} source attributes ({}) without an expression; flow not imported",
                attrs.len(),
                attrs.join(", ")
            ));
            return None;
        } else {
            let attr = raw_text(parts[0]).trim().to_string();
            if attr.is_empty() {
                notes.add(format!("{label}: empty <attr>; flow not imported"));
                return None;
            }
            (FlowKind::Direct, attr)
        }
    } else {
        notes.add(format!(
            "{label}: neither <src> nor <expression>; flow not imported"
        ));
        return None;
    };
    Some(Flow {
        target,
        kind,
        source,
        merge,
        execute_once,
    })
}

// ---------------------------------------------------------------------------------------------
// DSML schemas

/// The idflow type of a DSML syntax OID; `None` for an unknown syntax.
fn syntax_type(oid: &str) -> Option<AttrType> {
    let oid = oid.trim();
    if let Some(n) = oid.strip_prefix("1.3.6.1.4.1.1466.115.121.1.") {
        return match n {
            "7" => Some(AttrType::Boolean),
            "27" => Some(AttrType::Integer),
            "5" | "40" => Some(AttrType::Binary),
            "12" => Some(AttrType::Reference),
            // Country, Directory String, Generalized Time, IA5, Numeric, OID, Postal Address,
            // Presentation Address, Printable, Telephone Number, UTC Time. Times stay strings:
            // Entra's AD connector space holds them as strings.
            "11" | "15" | "24" | "26" | "36" | "38" | "41" | "43" | "44" | "50" | "53" => {
                Some(AttrType::String)
            }
            _ => None,
        };
    }
    if let Some(n) = oid.strip_prefix("1.2.840.113556.1.4.") {
        return match n {
            // Large Integer (Interval).
            "906" => Some(AttrType::Integer),
            // DN-Binary, DN-String, OR-Name.
            "903" | "904" | "1221" => Some(AttrType::Reference),
            // Teletex string, case-sensitive string.
            "905" | "1362" => Some(AttrType::String),
            // Security descriptor / replica link.
            "907" => Some(AttrType::Binary),
            _ => None,
        };
    }
    None
}

struct AttrDef {
    name: String,
    syntax: String,
    single: bool,
}

struct ClassDef {
    id: String,
    name: String,
    superiors: Vec<String>,
    /// Attribute ids with their `isAnchor` flag.
    attributes: Vec<(String, bool)>,
}

/// A DSML `directory-schema`, with Microsoft's `dit-content-rule` extension.
struct Schema {
    attrs: HashMap<String, AttrDef>,
    classes: Vec<ClassDef>,
    /// Class id → attribute ids of its content rule.
    content_rules: HashMap<String, Vec<String>>,
}

fn reference(r: &str) -> String {
    r.trim().trim_start_matches('#').to_string()
}

impl Schema {
    /// Reads the first `directory-schema` under `n` (both the default-namespace and the
    /// `dsml:`-prefixed dialects; names are matched without their namespace).
    fn from(n: Node) -> Option<Schema> {
        let ds = n
            .descendants()
            .find(|d| d.is_element() && name_of(*d) == "directory-schema")?;
        let mut s = Schema {
            attrs: HashMap::new(),
            classes: Vec::new(),
            content_rules: HashMap::new(),
        };
        for c in elements(ds) {
            let id = c.attribute("id").unwrap_or("").to_string();
            match name_of(c) {
                "attribute-type" => {
                    let def = AttrDef {
                        name: field(c, "name").unwrap_or_else(|| id.clone()),
                        syntax: field(c, "syntax").unwrap_or_default(),
                        single: c
                            .attribute("single-value")
                            .and_then(parse_bool)
                            .unwrap_or(false),
                    };
                    s.attrs.insert(id, def);
                }
                "class" => {
                    let attributes = children(c, "attribute")
                        .filter_map(|a| {
                            let anchor = a.attributes().any(|x| {
                                x.name() == "isAnchor" && parse_bool(x.value()) == Some(true)
                            });
                            a.attribute("ref").map(|r| (reference(r), anchor))
                        })
                        .collect();
                    s.classes.push(ClassDef {
                        name: field(c, "name").unwrap_or_else(|| id.clone()),
                        superiors: c
                            .attribute("superior")
                            .map(|v| v.split_whitespace().map(reference).collect())
                            .unwrap_or_default(),
                        attributes,
                        id,
                    });
                }
                "dit-content-rule" => {
                    let refs = children(c, "attribute")
                        .filter_map(|a| a.attribute("ref"))
                        .map(reference)
                        .collect();
                    s.content_rules.insert(id, refs);
                }
                _ => {}
            }
        }
        Some(s)
    }

    fn class(&self, key: &str) -> Option<&ClassDef> {
        self.classes
            .iter()
            .find(|c| c.id == key)
            .or_else(|| self.classes.iter().find(|c| c.name == key))
    }

    /// The class's attributes: its own, its superclasses' and those of the content rules of
    /// both; sorted by name. The anchor is the attribute DSML marks `isAnchor`, if any.
    fn object_type(
        &self,
        class: &ClassDef,
        notes: &mut Notes,
        reported: &mut BTreeSet<String>,
    ) -> ObjectType {
        let mut ids: Vec<&str> = Vec::new();
        let mut anchors: Vec<&str> = Vec::new();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut todo: Vec<&ClassDef> = vec![class];
        while let Some(c) = todo.pop() {
            if !seen.insert(c.id.as_str()) {
                continue;
            }
            for (a, anchor) in &c.attributes {
                ids.push(a);
                if *anchor {
                    anchors.push(a);
                }
            }
            ids.extend(
                self.content_rules
                    .get(&c.id)
                    .into_iter()
                    .flatten()
                    .map(String::as_str),
            );
            for sup in &c.superiors {
                match self.class(sup) {
                    Some(s) => todo.push(s),
                    None if reported.insert(format!("class #{sup}")) => {
                        notes.add(format!(
                            "class `{}` names an undefined superclass #{sup}",
                            c.name
                        ));
                    }
                    None => {}
                }
            }
        }
        let mut attributes: BTreeMap<&str, Attribute> = BTreeMap::new();
        for id in ids {
            let Some(def) = self.attrs.get(id) else {
                if reported.insert(format!("attribute #{id}")) {
                    notes.add(format!(
                        "class `{}` refers to an undefined attribute #{id}",
                        class.name
                    ));
                }
                continue;
            };
            let ty = syntax_type(&def.syntax).unwrap_or_else(|| {
                if reported.insert(format!("syntax {}", def.name)) {
                    notes.add(format!(
                        "attribute `{}` has the unknown syntax {}; imported as string",
                        def.name, def.syntax
                    ));
                }
                AttrType::String
            });
            attributes.entry(def.name.as_str()).or_insert(Attribute {
                name: def.name.clone(),
                ty,
                multi: !def.single,
            });
        }
        let anchor = anchors
            .iter()
            .filter_map(|a| self.attrs.get(*a))
            .map(|d| d.name.clone())
            .collect::<BTreeSet<_>>();
        if anchor.len() > 1 {
            let names: Vec<&str> = anchor.iter().map(String::as_str).collect();
            notes.add(format!(
                "object type `{}` has a composite anchor ({}); only the first is imported",
                class.name,
                names.join(", ")
            ));
        }
        ObjectType {
            name: class.name.clone(),
            anchor: anchor.into_iter().next(),
            attributes: attributes.into_values().collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connectors

fn parameters(values: Node) -> Vec<Parameter> {
    children(values, "parameter")
        .map(|p| {
            let v = raw_text(p);
            Parameter {
                name: p.attribute("name").unwrap_or("").to_string(),
                value: (!v.trim().is_empty()).then(|| v.trim().to_string()),
            }
        })
        .collect()
}

fn texts(n: Option<Node>, name: &'static str) -> Vec<String> {
    n.into_iter()
        .flat_map(|n| children(n, name))
        .map(|c| raw_text(c).trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn connector_from(
    path: &Path,
    doc: &Document,
    used: &BTreeMap<String, BTreeSet<String>>,
    out: &mut Vec<Unmapped>,
) -> Option<Connector> {
    let root = doc.root_element();
    let name = field(root, "name").unwrap_or_else(|| file_stem(path));
    let mut notes = Notes {
        source: path,
        context: name.clone(),
        out,
    };
    if name_of(root) != "ma-data" {
        notes.add(format!(
            "the root element is <{}>, not <ma-data>; file not imported",
            name_of(root)
        ));
        return None;
    }
    let Some(id) = field(root, "id") else {
        notes.add("missing <id>; connector not imported");
        return None;
    };
    let id = normalize_id(&id);
    let category = field(root, "category").unwrap_or_default();
    let listname = [field(root, "ma-listname"), field(root, "subtype")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let lower = listname.to_ascii_lowercase();
    let kind = if category.eq_ignore_ascii_case("AD") {
        "ad"
    } else if lower.contains("azure active directory") || lower.contains("entra") {
        "entra"
    } else {
        notes.add(format!("connector category `{category}` ({listname}) has no idflow equivalent; imported as ldap"));
        "ldap"
    };

    // Classic (pre-synchronization-rule) management agent rules.
    for classic in ["join", "projection", "export-attribute-flow"] {
        if child(root, classic).is_some_and(|c| elements(c).next().is_some()) {
            notes.add(format!(
                "classic <{classic}> rules are not imported (only synchronization rules are)"
            ));
        }
    }

    let partition_nodes: Vec<Node> = child(root, "ma-partition-data")
        .into_iter()
        .flat_map(|p| children(p, "partition"))
        .collect();
    let mut object_types = Vec::new();
    match child(root, "schema").and_then(Schema::from) {
        None => notes.add("no DSML schema; no object types imported"),
        Some(schema) => {
            let rule_types = used.get(&id);
            // AD schemas hold hundreds of classes: keep the ones the partitions synchronise and
            // the ones rules use.
            let wanted: Option<BTreeSet<String>> = (kind == "ad").then(|| {
                let filtered = partition_nodes.iter().flat_map(|p| {
                    texts(
                        child(*p, "filter").and_then(|f| child(f, "object-classes")),
                        "object-class",
                    )
                });
                filtered
                    .chain(rule_types.into_iter().flatten().cloned())
                    .collect()
            });
            let mut reported = BTreeSet::new();
            for class in &schema.classes {
                if wanted.as_ref().is_none_or(|w| w.contains(&class.name)) {
                    object_types.push(schema.object_type(class, &mut notes, &mut reported));
                }
            }
            let names: BTreeSet<&str> = schema.classes.iter().map(|c| c.name.as_str()).collect();
            let expected = wanted
                .iter()
                .flatten()
                .chain(rule_types.into_iter().flatten())
                .collect::<BTreeSet<_>>();
            for t in expected {
                if !names.contains(t.as_str()) && t != "*" {
                    notes.add(format!("object type `{t}` is not in the connector schema"));
                }
            }
        }
    }

    // Anchors: objectGUID for AD; else DSML `isAnchor`, else MAConfig per-class settings.
    let private = child(root, "private-configuration");
    let class_anchors: HashMap<String, String> = private
        .into_iter()
        .flat_map(|p| {
            p.descendants()
                .filter(|d| d.is_element() && name_of(*d) == "per-class-settings")
        })
        .flat_map(|s| children(s, "class"))
        .filter_map(|c| {
            let anchor = child(c, "anchor").and_then(|a| field(a, "attribute"))?;
            Some((field(c, "name")?, anchor))
        })
        .collect();
    for o in &mut object_types {
        if kind == "ad" {
            o.anchor = Some("objectGUID".to_string());
        } else if o.anchor.is_none() {
            o.anchor = class_anchors.get(&o.name).cloned();
            if o.anchor.is_none() {
                notes.add(format!("object type `{}` has no anchor attribute", o.name));
            }
        }
    }

    let params = private
        .into_iter()
        .flat_map(|p| {
            p.descendants()
                .filter(|d| d.is_element() && name_of(*d) == "parameter-values")
        })
        .flat_map(parameters)
        .collect();
    let partitions = partition_nodes
        .iter()
        .map(|p| {
            let containers = child(*p, "filter").and_then(|f| child(f, "containers"));
            Partition {
                name: field(*p, "name").unwrap_or_default(),
                selected: field(*p, "selected")
                    .and_then(|s| parse_bool(&s))
                    .unwrap_or(false),
                include_containers: texts(
                    containers.and_then(|c| child(c, "inclusions")),
                    "inclusion",
                ),
                exclude_containers: texts(
                    containers.and_then(|c| child(c, "exclusions")),
                    "exclusion",
                ),
                parameters: child(*p, "parameter-values")
                    .map(parameters)
                    .unwrap_or_default(),
            }
        })
        .collect();

    Some(Connector {
        id,
        name,
        kind: kind.to_string(),
        category,
        object_types,
        included_attributes: texts(child(root, "attribute-inclusion"), "attribute"),
        parameters: params,
        partitions,
        source: path.to_path_buf(),
    })
}

// ---------------------------------------------------------------------------------------------
// Metaverse

fn metaverse_from(path: &Path, doc: &Document, out: &mut Vec<Unmapped>) -> Vec<ObjectType> {
    let root = doc.root_element();
    let mut notes = Notes {
        source: path,
        context: "metaverse".to_string(),
        out,
    };
    let data = if name_of(root) == "mv-data" {
        Some(root)
    } else {
        child(root, "mv-data")
    };
    let Some(data) = data else {
        notes.add(format!(
            "no <mv-data> under <{}>; metaverse schema not imported",
            name_of(root)
        ));
        return Vec::new();
    };
    for classic in ["import-attribute-flow", "extension"] {
        if child(data, classic).is_some_and(|c| elements(c).next().is_some()) {
            notes.add(format!(
                "classic metaverse <{classic}> settings are not imported"
            ));
        }
    }
    let Some(schema) = child(data, "schema").and_then(Schema::from) else {
        notes.add("no DSML schema; metaverse schema not imported");
        return Vec::new();
    };
    let mut reported = BTreeSet::new();
    schema
        .classes
        .iter()
        .map(|c| {
            let mut o = schema.object_type(c, &mut notes, &mut reported);
            o.anchor = None;
            o
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(xml: &str) -> (Option<Rule>, Vec<Unmapped>) {
        let doc = Document::parse(xml).unwrap();
        let mut out = Vec::new();
        let r = rule_from(Path::new("r.xml"), &doc, &mut out);
        (r, out)
    }

    const HEAD: &str = "<synchronizationRule><id>{1}</id><name>R</name><direction>Inbound</direction>\
        <disabled>TRUE</disabled><connector>{ABC}</connector><sourceObjectType>user</sourceObjectType>\
        <targetObjectType>person</targetObjectType><linkType>Join</linkType><precedence>7</precedence>\
        <version>1</version>";

    #[test]
    fn mapping_shapes() {
        let xml = format!(
            "{HEAD}<attribute-mappings>\
             <mapping><dest>a</dest><src><attr>x</attr></src><valueMergeType>Update</valueMergeType></mapping>\
             <mapping execute-once=\"true\"><dest>b</dest><src>True</src><valueMergeType>Update</valueMergeType></mapping>\
             <mapping><dest>c</dest><src><attr>x</attr><attr>y</attr></src><expression>IIF([x] &amp;\n  [y],1,2)</expression><valueMergeType>MergeCaseInsensitive</valueMergeType></mapping>\
             <mapping><dest>d</dest><src><attr>x</attr><attr>y</attr></src></mapping>\
             </attribute-mappings></synchronizationRule>"
        );
        let (r, out) = rule(&xml);
        let r = r.unwrap();
        assert!(r.disabled);
        assert_eq!(r.connector, "{abc}");
        assert_eq!(r.precedence, 7);
        assert_eq!(r.flows.len(), 3);
        assert_eq!(
            (r.flows[0].kind, r.flows[0].source.as_str()),
            (FlowKind::Direct, "x")
        );
        assert_eq!(
            (
                r.flows[1].kind,
                r.flows[1].source.as_str(),
                r.flows[1].execute_once
            ),
            (FlowKind::Constant, "True", true)
        );
        assert_eq!(
            (r.flows[2].kind, r.flows[2].source.as_str()),
            (FlowKind::Expression, "IIF([x] &\n  [y],1,2)")
        );
        assert_eq!(r.flows[2].merge, "MergeCaseInsensitive");
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].what.contains("2 source attributes"));
    }

    #[test]
    fn scope_and_joins() {
        let xml = format!(
            "{HEAD}<relationshipCriteria><conditions><condition><caseSensitive>True</caseSensitive>\
             <csAttribute>a</csAttribute><ilmAttribute>b</ilmAttribute></condition></conditions>\
             <conditions><condition><csAttribute>c</csAttribute><ilmAttribute>d</ilmAttribute></condition></conditions>\
             </relationshipCriteria><synchronizationCriteria><conditions>\
             <scope><csAttribute>m</csAttribute><csOperator>ISNOTNULL</csOperator><csValue /></scope>\
             <scope><csAttribute>n</csAttribute><csOperator>EQUAL</csOperator><csValue></csValue></scope>\
             </conditions></synchronizationCriteria><frobnicate/></synchronizationRule>"
        );
        let (r, out) = rule(&xml);
        let r = r.unwrap();
        assert_eq!(r.joins.len(), 2);
        assert!(r.joins[0][0].case_sensitive && !r.joins[1][0].case_sensitive);
        assert_eq!(r.scope[0][0].value, None);
        assert_eq!(r.scope[0][1].value, Some(String::new()));
        assert_eq!(out.len(), 1);
        assert!(out[0].what.contains("<frobnicate>"));
    }

    #[test]
    fn invalid_direction_drops_the_rule() {
        let xml = HEAD.replace("Inbound", "Sideways") + "</synchronizationRule>";
        let (r, out) = rule(&xml);
        assert!(r.is_none());
        assert!(out[0].what.contains("Sideways"));
    }

    #[test]
    fn syntaxes() {
        assert_eq!(
            syntax_type("1.3.6.1.4.1.1466.115.121.1.15"),
            Some(AttrType::String)
        );
        assert_eq!(
            syntax_type("1.3.6.1.4.1.1466.115.121.1.27"),
            Some(AttrType::Integer)
        );
        assert_eq!(
            syntax_type("1.2.840.113556.1.4.906"),
            Some(AttrType::Integer)
        );
        assert_eq!(
            syntax_type("1.3.6.1.4.1.1466.115.121.1.7"),
            Some(AttrType::Boolean)
        );
        assert_eq!(
            syntax_type("1.3.6.1.4.1.1466.115.121.1.40"),
            Some(AttrType::Binary)
        );
        assert_eq!(
            syntax_type("1.3.6.1.4.1.1466.115.121.1.5"),
            Some(AttrType::Binary)
        );
        assert_eq!(
            syntax_type("1.3.6.1.4.1.1466.115.121.1.12"),
            Some(AttrType::Reference)
        );
        assert_eq!(
            syntax_type("1.2.840.113556.1.4.903"),
            Some(AttrType::Reference)
        );
        assert_eq!(
            syntax_type("1.3.6.1.4.1.1466.115.121.1.24"),
            Some(AttrType::String)
        );
        assert_eq!(syntax_type("1.2.3"), None);
    }

    #[test]
    fn decodes_boms() {
        assert_eq!(decode(b"\xEF\xBB\xBF<a/>").as_deref(), Some("<a/>"));
        assert_eq!(decode(b"\xFF\xFE<\0a\0/\0>\0").as_deref(), Some("<a/>"));
        assert_eq!(decode(b"\xFE\xFF\0<\0a\0/\0>").as_deref(), Some("<a/>"));
        assert_eq!(decode(b"\xFF\xFE<"), None);
    }

    #[test]
    fn utf16_declaration_parses() {
        let mut bytes = vec![0xFF, 0xFE];
        for u in "<?xml version='1.0' encoding='utf-16'?><a/>".encode_utf16() {
            bytes.extend(u.to_le_bytes());
        }
        let text = decode(&bytes).unwrap();
        assert!(Document::parse(&text).is_ok());
    }

    #[test]
    fn schema_inheritance_and_anchor() {
        let xml = r##"<schema><dsml xmlns="http://www.dsml.org/DSML" xmlns:m="http://www.microsoft.com/MMS/DSML"><directory-schema>
            <attribute-type id="A1" single-value="true"><name>objectGUID</name><syntax>1.3.6.1.4.1.1466.115.121.1.40</syntax></attribute-type>
            <attribute-type id="A2"><name>proxyAddresses</name><syntax>1.3.6.1.4.1.1466.115.121.1.15</syntax></attribute-type>
            <attribute-type id="A3" single-value="true"><name>weird</name><syntax>9.9</syntax></attribute-type>
            <class id="C0" type="abstract"><name>top</name><attribute ref="#A1" required="false"/></class>
            <class id="C1" superior="#C0" type="structural"><name>user</name><attribute ref="#A3" required="false" m:isAnchor="true"/></class>
            <m:dit-content-rule id="C1"><attribute ref="#A2" required="false"/><m:aux-class ref="#C0"/></m:dit-content-rule>
            </directory-schema></dsml></schema>"##;
        let doc = Document::parse(xml).unwrap();
        let s = Schema::from(doc.root_element()).unwrap();
        let mut out = Vec::new();
        let mut notes = Notes {
            source: Path::new("c.xml"),
            context: "c".into(),
            out: &mut out,
        };
        let o = s.object_type(&s.classes[1], &mut notes, &mut BTreeSet::new());
        assert_eq!(o.anchor.as_deref(), Some("weird"));
        let names: Vec<&str> = o.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["objectGUID", "proxyAddresses", "weird"]);
        assert_eq!(
            o.attributes[0],
            Attribute {
                name: "objectGUID".into(),
                ty: AttrType::Binary,
                multi: false
            }
        );
        assert!(o.attributes[1].multi);
        assert_eq!(out.len(), 1);
        assert!(out[0].what.contains("`weird`") && out[0].what.contains("9.9"));
    }
}
