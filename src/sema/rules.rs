//! Rule resolution: each sync rule against the schema.
//!
//! Consumes: the rule items of a bundle and its [`Schema`]. Produces: [`RuleDef`]s (settings
//! resolved, scope, join and flow expressions typed) and diagnostics for missing or repeated
//! settings, unknown connectors, object types, attributes and operators, and flow type errors.

use super::schema::{AttrDef, ConnectorDef, ObjectDef, Schema};
use super::typeck::{Env, lower_expr};
use super::types::{Base, Ty};
use crate::diag::{Diagnostic, suggest};
use crate::ir;
use crate::source::{FileId, Span};
use crate::syntax::ast::{self, Direction, MergeType};
use std::collections::BTreeMap;

/// How a rule links connector-space and metaverse objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    Join,
    StickyJoin,
    Provision,
    /// Entra's JoinNoFlow: joins like `join` and flows nothing (the object is linked for the
    /// flows of other rules).
    JoinNoFlow,
}

impl LinkType {
    pub fn parse(s: &str) -> Option<LinkType> {
        Some(match s {
            "join" => LinkType::Join,
            "stickyjoin" => LinkType::StickyJoin,
            "provision" => LinkType::Provision,
            "joinnoflow" => LinkType::JoinNoFlow,
            _ => return None,
        })
    }
}

/// The twenty Entra scope operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeOp {
    Equal,
    NotEqual,
    LessThan,
    LessThanOrEqual,
    GreaterThan,
    GreaterThanOrEqual,
    Contains,
    NotContains,
    StartsWith,
    NotStartsWith,
    EndsWith,
    NotEndsWith,
    IsNull,
    IsNotNull,
    IsIn,
    IsNotIn,
    IsBitSet,
    IsNotBitSet,
    IsMemberOf,
    IsNotMemberOf,
}

pub const SCOPE_OPERATORS: &[(&str, ScopeOp)] = &[
    ("EQUAL", ScopeOp::Equal),
    ("NOTEQUAL", ScopeOp::NotEqual),
    ("LESSTHAN", ScopeOp::LessThan),
    ("LESSTHAN_OR_EQUAL", ScopeOp::LessThanOrEqual),
    ("GREATERTHAN", ScopeOp::GreaterThan),
    ("GREATERTHAN_OR_EQUAL", ScopeOp::GreaterThanOrEqual),
    ("CONTAINS", ScopeOp::Contains),
    ("NOTCONTAINS", ScopeOp::NotContains),
    ("STARTSWITH", ScopeOp::StartsWith),
    ("NOTSTARTSWITH", ScopeOp::NotStartsWith),
    ("ENDSWITH", ScopeOp::EndsWith),
    ("NOTENDSWITH", ScopeOp::NotEndsWith),
    ("ISNULL", ScopeOp::IsNull),
    ("ISNOTNULL", ScopeOp::IsNotNull),
    ("ISIN", ScopeOp::IsIn),
    ("ISNOTIN", ScopeOp::IsNotIn),
    ("ISBITSET", ScopeOp::IsBitSet),
    ("ISNOTBITSET", ScopeOp::IsNotBitSet),
    ("ISMEMBEROF", ScopeOp::IsMemberOf),
    ("ISNOTMEMBEROF", ScopeOp::IsNotMemberOf),
];

impl ScopeOp {
    /// Case-insensitive; accepts Entra's export spelling `ISBITNOTSET`.
    pub fn parse(s: &str) -> Option<ScopeOp> {
        let upper = s.to_ascii_uppercase();
        if upper == "ISBITNOTSET" {
            return Some(ScopeOp::IsNotBitSet);
        }
        SCOPE_OPERATORS
            .iter()
            .find(|(n, _)| *n == upper)
            .map(|(_, op)| *op)
    }

    pub fn takes_value(self) -> bool {
        !matches!(self, ScopeOp::IsNull | ScopeOp::IsNotNull)
    }
}

#[derive(Debug, Clone)]
pub enum ScopeClauseDef {
    Compare {
        attr: String,
        op: ScopeOp,
        value: Option<String>,
    },
    Expr(ast::Expr, ir::Expr),
}

#[derive(Debug, Clone)]
pub struct JoinConditionDef {
    pub source: String,
    pub target: String,
    pub case_sensitive: bool,
}

#[derive(Debug, Clone)]
pub struct FlowDef {
    pub target: String,
    pub expr: ast::Expr,
    /// The lowered expression (attribute slots of the rule's source object type).
    pub ir: ir::Expr,
    pub ty: Ty,
    pub merge: MergeType,
    pub once: bool,
    pub span: Span,
}

/// A resolved sync rule.
#[derive(Debug, Clone)]
pub struct RuleDef {
    pub name: String,
    pub direction: Direction,
    pub connector: String,
    pub source: String,
    /// None for `target *`.
    pub target: Option<String>,
    pub link: LinkType,
    pub precedence: i64,
    pub description: Option<String>,
    pub tag: Option<String>,
    pub password_sync: bool,
    pub disabled: bool,
    pub scope: Vec<Vec<ScopeClauseDef>>,
    pub joins: Vec<Vec<JoinConditionDef>>,
    pub flows: Vec<FlowDef>,
    pub file: FileId,
    pub span: Span,
    pub name_span: Span,
    pub precedence_span: Span,
}

struct Settings<'a> {
    connector: Option<(&'a ast::StrLit, Span)>,
    source: Option<(&'a ast::Ident, Span)>,
    target: Option<(&'a ast::TargetType, Span)>,
    link: Option<(&'a ast::Ident, Span)>,
    precedence: Option<(i64, Span)>,
    description: Option<(&'a ast::StrLit, Span)>,
    tag: Option<(&'a ast::StrLit, Span)>,
    password_sync: Option<Span>,
    disabled: Option<Span>,
}

fn once<T>(
    slot: &mut Option<T>,
    value: T,
    span: &Span,
    what: &str,
    file: FileId,
    diags: &mut Vec<Diagnostic>,
) {
    if slot.is_some() {
        diags.push(
            Diagnostic::new(
                "E0105",
                file,
                span.clone(),
                format!("`{what}` is given twice in this rule"),
            )
            .with_label("repeated setting"),
        );
    } else {
        *slot = Some(value);
    }
}

/// Resolves one rule. Returns None when required settings are missing or unknown.
pub fn resolve_rule(
    rule: &ast::Rule,
    file: FileId,
    schema: &Schema,
    diags: &mut Vec<Diagnostic>,
) -> Option<RuleDef> {
    let mut s = Settings {
        connector: None,
        source: None,
        target: None,
        link: None,
        precedence: None,
        description: None,
        tag: None,
        password_sync: None,
        disabled: None,
    };
    for item in &rule.body {
        let span = item.span();
        match item {
            ast::RuleItem::Connector(c, _) => once(
                &mut s.connector,
                (c, span.clone()),
                &span,
                "connector",
                file,
                diags,
            ),
            ast::RuleItem::Source(n, _) => once(
                &mut s.source,
                (n, span.clone()),
                &span,
                "source",
                file,
                diags,
            ),
            ast::RuleItem::Target(t, _) => once(
                &mut s.target,
                (t, span.clone()),
                &span,
                "target",
                file,
                diags,
            ),
            ast::RuleItem::Link(n, _) => {
                once(&mut s.link, (n, span.clone()), &span, "link", file, diags)
            }
            ast::RuleItem::Precedence(p, _) => once(
                &mut s.precedence,
                (*p, span.clone()),
                &span,
                "precedence",
                file,
                diags,
            ),
            ast::RuleItem::Description(d, _) => once(
                &mut s.description,
                (d, span.clone()),
                &span,
                "description",
                file,
                diags,
            ),
            ast::RuleItem::Tag(t, _) => {
                once(&mut s.tag, (t, span.clone()), &span, "tag", file, diags)
            }
            ast::RuleItem::PasswordSync(_) => once(
                &mut s.password_sync,
                span.clone(),
                &span,
                "password-sync",
                file,
                diags,
            ),
            ast::RuleItem::Disabled(_) => once(
                &mut s.disabled,
                span.clone(),
                &span,
                "disabled",
                file,
                diags,
            ),
            ast::RuleItem::Scope(_) | ast::RuleItem::Join(_) | ast::RuleItem::Flow(_) => {}
        }
    }
    let mut missing = Vec::new();
    if s.connector.is_none() {
        missing.push("connector");
    }
    if s.source.is_none() {
        missing.push("source");
    }
    if s.target.is_none() {
        missing.push("target");
    }
    if s.link.is_none() {
        missing.push("link");
    }
    if s.precedence.is_none() {
        missing.push("precedence");
    }
    if !missing.is_empty() {
        diags.push(
            Diagnostic::new(
                "E0104",
                file,
                rule.name.span.clone(),
                format!(
                    "rule \"{}\" is missing {}",
                    rule.name.value,
                    missing.join(", ")
                ),
            )
            .with_help("every rule needs connector, source, target, link and precedence"),
        );
    }

    let connector: Option<&ConnectorDef> = s.connector.and_then(|(c, _)| {
        let found = schema.connectors.get(&c.value);
        if found.is_none() {
            let mut d = Diagnostic::new(
                "E0102",
                file,
                c.span.clone(),
                format!("unknown connector \"{}\"", c.value),
            )
            .with_label("not declared in the bundle");
            if let Some(h) = suggest(&c.value, schema.connectors.keys().map(String::as_str)) {
                d = d.with_help(h);
            }
            diags.push(d);
        }
        found
    });
    if !schema.has_metaverse {
        diags.push(
            Diagnostic::new(
                "E0111",
                file,
                rule.name.span.clone(),
                "the bundle declares no metaverse",
            )
            .with_help("declare the metaverse object types in a `metaverse { ... }` block"),
        );
        return None;
    }

    let (cs_types, cs_where) = match connector {
        Some(c) => (Some(&c.objects), format!("connector \"{}\"", c.name)),
        None => (None, String::new()),
    };
    let lookup = |name: &ast::Ident, mv: bool, diags: &mut Vec<Diagnostic>| -> Option<&ObjectDef> {
        let (types, place) = if mv {
            (Some(&schema.metaverse), "the metaverse".to_string())
        } else {
            (cs_types, cs_where.clone())
        };
        let types = types?;
        let found = types.get(&name.name);
        if found.is_none() {
            let mut d = Diagnostic::new(
                "E0103",
                file,
                name.span.clone(),
                format!("unknown object type `{}` in {place}", name.name),
            )
            .with_label("not declared");
            if let Some(h) = suggest(&name.name, types.keys().map(String::as_str)) {
                d = d.with_help(h);
            }
            diags.push(d);
        }
        found
    };
    let inbound = rule.direction == Direction::Inbound;
    let source_obj = s
        .source
        .as_ref()
        .and_then(|(n, _)| lookup(n, !inbound, diags));
    let target_obj = match &s.target {
        Some((ast::TargetType::Named(n), _)) => lookup(n, inbound, diags),
        Some((ast::TargetType::Any(sp), _)) => {
            if !inbound {
                diags.push(
                    Diagnostic::new(
                        "E0103",
                        file,
                        sp.clone(),
                        "`target *` is only allowed on inbound rules",
                    )
                    .with_help("an outbound rule names the connector object type it writes"),
                );
            }
            None
        }
        None => None,
    };
    let target_any = matches!(&s.target, Some((ast::TargetType::Any(_), _)));

    let link = s.link.as_ref().and_then(|(n, _)| {
        let l = LinkType::parse(&n.name);
        match l {
            None => {
                let mut d = Diagnostic::new(
                    "E0106",
                    file,
                    n.span.clone(),
                    format!("unknown link type `{}`", n.name),
                );
                d = d.with_help(
                    suggest(&n.name, ["join", "stickyjoin", "joinnoflow", "provision"])
                        .unwrap_or_else(|| {
                            "link types are join, stickyjoin, joinnoflow and provision".into()
                        }),
                );
                diags.push(d);
            }
            Some(LinkType::StickyJoin) if !inbound => diags.push(
                Diagnostic::new(
                    "E0110",
                    file,
                    n.span.clone(),
                    "`stickyjoin` applies to inbound rules only",
                )
                .with_help("outbound rules link with `join` or `provision`"),
            ),
            Some(_) => {}
        }
        l
    });

    let mut params = Vec::new();
    if let Some(c) = connector {
        params.push(&c.params);
    }
    params.push(&schema.params);
    let env = Env {
        file,
        object: source_obj,
        params,
    };

    let mut scope = Vec::new();
    let mut joins = Vec::new();
    let mut flows: Vec<FlowDef> = Vec::new();
    let mut flow_targets: BTreeMap<String, Span> = BTreeMap::new();
    for item in &rule.body {
        match item {
            ast::RuleItem::Scope(g) => {
                let mut group = Vec::new();
                for c in &g.clauses {
                    if let Some(def) = scope_clause(c, &env, diags) {
                        group.push(def);
                    }
                }
                scope.push(group);
            }
            ast::RuleItem::Join(g) => {
                let mut group = Vec::new();
                for c in &g.conditions {
                    let src = source_obj.and_then(|o| attr_of(o, &c.source, file, diags));
                    let tgt = if target_any {
                        let found = schema.any_metaverse_attr(&c.target.name);
                        if found.is_none() {
                            diags.push(Diagnostic::new(
                                "E0201",
                                file,
                                c.target.span.clone(),
                                format!("unknown metaverse attribute `{}`", c.target.name),
                            ));
                        }
                        found
                    } else {
                        target_obj.and_then(|o| attr_of(o, &c.target, file, diags))
                    };
                    if let (Some(a), Some(b)) = (src, tgt)
                        && !a.ty().with_multi(false).fits(b.base)
                    {
                        diags.push(
                            Diagnostic::new(
                                "E0310",
                                file,
                                c.span.clone(),
                                format!(
                                    "join compares `{}` ({}) with `{}` ({})",
                                    a.name,
                                    a.base.schema_name(),
                                    b.name,
                                    b.base.schema_name()
                                ),
                            )
                            .with_label("incompatible types"),
                        );
                    }
                    group.push(JoinConditionDef {
                        source: c.source.name.clone(),
                        target: c.target.name.clone(),
                        case_sensitive: c.case_sensitive,
                    });
                }
                joins.push(group);
            }
            ast::RuleItem::Flow(f) => {
                let (ty, lowered) = lower_expr(&env, &f.expr, diags);
                let name = &f.target.name;
                if let Some(prev) = flow_targets.get(name) {
                    diags.push(
                        Diagnostic::new(
                            "E0306",
                            file,
                            f.target.span.clone(),
                            format!("`{name}` is a flow target twice in this rule"),
                        )
                        .with_related(
                            file,
                            prev.clone(),
                            "first flow to it",
                        ),
                    );
                } else {
                    flow_targets.insert(name.clone(), f.target.span.clone());
                }
                if name == "dn" {
                    if inbound {
                        diags.push(
                            Diagnostic::new("E0309", file, f.target.span.clone(), "`dn` can only be set by outbound rules")
                                .with_help("inbound rules write metaverse attributes; the DN comes from the connected directory"),
                        );
                    } else if !ty.fits(Base::Str) || ty.multi {
                        diags.push(
                            Diagnostic::new(
                                "E0208",
                                file,
                                f.expr.span.clone(),
                                format!("the `dn` flow must produce a single string, found {ty}"),
                            )
                            .with_label("not a DN"),
                        );
                    }
                } else if let Some(t) = target_obj {
                    if let Some(a) = attr_of(t, &f.target, file, diags) {
                        check_flow_type(f, ty, a, file, diags);
                    }
                } else if target_any {
                    diags.push(Diagnostic::new(
                        "E0201",
                        file,
                        f.target.span.clone(),
                        "a rule with `target *` cannot have flows: the target object type is not known",
                    ));
                }
                flows.push(FlowDef {
                    target: name.clone(),
                    expr: f.expr.clone(),
                    ir: lowered,
                    ty,
                    merge: f.merge,
                    once: f.once,
                    span: f.span.clone(),
                });
            }
            _ => {}
        }
    }

    let link = link?;
    if !inbound && link == LinkType::Provision && !flows.iter().any(|f| f.target == "dn") {
        diags.push(
            Diagnostic::new(
                "E0305",
                file,
                rule.name.span.clone(),
                "an outbound provision rule needs a `dn` flow",
            )
            .with_help("add `flow dn <- ...` computing the DN of the objects it creates"),
        );
    }
    if link == LinkType::JoinNoFlow
        && let Some(f) = flows.first()
    {
        diags.push(
            Diagnostic::new(
                "W0311",
                file,
                f.span.clone(),
                format!(
                    "rule \"{}\" links with `joinnoflow`: its flows are never applied",
                    rule.name.value
                ),
            )
            .with_help("use `link join` for a rule that joins and flows, or remove the flows"),
        );
    }
    if link == LinkType::JoinNoFlow && joins.is_empty() {
        diags.push(
            Diagnostic::new(
                "W0602",
                file,
                rule.name.span.clone(),
                format!(
                    "rule \"{}\" links with `joinnoflow` but has no join conditions",
                    rule.name.value
                ),
            )
            .with_help("a joinnoflow rule only joins: without join conditions it has no effect"),
        );
    }
    if flows.is_empty() && joins.is_empty() && link == LinkType::Join {
        diags.push(
            Diagnostic::new(
                "W0602",
                file,
                rule.name.span.clone(),
                format!(
                    "rule \"{}\" has no flows and no join conditions",
                    rule.name.value
                ),
            )
            .with_help("a join rule without flows or join conditions has no effect"),
        );
    }
    let (precedence, precedence_span) = s.precedence.clone()?;
    Some(RuleDef {
        name: rule.name.value.clone(),
        direction: rule.direction,
        connector: connector?.name.clone(),
        source: s.source?.0.name.clone(),
        target: match s.target? {
            (ast::TargetType::Named(n), _) => Some(n.name.clone()),
            (ast::TargetType::Any(_), _) => None,
        },
        link,
        precedence,
        description: s.description.map(|(d, _)| d.value.clone()),
        tag: s.tag.map(|(t, _)| t.value.clone()),
        password_sync: s.password_sync.is_some(),
        disabled: s.disabled.is_some(),
        scope,
        joins,
        flows,
        file,
        span: rule.span.clone(),
        name_span: rule.name.span.clone(),
        precedence_span,
    })
}

fn attr_of<'a>(
    obj: &'a ObjectDef,
    name: &ast::Ident,
    file: FileId,
    diags: &mut Vec<Diagnostic>,
) -> Option<&'a AttrDef> {
    let found = obj.attr(&name.name);
    if found.is_none() {
        let mut d = Diagnostic::new(
            "E0201",
            file,
            name.span.clone(),
            format!(
                "unknown attribute `{}` of object type `{}`",
                name.name, obj.name
            ),
        )
        .with_label("not declared in the schema");
        if let Some(h) = suggest(&name.name, obj.attrs.keys().map(String::as_str)) {
            d = d.with_help(h);
        }
        diags.push(d);
    }
    found
}

fn check_flow_type(
    f: &ast::Flow,
    ty: Ty,
    target: &AttrDef,
    file: FileId,
    diags: &mut Vec<Diagnostic>,
) {
    if !ty.fits(target.base) {
        diags.push(
            Diagnostic::new(
                "E0208",
                file,
                f.expr.span.clone(),
                format!(
                    "this flow produces {} but `{}` is {}",
                    ty.with_multi(false),
                    target.name,
                    target.base.schema_name()
                ),
            )
            .with_label(format!("expected {}", target.base.stdlib_name()))
            .with_related(target.file, target.span.clone(), "attribute declared here"),
        );
    } else if ty.multi && !target.multi && matches!(f.expr.kind, ast::ExprKind::Attr(_)) {
        diags.push(
            Diagnostic::new(
                "W0604",
                file,
                f.expr.span.clone(),
                format!("multi-valued attribute flows directly into single-valued `{}`", target.name),
            )
            .with_label("multi-valued")
            .with_help("the engine keeps the first value, as Entra does; use Item(...) to choose explicitly")
            .with_related(target.file, target.span.clone(), "attribute declared here"),
        );
    } else if ty.multi && !target.multi {
        diags.push(
            Diagnostic::new(
                "E0209",
                file,
                f.expr.span.clone(),
                format!(
                    "this flow produces several values but `{}` is single-valued",
                    target.name
                ),
            )
            .with_label("multi-valued")
            .with_help("pick one value with Item(...) or Join(...)")
            .with_related(target.file, target.span.clone(), "attribute declared here"),
        );
    }
}

fn scope_clause(
    c: &ast::ScopeClause,
    env: &Env<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<ScopeClauseDef> {
    let file = env.file;
    match c {
        ast::ScopeClause::Expr(e, _) => {
            let (ty, lowered) = lower_expr(env, e, diags);
            if !(ty.is_open() || ty.base == Base::Bool) {
                diags.push(
                    Diagnostic::new(
                        "E0214",
                        file,
                        e.span.clone(),
                        format!("a scope expression must be a boolean, found {ty}"),
                    )
                    .with_label("expected a condition"),
                );
            }
            Some(ScopeClauseDef::Expr(e.clone(), lowered))
        }
        ast::ScopeClause::Compare {
            attr,
            op,
            value,
            span,
        } => {
            if let Some(o) = env.object {
                attr_of(o, attr, file, diags);
            }
            let Some(parsed) = ScopeOp::parse(&op.name) else {
                let mut d = Diagnostic::new(
                    "E0307",
                    file,
                    op.span.clone(),
                    format!("unknown scope operator `{}`", op.name),
                );
                if let Some(h) = suggest(&op.name, SCOPE_OPERATORS.iter().map(|(n, _)| *n)) {
                    d = d.with_help(h);
                }
                diags.push(d);
                return None;
            };
            match (parsed.takes_value(), value) {
                (true, None) => diags.push(
                    Diagnostic::new(
                        "E0308",
                        file,
                        span.clone(),
                        format!("`{}` needs a value", op.name),
                    )
                    .with_label("value missing"),
                ),
                (false, Some(_)) => diags.push(
                    Diagnostic::new(
                        "E0308",
                        file,
                        span.clone(),
                        format!("`{}` takes no value", op.name),
                    )
                    .with_label("remove the value"),
                ),
                _ => {}
            }
            Some(ScopeClauseDef::Compare {
                attr: attr.name.clone(),
                op: parsed,
                value: value.as_ref().map(|v| match v {
                    ast::ScopeValue::Str(s) => s.value.clone(),
                    ast::ScopeValue::Num(n, _) => n.to_string(),
                }),
            })
        }
    }
}
