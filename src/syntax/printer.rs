//! The canonical printer behind `idflow fmt`.
//!
//! Consumes: a parsed file (AST + comments) and its source text. Produces: canonically formatted
//! text. Every comment is kept: a comment on the line of an item stays at its end, any other
//! comment is printed on its own line before the next item. Single blank lines between items of
//! a block are kept; top-level items are separated by one blank line. Printing is idempotent.
//!
//! Expressions (flows and scope expressions) are printed on one line when the line fits in the
//! width (100 characters by default) and holds no comment. Otherwise they are broken, outside
//! in, and each part that fits on its line stays whole:
//!
//! - a call puts each argument on a line of its own, one level deeper than the line the call
//!   starts on, with the comma after it, and the closing parenthesis on a line of its own at
//!   the call's level;
//! - a chain of operators of one binding level (`a || b || c`, `x & y & z`) puts each operator
//!   with its right operand on a line of its own, one level deeper;
//! - parentheses put their content on lines of their own, one level deeper.
//!
//! A comment inside a broken expression stays where it was written: at the end of the line of
//! the part before it, or on a line of its own before the part after it. Comments before the
//! expression (between `flow` and the expression) are printed above the item.

use super::Parsed;
use super::ast::*;
use super::lexer::Comment;
use super::token::escape;

const INDENT: &str = "  ";

/// The line width long expressions are wrapped at, unless told otherwise.
pub const DEFAULT_WIDTH: usize = 100;

/// Formats a parsed file at the default width.
pub fn print(parsed: &Parsed, src: &str) -> String {
    print_width(parsed, src, DEFAULT_WIDTH)
}

/// Formats a parsed file, wrapping expressions at `width` characters.
pub fn print_width(parsed: &Parsed, src: &str, width: usize) -> String {
    let mut p = Printer {
        out: String::new(),
        comments: &parsed.comments,
        next: 0,
        src,
        width,
        expr_end: 0,
    };
    let mut prev_end: Option<usize> = None;
    for item in &parsed.file.items {
        let span = item.span();
        if prev_end.is_some() {
            p.out.push('\n');
        }
        p.leading(span.start, 0, prev_end);
        p.item(item);
        p.trailing(span.end);
        prev_end = Some(span.end);
    }
    p.leading(usize::MAX, 0, prev_end.or(Some(0)));
    // Exactly one newline at the end, nothing for an empty file.
    let trimmed = p.out.trim_end().to_string();
    if trimmed.is_empty() {
        String::new()
    } else {
        trimmed + "\n"
    }
}

struct Printer<'a> {
    out: String,
    comments: &'a [Comment],
    next: usize,
    src: &'a str,
    width: usize,
    /// In a broken expression: where the last printed part ends in the source.
    expr_end: usize,
}

impl Printer<'_> {
    fn line(&mut self, depth: usize, text: &str) {
        for _ in 0..depth {
            self.out.push_str(INDENT);
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// True when the source between `a` and `b` holds an empty line.
    fn blank_between(&self, a: usize, b: usize) -> bool {
        let (a, b) = (a.min(self.src.len()), b.min(self.src.len()));
        if a >= b {
            return false;
        }
        let gap = &self.src[a..b];
        let mut newlines = 0;
        for c in gap.chars() {
            if c == '\n' {
                newlines += 1;
                if newlines >= 2 {
                    return true;
                }
            } else if !c.is_whitespace() {
                newlines = 0;
            }
        }
        false
    }

    /// Prints the comments that start before `pos` on lines of their own; keeps one blank line
    /// where the source had one (inside blocks, `prev_end` is the end of the previous item).
    fn leading(&mut self, pos: usize, depth: usize, prev_end: Option<usize>) {
        self.leading_until(pos, pos, depth, prev_end);
    }

    /// Like [`Self::leading`], but prints the comments that start before `until` (which may lie
    /// inside the next item: comments inside a one-line item are hoisted above it).
    fn leading_until(&mut self, pos: usize, until: usize, depth: usize, prev_end: Option<usize>) {
        let mut cursor = prev_end;
        while let Some(c) = self.comments.get(self.next) {
            if c.span.start >= until {
                break;
            }
            if c.span.start >= pos {
                // A comment inside the item: keep the blank-line logic relative to the item.
                let text = c.text.clone();
                self.line(depth, &text);
                self.next += 1;
                continue;
            }
            if let Some(prev) = cursor
                && depth > 0
                && self.blank_between(prev, c.span.start)
            {
                self.out.push('\n');
            }
            let text = c.text.clone();
            self.line(depth, &text);
            cursor = Some(c.span.end);
            self.next += 1;
        }
        if pos != usize::MAX
            && depth > 0
            && let Some(prev) = cursor
            && self.blank_between(prev, pos)
        {
            self.out.push('\n');
        }
    }

    /// Appends a comment that starts on the same source line right after `end`.
    fn trailing(&mut self, end: usize) {
        if let Some(c) = self.comments.get(self.next) {
            let gap = self.src.get(end..c.span.start).unwrap_or("\n");
            if c.span.start >= end && !gap.contains('\n') {
                if self.out.ends_with('\n') {
                    self.out.pop();
                }
                self.out.push(' ');
                self.out.push_str(&c.text);
                self.out.push('\n');
                self.next += 1;
            }
        }
    }

    /// Prints the items of a block, then its closing brace. Items are printed on one line
    /// unless they hold a block of their own, so comments inside a one-line item (a multi-line
    /// expression) are printed above it.
    fn block<T: Layout>(
        &mut self,
        depth: usize,
        items: &[T],
        block_end: usize,
        span: impl Fn(&T) -> std::ops::Range<usize>,
        mut print: impl FnMut(&mut Self, &T),
    ) {
        let mut prev: Option<usize> = None;
        for it in items {
            let s = span(it);
            let until = match it.keeps_comments_from() {
                Some(at) => at,
                None if it.one_line() => s.end,
                None => s.start,
            };
            self.leading_until(s.start, until, depth + 1, prev);
            print(self, it);
            self.trailing(s.end);
            prev = Some(s.end);
        }
        self.leading(block_end.saturating_sub(1), depth + 1, prev);
        self.line(depth, "}");
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Bundle(s, _) => self.line(0, &format!("bundle {}", lit(s))),
            Item::Param(p) => self.line(0, &param(p)),
            Item::Metaverse(m) => {
                self.line(0, "metaverse {");
                self.block(
                    0,
                    &m.objects,
                    m.span.end,
                    |o| o.span.clone(),
                    |p, o| p.object(1, o),
                );
            }
            Item::Connector(c) => {
                self.line(0, &format!("connector {} {} {{", lit(&c.name), c.kind.name));
                self.block(
                    0,
                    &c.members,
                    c.span.end,
                    |m| m.span(),
                    |p, m| match m {
                        ConnectorMember::Param(d) => p.line(1, &param(d)),
                        ConnectorMember::Object(o) => p.object(1, o),
                    },
                );
            }
            Item::Rule(r) => self.rule(r),
            Item::Test(t) => {
                self.line(0, &format!("test {} {{", lit(&t.name)));
                self.block(0, &t.steps, t.span.end, |s| s.span(), |p, s| p.step(1, s));
            }
        }
    }

    fn object(&mut self, depth: usize, o: &ObjectType) {
        let anchor = o
            .anchor
            .as_ref()
            .map(|a| format!(" anchor {}", a.name))
            .unwrap_or_default();
        let head = format!("object {}{anchor}", o.name.name);
        if o.attrs.is_empty() && !self.has_comment_in(&o.span) {
            self.line(depth, &format!("{head} {{}}"));
            return;
        }
        self.line(depth, &format!("{head} {{"));
        let width = o
            .attrs
            .iter()
            .map(|a| a.name.name.chars().count())
            .max()
            .unwrap_or(0);
        self.block(
            depth,
            &o.attrs,
            o.span.end,
            |a| a.span.clone(),
            |p, a| {
                let r = a
                    .ref_target
                    .as_ref()
                    .map(|t| format!("({})", t.name))
                    .unwrap_or_default();
                let m = if a.multi { " multi" } else { "" };
                let u = if a.unique { " unique" } else { "" };
                let text = format!("{:width$} {}{r}{m}{u}", a.name.name, a.ty.name);
                p.line(depth + 1, &text);
            },
        );
    }

    fn has_comment_in(&self, span: &std::ops::Range<usize>) -> bool {
        self.comments[self.next..]
            .iter()
            .any(|c| c.span.start >= span.start && c.span.end <= span.end)
    }

    fn rule(&mut self, r: &Rule) {
        self.line(
            0,
            &format!("{} rule {} {{", r.direction.as_str(), lit(&r.name)),
        );
        let width = r
            .body
            .iter()
            .filter_map(|i| match i {
                RuleItem::Flow(f) => Some(f.target.name.chars().count()),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        self.block(
            0,
            &r.body,
            r.span.end,
            |i| i.span(),
            |p, it| p.rule_item(it, width),
        );
    }

    fn rule_item(&mut self, it: &RuleItem, flow_width: usize) {
        let d = 1;
        match it {
            RuleItem::Connector(s, _) => self.line(d, &format!("connector {}", lit(s))),
            RuleItem::Source(n, _) => self.line(d, &format!("source {}", n.name)),
            RuleItem::Target(TargetType::Named(n), _) => {
                self.line(d, &format!("target {}", n.name))
            }
            RuleItem::Target(TargetType::Any(_), _) => self.line(d, "target *"),
            RuleItem::Link(n, _) => self.line(d, &format!("link {}", n.name)),
            RuleItem::Precedence(n, _) => self.line(d, &format!("precedence {n}")),
            RuleItem::Description(s, _) => self.line(d, &format!("description {}", lit(s))),
            RuleItem::Tag(s, _) => self.line(d, &format!("tag {}", lit(s))),
            RuleItem::PasswordSync(_) => self.line(d, "password-sync"),
            RuleItem::Disabled(_) => self.line(d, "disabled"),
            RuleItem::Scope(g) => {
                self.line(d, "scope {");
                let aw = g
                    .clauses
                    .iter()
                    .filter_map(|c| match c {
                        ScopeClause::Compare { attr, .. } => Some(attr.name.chars().count()),
                        ScopeClause::Expr(..) => None,
                    })
                    .max()
                    .unwrap_or(0);
                let ow = g
                    .clauses
                    .iter()
                    .filter_map(|c| match c {
                        ScopeClause::Compare {
                            op, value: Some(_), ..
                        } => Some(operator(&op.name).len()),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0);
                self.block(
                    d,
                    &g.clauses,
                    g.span.end,
                    |c| c.span(),
                    |p, c| {
                        let text = match c {
                            ScopeClause::Compare {
                                attr, op, value, ..
                            } => match value {
                                Some(v) => {
                                    format!(
                                        "{:aw$} {:ow$} {}",
                                        attr.name,
                                        operator(&op.name),
                                        scope_value(v)
                                    )
                                }
                                None => format!("{:aw$} {}", attr.name, operator(&op.name)),
                            },
                            ScopeClause::Expr(e, span) => {
                                p.wrapped(d + 1, "(", e, ")", span.end);
                                return;
                            }
                        };
                        p.line(d + 1, &text);
                    },
                );
            }
            RuleItem::Join(g) => {
                self.line(d, "join {");
                self.block(
                    d,
                    &g.conditions,
                    g.span.end,
                    |c| c.span.clone(),
                    |p, c| {
                        let cs = if c.case_sensitive {
                            " case-sensitive"
                        } else {
                            ""
                        };
                        p.line(d + 1, &format!("{} = {}{cs}", c.source.name, c.target.name));
                    },
                );
            }
            RuleItem::Flow(f) => {
                let head = format!("flow {:flow_width$} <- ", f.target.name);
                let mut tail = String::new();
                if f.merge != MergeType::Update {
                    tail.push(' ');
                    tail.push_str(f.merge.as_str());
                }
                if f.once {
                    tail.push_str(" once");
                }
                self.wrapped(d, &head, &f.expr, &tail, f.span.end);
            }
        }
    }

    /// Prints `head`, the expression and `tail` at `depth`: on one line when it fits and holds
    /// no comment, else broken as the module documentation describes. `end` is where the
    /// item ends in the source: a comment between the expression and it puts `tail` on a line
    /// of its own.
    fn wrapped(&mut self, depth: usize, head: &str, e: &Expr, tail: &str, end: usize) {
        for _ in 0..depth {
            self.out.push_str(INDENT);
        }
        self.out.push_str(head);
        self.expr_end = e.span.start;
        self.layout(e, depth, tail.chars().count());
        let after = e.span.end..end;
        if self.comments[self.next..]
            .first()
            .is_some_and(|c| c.span.start >= after.start && c.span.start < after.end)
        {
            // A closing parenthesis lines up with its line; a flow's `merge` or `once` is a
            // continuation.
            let tail_depth = if tail.starts_with(' ') {
                depth + 1
            } else {
                depth
            };
            self.break_line(tail_depth, end.saturating_sub(1));
            self.out.push_str(tail.trim_start());
        } else {
            self.out.push_str(tail);
        }
        self.out.push('\n');
    }

    /// The column (in characters) where the next character of the current line goes.
    fn column(&self) -> usize {
        let line = self.out.rsplit('\n').next().unwrap_or("");
        line.chars().count()
    }

    /// Whether a comment not yet printed lies inside `span`.
    fn comment_inside(&self, span: &std::ops::Range<usize>) -> bool {
        self.comments[self.next..]
            .first()
            .is_some_and(|c| c.span.start > span.start && c.span.start < span.end)
    }

    /// Ends the current line of a broken expression and starts the next at `depth`. The
    /// comments before `next` (a source position) are printed first: one that was on the line
    /// of the part just printed stays at its end, the others get lines of their own.
    fn break_line(&mut self, depth: usize, next: usize) {
        while let Some(c) = self.comments.get(self.next) {
            if c.span.start >= next {
                break;
            }
            let gap = self
                .src
                .get(self.expr_end.min(c.span.start)..c.span.start)
                .unwrap_or("\n");
            if gap.contains('\n') || self.out.ends_with('\n') {
                if !self.out.ends_with('\n') {
                    self.out.push('\n');
                }
                for _ in 0..depth {
                    self.out.push_str(INDENT);
                }
            } else {
                self.out.push(' ');
            }
            self.out.push_str(&c.text);
            self.out.push('\n');
            self.expr_end = c.span.end;
            self.next += 1;
        }
        if !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        for _ in 0..depth {
            self.out.push_str(INDENT);
        }
    }

    /// Prints an expression from the current column; `depth` is the level of the line it
    /// starts on and `tail` the number of characters that will follow it on its last line.
    fn layout(&mut self, e: &Expr, depth: usize, tail: usize) {
        let flat = expr(e);
        let fits = self.column() + flat.chars().count() + tail <= self.width;
        if fits && !self.comment_inside(&e.span) {
            self.out.push_str(&flat);
            self.expr_end = e.span.end;
            return;
        }
        match &e.kind {
            ExprKind::Call { name, args } if !args.is_empty() => {
                self.out.push_str(&name.name);
                self.out.push('(');
                self.expr_end = name.span.end;
                for (i, a) in args.iter().enumerate() {
                    let last = i + 1 == args.len();
                    self.break_line(depth + 1, a.span.start);
                    self.layout(a, depth + 1, usize::from(!last));
                    if !last {
                        self.out.push(',');
                    }
                }
                self.break_line(depth, e.span.end - 1);
                self.out.push(')');
                self.expr_end = e.span.end;
            }
            ExprKind::Binary { op, .. } => {
                // The chain of operators of this binding level along the left side.
                let level = op.level();
                let mut rest: Vec<(BinOp, &Expr)> = Vec::new();
                let mut first = e;
                while let ExprKind::Binary { op, lhs, rhs } = &first.kind {
                    if op.level() != level {
                        break;
                    }
                    rest.push((*op, rhs));
                    first = lhs;
                }
                rest.reverse();
                self.layout(first, depth, 0);
                let n = rest.len();
                for (i, (op, operand)) in rest.into_iter().enumerate() {
                    self.break_line(depth + 1, operand.span.start);
                    self.out.push_str(op.as_str());
                    self.out.push(' ');
                    let t = if i + 1 == n { tail } else { 0 };
                    self.layout(operand, depth + 1, t);
                }
            }
            ExprKind::Paren(inner) => {
                self.out.push('(');
                self.expr_end = e.span.start + 1;
                self.break_line(depth + 1, inner.span.start);
                self.layout(inner, depth + 1, 0);
                self.break_line(depth, e.span.end - 1);
                self.out.push(')');
                self.expr_end = e.span.end;
            }
            ExprKind::Neg(x) => {
                self.out.push('-');
                self.layout(x, depth, tail);
            }
            _ => {
                self.out.push_str(&flat);
                self.expr_end = e.span.end;
            }
        }
    }

    fn step(&mut self, depth: usize, s: &TestStep) {
        match s {
            TestStep::Given {
                connector,
                object_type,
                dn,
                attrs,
                span,
            } => {
                let head = format!("given {} {} {}", lit(connector), object_type.name, lit(dn));
                self.attr_block(depth, head, attrs, span);
            }
            TestStep::Delete {
                connector,
                object_type,
                dn,
                ..
            } => self.line(
                depth,
                &format!("delete {} {} {}", lit(connector), object_type.name, lit(dn)),
            ),
            TestStep::Sync(_) => self.line(depth, "sync"),
            TestStep::ExpectMetaverse {
                negated,
                object_type,
                key,
                attrs,
                span,
            } => {
                let head = format!(
                    "expect {}metaverse {} where {} = {}",
                    if *negated { "no " } else { "" },
                    object_type.name,
                    key.name.name,
                    test_value(&key.value)
                );
                if *negated {
                    self.line(depth, &head);
                } else {
                    self.attr_block(depth, head, attrs, span);
                }
            }
            TestStep::ExpectExport {
                connector,
                op,
                object_type,
                dn,
                attrs,
                span,
            } => {
                let mut head = format!(
                    "expect export {} {} {}",
                    lit(connector),
                    op.name,
                    object_type.name
                );
                if let Some(dn) = dn {
                    head.push(' ');
                    head.push_str(&lit(dn));
                }
                if attrs.is_empty() && !self.has_comment_in(span) {
                    self.line(depth, &head);
                } else {
                    self.attr_block(depth, head, attrs, span);
                }
            }
            TestStep::ExpectNoExport { connector, .. } => {
                self.line(depth, &format!("expect no export {}", lit(connector)))
            }
            TestStep::ExpectError { category, .. } => {
                self.line(depth, &format!("expect error {}", lit(category)))
            }
        }
    }

    fn attr_block(
        &mut self,
        depth: usize,
        head: String,
        attrs: &[TestAttr],
        span: &std::ops::Range<usize>,
    ) {
        if attrs.is_empty() && !self.has_comment_in(span) {
            self.line(depth, &format!("{head} {{}}"));
            return;
        }
        self.line(depth, &format!("{head} {{"));
        let width = attrs
            .iter()
            .map(|a| a.name.name.chars().count())
            .max()
            .unwrap_or(0);
        self.block(
            depth,
            attrs,
            span.end,
            |a| a.span.clone(),
            |p, a| {
                p.line(
                    depth + 1,
                    &format!("{:width$} = {}", a.name.name, test_value(&a.value)),
                );
            },
        );
    }
}

/// Whether an item prints on one line (its inner comments are hoisted above it).
trait Layout {
    fn one_line(&self) -> bool;

    /// Where the item's own printing starts placing the comments inside it (those before are
    /// hoisted above it): the start of a flow's or scope clause's expression.
    fn keeps_comments_from(&self) -> Option<usize> {
        None
    }
}

impl Layout for ObjectType {
    fn one_line(&self) -> bool {
        false
    }
}

impl Layout for ConnectorMember {
    fn one_line(&self) -> bool {
        matches!(self, ConnectorMember::Param(_))
    }
}

impl Layout for AttrDecl {
    fn one_line(&self) -> bool {
        true
    }
}

impl Layout for RuleItem {
    fn one_line(&self) -> bool {
        !matches!(self, RuleItem::Scope(_) | RuleItem::Join(_))
    }

    fn keeps_comments_from(&self) -> Option<usize> {
        match self {
            RuleItem::Flow(f) => Some(f.expr.span.start),
            _ => None,
        }
    }
}

impl Layout for ScopeClause {
    fn one_line(&self) -> bool {
        true
    }

    fn keeps_comments_from(&self) -> Option<usize> {
        match self {
            ScopeClause::Expr(e, _) => Some(e.span.start),
            ScopeClause::Compare { .. } => None,
        }
    }
}

impl Layout for JoinCondition {
    fn one_line(&self) -> bool {
        true
    }
}

impl Layout for TestStep {
    fn one_line(&self) -> bool {
        matches!(
            self,
            TestStep::Delete { .. }
                | TestStep::Sync(_)
                | TestStep::ExpectNoExport { .. }
                | TestStep::ExpectError { .. }
        ) || matches!(self, TestStep::ExpectMetaverse { negated: true, .. })
            || matches!(self, TestStep::ExpectExport { attrs, .. } if attrs.is_empty())
    }
}

impl Layout for TestAttr {
    fn one_line(&self) -> bool {
        true
    }
}

fn param(p: &ParamDecl) -> String {
    match &p.ty {
        Some(t) => format!("param {}: {}", p.name.name, t.name),
        None => format!("param {}", p.name.name),
    }
}

fn lit(s: &StrLit) -> String {
    format!("\"{}\"", s.raw)
}

fn string(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

/// The canonical spelling of a scope operator (upper case; Entra's export spelling
/// `ISBITNOTSET` becomes `ISNOTBITSET`); unknown operators are kept as written.
pub fn operator(op: &str) -> String {
    let upper = op.to_ascii_uppercase();
    match upper.as_str() {
        "ISBITNOTSET" => "ISNOTBITSET".to_string(),
        "EQUAL"
        | "NOTEQUAL"
        | "LESSTHAN"
        | "LESSTHAN_OR_EQUAL"
        | "GREATERTHAN"
        | "GREATERTHAN_OR_EQUAL"
        | "CONTAINS"
        | "NOTCONTAINS"
        | "STARTSWITH"
        | "NOTSTARTSWITH"
        | "ENDSWITH"
        | "NOTENDSWITH"
        | "ISNULL"
        | "ISNOTNULL"
        | "ISIN"
        | "ISNOTIN"
        | "ISBITSET"
        | "ISNOTBITSET"
        | "ISMEMBEROF"
        | "ISNOTMEMBEROF" => upper,
        _ => op.to_string(),
    }
}

fn scope_value(v: &ScopeValue) -> String {
    match v {
        ScopeValue::Str(s) => lit(s),
        ScopeValue::Num(n, _) => n.to_string(),
    }
}

fn test_value(v: &TestValue) -> String {
    match v {
        TestValue::Str(s, _) => string(s),
        TestValue::Num(n, _) => n.to_string(),
        TestValue::Word(w) => w.name.clone(),
        TestValue::Absent(_) => "absent".into(),
        TestValue::Typed(t, s) => format!("{} {}", t.name, lit(s)),
        TestValue::List(items, _) => {
            format!(
                "[{}]",
                items.iter().map(test_value).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

/// Canonical one-line text of an expression.
pub fn expr(e: &Expr) -> String {
    let mut s = String::new();
    write_expr(&mut s, e);
    s
}

fn write_expr(out: &mut String, e: &Expr) {
    match &e.kind {
        ExprKind::Str { raw, .. } => {
            out.push('"');
            out.push_str(raw);
            out.push('"');
        }
        ExprKind::Num { value, hex: true } => out.push_str(&format!("&H{:X}", *value as u64)),
        ExprKind::Num { value, hex: false } => out.push_str(&value.to_string()),
        ExprKind::Const(c) => out.push_str(c.as_str()),
        ExprKind::Name(n) => out.push_str(n),
        ExprKind::Attr(a) => {
            out.push('[');
            out.push_str(a);
            out.push(']');
        }
        ExprKind::Param(p) => {
            out.push('%');
            out.push_str(p);
            out.push('%');
        }
        ExprKind::Var(v) => {
            out.push('$');
            out.push_str(v);
        }
        ExprKind::Call { name, args } => {
            out.push_str(&name.name);
            out.push('(');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, a);
            }
            out.push(')');
        }
        ExprKind::Binary { op, lhs, rhs } => {
            write_expr(out, lhs);
            out.push(' ');
            out.push_str(op.as_str());
            out.push(' ');
            write_expr(out, rhs);
        }
        ExprKind::Neg(x) => {
            out.push('-');
            write_expr(out, x);
        }
        ExprKind::Paren(x) => {
            out.push('(');
            write_expr(out, x);
            out.push(')');
        }
    }
}
