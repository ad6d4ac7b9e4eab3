//! The typed, lowered form of expressions that the evaluators run.
//!
//! Consumes: nothing (built by `sema::typeck` while it checks an expression). Produces:
//! [`Expr`] trees in which attributes are slot indices of their object type, functions are
//! resolved to native builtins (with the arguments the call maps over when they are
//! multi-valued), constants are prebuilt values and `$variables` are stack indices. Every node
//! keeps its source span for runtime error locations.

use crate::builtins::BuiltinFn;
use crate::source::Span;
use crate::value::Value;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Expr {
    pub node: Node,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum Node {
    Const(Value),
    /// An attribute of the source object, by slot.
    Attr(u32),
    /// `ImportedValue("x")`: the confirmed imported value of a slot.
    Imported(u32),
    /// `ValueCount("x")`: the number of values of a slot.
    ValueCount(u32),
    /// `%Name%`.
    Param(Arc<str>),
    /// A `$variable`, by its index on the variable stack.
    Var(u32),
    Call {
        name: &'static str,
        f: BuiltinFn,
        args: Vec<Expr>,
        /// Per argument: a scalar parameter, so a multi-valued argument maps the call.
        mapped: Vec<bool>,
    },
    Iif(Box<[Expr; 3]>),
    /// Condition/value pairs.
    Switch(Vec<Expr>),
    /// `Select($v, collection, body)`: the binder is the next stack slot.
    Select(Box<[Expr; 2]>),
    /// `Where($v, collection, condition)`.
    Where(Box<[Expr; 2]>),
    /// `With($v, value, body)`.
    With(Box<[Expr; 2]>),
    Error(Box<Expr>),
    Binary(BinOp, Box<[Expr; 2]>),
    Neg(Box<Expr>),
}

impl Expr {
    pub fn new(node: Node, span: Span) -> Expr {
        Expr { node, span }
    }

    /// A placeholder for an expression that did not check (never evaluated: the bundle has
    /// errors).
    pub fn invalid(span: Span) -> Expr {
        Expr::new(Node::Const(Value::Null), span)
    }

    /// The expression's operands, in order.
    pub fn children(&self) -> &[Expr] {
        match &self.node {
            Node::Const(_)
            | Node::Attr(_)
            | Node::Imported(_)
            | Node::ValueCount(_)
            | Node::Param(_)
            | Node::Var(_) => &[],
            Node::Call { args, .. } => args,
            Node::Iif(p) => &p[..],
            Node::Switch(items) => items,
            Node::Select(p) | Node::Where(p) | Node::With(p) | Node::Binary(_, p) => &p[..],
            Node::Error(x) | Node::Neg(x) => std::slice::from_ref(&**x),
        }
    }

    /// Calls `f` on the expression and on every expression inside it.
    pub fn visit(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        for c in self.children() {
            c.visit(f);
        }
    }
}

// ------------------------------------------------------------------ vocabulary shared with the AST

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MergeType {
    #[default]
    Update,
    Merge,
    MergeCaseInsensitive,
    Replace,
}

impl MergeType {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeType::Update => "update",
            MergeType::Merge => "merge",
            MergeType::MergeCaseInsensitive => "merge-case-insensitive",
            MergeType::Replace => "replace",
        }
    }
}

/// Binary operators, loosest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Concat,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "=",
            BinOp::Ne => "<>",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Concat => "&",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }

    /// Binding strength: higher binds tighter.
    pub fn level(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 3,
            BinOp::Concat => 4,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Mul | BinOp::Div => 6,
        }
    }

    pub fn is_comparison(self) -> bool {
        self.level() == 3
    }
}
