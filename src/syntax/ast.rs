//! The untyped syntax tree of `.idf` files.
//!
//! Consumes: nothing (built by the grammar actions). Produces: [`File`], read by `sema` (checks),
//! `syntax::printer` (fmt) and the AST dump used in syntax snapshots. Every node carries the byte
//! span of its source text.

/// Shared with the lowered form: rule direction, merge type and binary operators.
pub use crate::ir::{BinOp, Direction, MergeType};
use crate::source::Span;

/// A name with its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A string literal (value after unescaping) with its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrLit {
    pub value: String,
    /// The text between the quotes as written (the printer keeps it).
    pub raw: String,
    pub span: Span,
}

/// One `.idf` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Bundle(StrLit, Span),
    Param(ParamDecl),
    Metaverse(Metaverse),
    Connector(Connector),
    Rule(Rule),
    Test(Test),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Bundle(_, s) => s.clone(),
            Item::Param(p) => p.span.clone(),
            Item::Metaverse(m) => m.span.clone(),
            Item::Connector(c) => c.span.clone(),
            Item::Rule(r) => r.span.clone(),
            Item::Test(t) => t.span.clone(),
        }
    }
}

/// `param Domain.FQDN` or `param X: integer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamDecl {
    pub name: Ident,
    pub ty: Option<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metaverse {
    pub objects: Vec<ObjectType>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connector {
    pub name: StrLit,
    pub kind: Ident,
    pub members: Vec<ConnectorMember>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorMember {
    Param(ParamDecl),
    Object(ObjectType),
}

impl ConnectorMember {
    pub fn span(&self) -> Span {
        match self {
            ConnectorMember::Param(p) => p.span.clone(),
            ConnectorMember::Object(o) => o.span.clone(),
        }
    }
}

/// `object user anchor objectGUID { ... }` (anchor only on connector object types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectType {
    pub name: Ident,
    pub anchor: Option<Ident>,
    pub attrs: Vec<AttrDecl>,
    pub span: Span,
}

/// `proxyAddresses string multi unique`, `manager reference(person)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrDecl {
    pub name: Ident,
    pub ty: Ident,
    pub ref_target: Option<Ident>,
    pub multi: bool,
    /// Values must be unique among the connector's objects (exports withhold duplicates).
    pub unique: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub direction: Direction,
    pub name: StrLit,
    pub body: Vec<RuleItem>,
    pub span: Span,
}

/// `target person` or `target *`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetType {
    Named(Ident),
    Any(Span),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleItem {
    Connector(StrLit, Span),
    Source(Ident, Span),
    Target(TargetType, Span),
    Link(Ident, Span),
    Precedence(i64, Span),
    Description(StrLit, Span),
    Tag(StrLit, Span),
    PasswordSync(Span),
    Disabled(Span),
    Scope(ScopeGroup),
    Join(JoinGroup),
    Flow(Flow),
}

impl RuleItem {
    pub fn span(&self) -> Span {
        match self {
            RuleItem::Connector(_, s)
            | RuleItem::Source(_, s)
            | RuleItem::Target(_, s)
            | RuleItem::Link(_, s)
            | RuleItem::Precedence(_, s)
            | RuleItem::Description(_, s)
            | RuleItem::Tag(_, s)
            | RuleItem::PasswordSync(s)
            | RuleItem::Disabled(s) => s.clone(),
            RuleItem::Scope(g) => g.span.clone(),
            RuleItem::Join(g) => g.span.clone(),
            RuleItem::Flow(f) => f.span.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeGroup {
    pub clauses: Vec<ScopeClause>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeClause {
    /// `attr OPERATOR value?`
    Compare {
        attr: Ident,
        op: Ident,
        value: Option<ScopeValue>,
        span: Span,
    },
    /// `( boolean expression )`
    Expr(Expr, Span),
}

impl ScopeClause {
    pub fn span(&self) -> Span {
        match self {
            ScopeClause::Compare { span, .. } | ScopeClause::Expr(_, span) => span.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeValue {
    Str(StrLit),
    Num(i64, Span),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroup {
    pub conditions: Vec<JoinCondition>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinCondition {
    pub source: Ident,
    pub target: Ident,
    pub case_sensitive: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub target: Ident,
    pub expr: Expr,
    pub merge: MergeType,
    pub once: bool,
    pub span: Span,
}

/// The built-in constants of the expression language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Constant {
    True,
    False,
    Null,
    AuthoritativeNull,
    IgnoreThisFlow,
    Crlf,
}

impl Constant {
    pub fn from_name(name: &str) -> Option<Constant> {
        Some(match name {
            "True" => Constant::True,
            "False" => Constant::False,
            "NULL" => Constant::Null,
            "AuthoritativeNull" => Constant::AuthoritativeNull,
            "IgnoreThisFlow" => Constant::IgnoreThisFlow,
            "CRLF" => Constant::Crlf,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Constant::True => "True",
            Constant::False => "False",
            Constant::Null => "NULL",
            Constant::AuthoritativeNull => "AuthoritativeNull",
            Constant::IgnoreThisFlow => "IgnoreThisFlow",
            Constant::Crlf => "CRLF",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
    /// Height of the tree below this node (a leaf is 1); bounded by [`MAX_EXPR_DEPTH`].
    pub depth: u32,
}

/// The deepest expression tree the parser builds. Every recursive pass over expressions
/// (checker, printer, evaluator) relies on this bound.
pub const MAX_EXPR_DEPTH: u32 = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprKind {
    /// A string literal: its value and the text between the quotes as written.
    Str {
        value: String,
        raw: String,
    },
    /// A number; `hex` records the `&H` spelling for the printer.
    Num {
        value: i64,
        hex: bool,
    },
    Const(Constant),
    /// A bare identifier that is not a constant: an enum constant such as `UTF8`.
    Name(String),
    Attr(String),
    Param(String),
    Var(String),
    Call {
        name: Ident,
        args: Vec<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `-x` (only meaningful on numbers).
    Neg(Box<Expr>),
    Paren(Box<Expr>),
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Self {
        let depth = 1 + match &kind {
            ExprKind::Call { args, .. } => args.iter().map(|a| a.depth).max().unwrap_or(0),
            ExprKind::Binary { lhs, rhs, .. } => lhs.depth.max(rhs.depth),
            ExprKind::Neg(x) | ExprKind::Paren(x) => x.depth,
            _ => 0,
        };
        Self { kind, span, depth }
    }

    /// An identifier in expression position: a constant or an enum constant.
    pub fn ident(name: String, span: Span) -> Self {
        let kind = match Constant::from_name(&name) {
            Some(c) => ExprKind::Const(c),
            None => ExprKind::Name(name),
        };
        Self::new(kind, span)
    }

    /// Every attribute the expression reads: `[x]`, and the quoted names given to
    /// `ImportedValue` and `ValueCount`, in order of appearance (with repeats).
    pub fn attribute_names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_attributes(&mut out);
        out
    }

    fn collect_attributes<'a>(&'a self, out: &mut Vec<&'a str>) {
        match &self.kind {
            ExprKind::Attr(a) => out.push(a),
            ExprKind::Call { name, args } => {
                let quoted = name.name == "ImportedValue" || name.name == "ValueCount";
                for a in args {
                    match &a.kind {
                        ExprKind::Str { value, .. } if quoted => out.push(value),
                        _ => a.collect_attributes(out),
                    }
                }
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                lhs.collect_attributes(out);
                rhs.collect_attributes(out);
            }
            ExprKind::Neg(x) | ExprKind::Paren(x) => x.collect_attributes(out),
            _ => {}
        }
    }

    pub fn binary(op: BinOp, lhs: Expr, rhs: Expr) -> Self {
        let span = lhs.span.start..rhs.span.end;
        Self::new(
            ExprKind::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            },
            span,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    pub name: StrLit,
    pub steps: Vec<TestStep>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestStep {
    /// `given "connector" type "DN" { attr = value ... }`
    Given {
        connector: StrLit,
        object_type: Ident,
        dn: StrLit,
        attrs: Vec<TestAttr>,
        span: Span,
    },
    /// `delete "connector" type "DN"`
    Delete {
        connector: StrLit,
        object_type: Ident,
        dn: StrLit,
        span: Span,
    },
    Sync(Span),
    /// `expect [no] metaverse TYPE where ATTR = VALUE { ... }`
    ExpectMetaverse {
        negated: bool,
        object_type: Ident,
        key: Box<TestAttr>,
        attrs: Vec<TestAttr>,
        span: Span,
    },
    /// `expect export "connector" OP TYPE ["DN"] { ... }`
    ExpectExport {
        connector: StrLit,
        op: Ident,
        object_type: Ident,
        dn: Option<StrLit>,
        attrs: Vec<TestAttr>,
        span: Span,
    },
    /// `expect no export "connector"`
    ExpectNoExport {
        connector: StrLit,
        span: Span,
    },
    /// `expect error "Category"`
    ExpectError {
        category: StrLit,
        span: Span,
    },
}

impl TestStep {
    pub fn span(&self) -> Span {
        match self {
            TestStep::Given { span, .. }
            | TestStep::Delete { span, .. }
            | TestStep::Sync(span)
            | TestStep::ExpectMetaverse { span, .. }
            | TestStep::ExpectExport { span, .. }
            | TestStep::ExpectNoExport { span, .. }
            | TestStep::ExpectError { span, .. } => span.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestAttr {
    pub name: Ident,
    pub value: TestValue,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestValue {
    Str(String, Span),
    Num(i64, Span),
    /// `True`, `False` or another bare word (checked by sema).
    Word(Ident),
    Absent(Span),
    /// `guid "..."`, `base64 "..."`, `hex "..."`, `sid "..."`, `datetime "..."`.
    Typed(Ident, StrLit),
    List(Vec<TestValue>, Span),
}

impl TestValue {
    pub fn span(&self) -> Span {
        match self {
            TestValue::Str(_, s)
            | TestValue::Num(_, s)
            | TestValue::Absent(s)
            | TestValue::List(_, s) => s.clone(),
            TestValue::Word(i) => i.span.clone(),
            TestValue::Typed(t, v) => t.span.start..v.span.end,
        }
    }
}
