//! A compact, indented dump of the AST, used by the syntax snapshot tests and `idflow parse`.
//!
//! Consumes: [`ast::File`]. Produces: text with one node per line and its byte span, with
//! expressions in fully parenthesised prefix form so precedence is visible.

use super::ast::*;
use std::fmt::Write;

pub fn file(f: &File) -> String {
    let mut out = String::new();
    for item in &f.items {
        self::item(&mut out, item);
    }
    out
}

fn line(
    out: &mut String,
    depth: usize,
    text: impl std::fmt::Display,
    span: &std::ops::Range<usize>,
) {
    let _ = writeln!(
        out,
        "{:indent$}{text} @{}..{}",
        "",
        span.start,
        span.end,
        indent = depth * 2
    );
}

fn item(out: &mut String, item: &Item) {
    match item {
        Item::Bundle(s, span) => line(out, 0, format!("bundle {:?}", s.value), span),
        Item::Param(p) => param(out, 0, p),
        Item::Metaverse(m) => {
            line(out, 0, "metaverse", &m.span);
            for o in &m.objects {
                object(out, 1, o);
            }
        }
        Item::Connector(c) => {
            line(
                out,
                0,
                format!("connector {:?} {}", c.name.value, c.kind.name),
                &c.span,
            );
            for m in &c.members {
                match m {
                    ConnectorMember::Param(p) => param(out, 1, p),
                    ConnectorMember::Object(o) => object(out, 1, o),
                }
            }
        }
        Item::Rule(r) => {
            line(
                out,
                0,
                format!("{} rule {:?}", r.direction.as_str(), r.name.value),
                &r.span,
            );
            for it in &r.body {
                rule_item(out, it);
            }
        }
        Item::Test(t) => {
            line(out, 0, format!("test {:?}", t.name.value), &t.span);
            for s in &t.steps {
                let text = match s {
                    TestStep::Given {
                        connector,
                        object_type,
                        dn,
                        attrs,
                        ..
                    } => format!(
                        "given {:?} {} {:?} [{}]",
                        connector.value,
                        object_type.name,
                        dn.value,
                        attrs_text(attrs)
                    ),
                    TestStep::Delete {
                        connector,
                        object_type,
                        dn,
                        ..
                    } => {
                        format!(
                            "delete {:?} {} {:?}",
                            connector.value, object_type.name, dn.value
                        )
                    }
                    TestStep::Sync(_) => "sync".into(),
                    TestStep::ExpectMetaverse {
                        negated,
                        object_type,
                        key,
                        attrs,
                        ..
                    } => format!(
                        "expect{} metaverse {} where {} [{}]",
                        if *negated { " no" } else { "" },
                        object_type.name,
                        attrs_text(std::slice::from_ref(key)),
                        attrs_text(attrs)
                    ),
                    TestStep::ExpectExport {
                        connector,
                        op,
                        object_type,
                        dn,
                        attrs,
                        ..
                    } => format!(
                        "expect export {:?} {} {} {:?} [{}]",
                        connector.value,
                        op.name,
                        object_type.name,
                        dn.as_ref().map(|d| d.value.as_str()),
                        attrs_text(attrs)
                    ),
                    TestStep::ExpectNoExport { connector, .. } => {
                        format!("expect no export {:?}", connector.value)
                    }
                    TestStep::ExpectError { category, .. } => {
                        format!("expect error {:?}", category.value)
                    }
                };
                line(out, 1, text, &s.span());
            }
        }
    }
}

fn attrs_text(attrs: &[TestAttr]) -> String {
    attrs
        .iter()
        .map(|a| format!("{}={}", a.name.name, value_text(&a.value)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn value_text(v: &TestValue) -> String {
    match v {
        TestValue::Str(s, _) => format!("{s:?}"),
        TestValue::Num(n, _) => n.to_string(),
        TestValue::Word(w) => w.name.clone(),
        TestValue::Absent(_) => "absent".into(),
        TestValue::Typed(t, s) => format!("{}({:?})", t.name, s.value),
        TestValue::List(items, _) => {
            format!(
                "[{}]",
                items.iter().map(value_text).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

fn param(out: &mut String, depth: usize, p: &ParamDecl) {
    let ty =
        p.ty.as_ref()
            .map(|t| format!(": {}", t.name))
            .unwrap_or_default();
    line(out, depth, format!("param {}{ty}", p.name.name), &p.span);
}

fn object(out: &mut String, depth: usize, o: &ObjectType) {
    let anchor = o
        .anchor
        .as_ref()
        .map(|a| format!(" anchor {}", a.name))
        .unwrap_or_default();
    line(
        out,
        depth,
        format!("object {}{anchor}", o.name.name),
        &o.span,
    );
    for a in &o.attrs {
        let r = a
            .ref_target
            .as_ref()
            .map(|t| format!("({})", t.name))
            .unwrap_or_default();
        let m = if a.multi { " multi" } else { "" };
        let u = if a.unique { " unique" } else { "" };
        line(
            out,
            depth + 1,
            format!("{} {}{r}{m}{u}", a.name.name, a.ty.name),
            &a.span,
        );
    }
}

fn rule_item(out: &mut String, it: &RuleItem) {
    let span = it.span();
    match it {
        RuleItem::Connector(s, _) => line(out, 1, format!("connector {:?}", s.value), &span),
        RuleItem::Source(n, _) => line(out, 1, format!("source {}", n.name), &span),
        RuleItem::Target(TargetType::Named(n), _) => {
            line(out, 1, format!("target {}", n.name), &span)
        }
        RuleItem::Target(TargetType::Any(_), _) => line(out, 1, "target *", &span),
        RuleItem::Link(n, _) => line(out, 1, format!("link {}", n.name), &span),
        RuleItem::Precedence(n, _) => line(out, 1, format!("precedence {n}"), &span),
        RuleItem::Description(s, _) => line(out, 1, format!("description {:?}", s.value), &span),
        RuleItem::Tag(s, _) => line(out, 1, format!("tag {:?}", s.value), &span),
        RuleItem::PasswordSync(_) => line(out, 1, "password-sync", &span),
        RuleItem::Disabled(_) => line(out, 1, "disabled", &span),
        RuleItem::Scope(g) => {
            line(out, 1, "scope", &span);
            for c in &g.clauses {
                match c {
                    ScopeClause::Compare {
                        attr,
                        op,
                        value,
                        span,
                    } => {
                        let v = match value {
                            Some(ScopeValue::Str(s)) => format!(" {:?}", s.value),
                            Some(ScopeValue::Num(n, _)) => format!(" {n}"),
                            None => String::new(),
                        };
                        line(
                            out,
                            2,
                            format!("{} {}{v}", attr.name, super::printer::operator(&op.name)),
                            span,
                        );
                    }
                    ScopeClause::Expr(e, span) => line(out, 2, format!("expr {}", expr(e)), span),
                }
            }
        }
        RuleItem::Join(g) => {
            line(out, 1, "join", &span);
            for c in &g.conditions {
                let cs = if c.case_sensitive {
                    " case-sensitive"
                } else {
                    ""
                };
                line(
                    out,
                    2,
                    format!("{} = {}{cs}", c.source.name, c.target.name),
                    &c.span,
                );
            }
        }
        RuleItem::Flow(f) => {
            let once = if f.once { " once" } else { "" };
            line(
                out,
                1,
                format!(
                    "flow {} <- {} {}{once}",
                    f.target.name,
                    expr(&f.expr),
                    f.merge.as_str()
                ),
                &span,
            );
        }
    }
}

/// Prefix form of an expression: `(& [a] "x")`.
pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Str { value, .. } => format!("{value:?}"),
        ExprKind::Num { value, .. } => value.to_string(),
        ExprKind::Const(c) => c.as_str().to_string(),
        ExprKind::Name(n) => n.clone(),
        ExprKind::Attr(a) => format!("[{a}]"),
        ExprKind::Param(p) => format!("%{p}%"),
        ExprKind::Var(v) => format!("${v}"),
        ExprKind::Call { name, args } => {
            let mut s = format!("({}", name.name);
            for a in args {
                s.push(' ');
                s.push_str(&expr(a));
            }
            s.push(')');
            s
        }
        ExprKind::Binary { op, lhs, rhs } => {
            format!("({} {} {})", op.as_str(), expr(lhs), expr(rhs))
        }
        ExprKind::Neg(x) => format!("(neg {})", expr(x)),
        ExprKind::Paren(x) => expr(x),
    }
}
