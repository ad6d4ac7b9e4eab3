//! The expression type checker.
//!
//! Consumes: an [`ast::Expr`], the attributes and parameters in scope ([`Env`]) and the
//! [`Stdlib`] signatures. Produces: the expression's [`Ty`], its lowered form ([`ir::Expr`],
//! built in the same pass, with attribute slots and resolved builtins), and E02xx diagnostics
//! (unknown names with suggestions, arity, argument and operator types, `$variable` scoping)
//! plus the W06xx expression lints.

use super::schema::{ObjectDef, ParamDef};
use super::types::{Accept, Base, ParamTy, Ty};
use crate::diag::{Diagnostic, suggest};
use crate::source::FileId;
use crate::stdlib::{Function, Stdlib};
use crate::syntax::ast::{BinOp, Constant, Expr, ExprKind};
use crate::value::Value;
use crate::{builtins, ir};
use std::collections::BTreeMap;

/// The parameter every connector has.
pub const INTRINSIC_PARAMS: &[&str] = &["Connector.ID"];

/// What an expression can see.
pub struct Env<'a> {
    pub file: FileId,
    /// The object type whose attributes `[x]` reads (None when nothing is in scope).
    pub object: Option<&'a ObjectDef>,
    /// Parameter sets in scope (the connector's and the bundle's).
    pub params: Vec<&'a BTreeMap<String, ParamDef>>,
}

/// Checks one expression; returns its type and appends diagnostics.
pub fn check_expr(env: &Env<'_>, e: &Expr, diags: &mut Vec<Diagnostic>) -> Ty {
    lower_expr(env, e, diags).0
}

/// Checks one expression and lowers it; the lowered form is only meaningful when no error was
/// reported.
pub fn lower_expr(env: &Env<'_>, e: &Expr, diags: &mut Vec<Diagnostic>) -> (Ty, ir::Expr) {
    let mut c = Checker {
        env,
        lib: Stdlib::get(),
        vars: Vec::new(),
        diags,
    };
    c.expr(e)
}

type Typed = (Ty, ir::Expr);

fn leaf(ty: Ty, node: ir::Node, e: &Expr) -> Typed {
    (ty, ir::Expr::new(node, e.span.clone()))
}

/// An expression with an error (already reported): its type is unknown.
fn invalid(e: &Expr) -> Typed {
    (Ty::UNKNOWN, ir::Expr::invalid(e.span.clone()))
}

struct Checker<'a, 'd> {
    env: &'a Env<'a>,
    lib: &'static Stdlib,
    vars: Vec<(String, Ty)>,
    diags: &'d mut Vec<Diagnostic>,
}

impl Checker<'_, '_> {
    fn diag(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn expr(&mut self, e: &Expr) -> Typed {
        let file = self.env.file;
        match &e.kind {
            ExprKind::Str { value, .. } => leaf(
                Ty::one(Base::Str),
                ir::Node::Const(Value::str(value.as_str())),
                e,
            ),
            ExprKind::Num { value, .. } => {
                leaf(Ty::one(Base::Num), ir::Node::Const(Value::Num(*value)), e)
            }
            ExprKind::Const(c) => {
                let (ty, v) = match c {
                    Constant::True => (Base::Bool, Value::Bool(true)),
                    Constant::False => (Base::Bool, Value::Bool(false)),
                    Constant::Crlf => (Base::Str, Value::str("\r\n")),
                    Constant::Null => (Base::Null, Value::Null),
                    Constant::AuthoritativeNull => (Base::Null, Value::AuthoritativeNull),
                    Constant::IgnoreThisFlow => (Base::Null, Value::IgnoreThisFlow),
                };
                leaf(Ty::one(ty), ir::Node::Const(v), e)
            }
            ExprKind::Name(n) => match self.lib.constant(n) {
                // Enum constants evaluate to their name; builtins compare case-insensitively.
                Some(i) => leaf(
                    Ty::one(Base::Enum(i)),
                    ir::Node::Const(Value::str(n.as_str())),
                    e,
                ),
                None => {
                    let mut d = Diagnostic::new(
                        "E0207",
                        file,
                        e.span.clone(),
                        format!("unknown constant `{n}`"),
                    )
                    .with_label("not a constant of the expression language");
                    let consts = [
                        "True",
                        "False",
                        "NULL",
                        "AuthoritativeNull",
                        "IgnoreThisFlow",
                        "CRLF",
                    ];
                    let names: Vec<&str> = self.lib.constant_names().chain(consts).collect();
                    if let Some(h) = suggest(n, names) {
                        d = d.with_help(h);
                    } else if n.starts_with(|c: char| c.is_ascii_lowercase()) {
                        d = d.with_help(format!("attributes are written in brackets: `[{n}]`"));
                    }
                    self.diag(d);
                    invalid(e)
                }
            },
            ExprKind::Attr(a) => match self.attribute(a, e) {
                Some((ty, slot)) => leaf(ty, ir::Node::Attr(slot), e),
                None => invalid(e),
            },
            ExprKind::Param(p) => {
                let ty = self.param(p, e);
                leaf(ty, ir::Node::Param(p.as_str().into()), e)
            }
            ExprKind::Var(v) => match self.vars.iter().rposition(|(n, _)| n == v) {
                Some(i) => leaf(self.vars[i].1, ir::Node::Var(i as u32), e),
                None => {
                    self.diag(
                        Diagnostic::new(
                            "E0206",
                            file,
                            e.span.clone(),
                            format!("unknown variable `${v}`"),
                        )
                        .with_label("not bound here")
                        .with_help("variables are bound by Select, Where and With"),
                    );
                    invalid(e)
                }
            },
            ExprKind::Paren(x) => self.expr(x),
            ExprKind::Neg(x) => {
                let (t, inner) = self.expr(x);
                if !(t.is_open() || t.base == Base::Num) {
                    self.diag(
                        Diagnostic::new(
                            "E0210",
                            file,
                            e.span.clone(),
                            format!("cannot negate a {t}"),
                        )
                        .with_label("expected a number"),
                    );
                }
                leaf(
                    Ty::one(Base::Num).with_multi(t.multi),
                    ir::Node::Neg(Box::new(inner)),
                    e,
                )
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(e, *op, lhs, rhs),
            ExprKind::Call { name, args } => self.call(e, &name.name, args),
        }
    }

    /// The type and slot of an attribute of the object in scope.
    fn attribute(&mut self, a: &str, e: &Expr) -> Option<(Ty, u32)> {
        let obj = self.env.object?;
        match obj.attr(a) {
            Some(def) => Some((def.ty(), def.slot)),
            None => {
                let mut d = Diagnostic::new(
                    "E0201",
                    self.env.file,
                    e.span.clone(),
                    format!("unknown attribute `{a}` of object type `{}`", obj.name),
                )
                .with_label("not declared in the schema");
                if let Some(h) = suggest(a, obj.attrs.keys().map(String::as_str)) {
                    d = d.with_help(h);
                }
                self.diag(d);
                None
            }
        }
    }

    fn param(&mut self, p: &str, e: &Expr) -> Ty {
        if INTRINSIC_PARAMS.contains(&p) {
            return Ty::one(Base::Str);
        }
        if let Some(def) = self.env.params.iter().find_map(|m| m.get(p)) {
            return Ty::one(def.base);
        }
        let names: Vec<&str> = self
            .env
            .params
            .iter()
            .flat_map(|m| m.keys().map(String::as_str))
            .chain(INTRINSIC_PARAMS.iter().copied())
            .collect();
        let mut d = Diagnostic::new(
            "E0205",
            self.env.file,
            e.span.clone(),
            format!("unknown parameter `%{p}%`"),
        )
        .with_label("not declared by the connector or the bundle");
        d = d.with_help(suggest(p, names).unwrap_or_else(|| {
            "declare it with `param NAME` in the connector or at the top of the bundle".into()
        }));
        self.diag(d);
        Ty::one(Base::Str)
    }

    fn binary(&mut self, e: &Expr, op: BinOp, lhs: &Expr, rhs: &Expr) -> Typed {
        let file = self.env.file;
        if matches!(op, BinOp::Add | BinOp::Sub) {
            for side in [lhs, rhs] {
                if let ExprKind::Binary {
                    op: inner @ (BinOp::Mul | BinOp::Div),
                    ..
                } = &side.kind
                {
                    self.diag(
                        Diagnostic::new(
                            "W0601",
                            file,
                            e.span.clone(),
                            format!("`{}` and `{}` mixed without parentheses", inner.as_str(), op.as_str()),
                        )
                        .with_help(
                            "idflow binds `* /` tighter than `+ -`; Entra's documentation reads operators left to right. Add parentheses to make the order explicit",
                        ),
                    );
                }
            }
        }
        let (l, li) = self.expr(lhs);
        let (r, ri) = self.expr(rhs);
        let multi = l.multi || r.multi;
        let bad = |this: &mut Self, what: &str| {
            this.diag(
                Diagnostic::new(
                    "E0210",
                    file,
                    e.span.clone(),
                    format!(
                        "operator `{}` cannot be applied to {l} and {r}",
                        op.as_str()
                    ),
                )
                .with_label(format!("expected {what}")),
            );
        };
        let ty = match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => {
                if !((l.is_open() || l.base == Base::Num) && (r.is_open() || r.base == Base::Num)) {
                    bad(self, "numbers");
                }
                Ty {
                    base: Base::Num,
                    multi,
                }
            }
            BinOp::Concat => {
                let base = if l.base == Base::Bin && r.base == Base::Bin {
                    Base::Bin
                } else {
                    Base::Str
                };
                Ty { base, multi }
            }
            BinOp::And | BinOp::Or => {
                if !((l.is_open() || l.base == Base::Bool) && (r.is_open() || r.base == Base::Bool))
                {
                    bad(self, "booleans");
                }
                Ty {
                    base: Base::Bool,
                    multi,
                }
            }
            _ => {
                let compatible = l.is_open()
                    || r.is_open()
                    || l.base == r.base
                    || matches!(
                        (l.base, r.base),
                        (Base::Str, Base::Ref) | (Base::Ref, Base::Str)
                    );
                let bool_vs_str = matches!(
                    (l.base, r.base),
                    (Base::Bool, Base::Str) | (Base::Str, Base::Bool)
                );
                if bool_vs_str {
                    self.diag(
                        Diagnostic::new(
                            "W0603",
                            file,
                            e.span.clone(),
                            "a boolean is compared with a string",
                        )
                        .with_help("compare booleans with `True` or `False`"),
                    );
                } else if !compatible {
                    bad(self, "operands of the same type");
                }
                Ty {
                    base: Base::Bool,
                    multi,
                }
            }
        };
        leaf(ty, ir::Node::Binary(op, Box::new([li, ri])), e)
    }

    fn call(&mut self, e: &Expr, name: &str, args: &[Expr]) -> Typed {
        let file = self.env.file;
        let Some(f) = self.lib.function(name) else {
            let mut d = Diagnostic::new(
                "E0202",
                file,
                call_name_span(e),
                format!("unknown function `{name}`"),
            )
            .with_label("not defined");
            let hint = suggest(name, self.lib.function_names()).or_else(|| {
                // Entra's names are case-sensitive: point at a case-only difference.
                self.lib
                    .function_names()
                    .find(|n| n.eq_ignore_ascii_case(name))
                    .map(|n| format!("did you mean `{n}`? function names are case-sensitive"))
            });
            if let Some(h) = hint {
                d = d.with_help(h);
            }
            self.diag(d);
            for a in args {
                self.expr(a);
            }
            return invalid(e);
        };
        match name {
            "Select" | "Where" | "With" => return self.binder_call(e, f, args),
            "Switch" => return self.switch(e, args),
            _ => {}
        }
        let candidates: Vec<_> = f
            .signatures
            .iter()
            .filter(|s| s.params.len() == args.len())
            .collect();
        if candidates.is_empty() {
            let mut arities: Vec<usize> = f.signatures.iter().map(|s| s.params.len()).collect();
            arities.sort_unstable();
            arities.dedup();
            let expected = arities
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" or ");
            self.diag(
                Diagnostic::new(
                    "E0203",
                    file,
                    e.span.clone(),
                    format!("`{name}` takes {expected} argument(s), got {}", args.len()),
                )
                .with_help(signatures_help(f)),
            );
            for a in args {
                self.expr(a);
            }
            return invalid(e);
        }
        // Type every argument once; attribute-name arguments are resolved separately.
        let attr_name_pos: Vec<bool> = (0..args.len())
            .map(|i| {
                candidates
                    .iter()
                    .any(|s| s.params[i].0 == ParamTy::AttrName)
            })
            .collect();
        let mut tys = Vec::with_capacity(args.len());
        let mut lowered = Vec::with_capacity(args.len());
        let mut slots = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            if attr_name_pos[i] {
                let (t, slot) = self.attr_name_arg(a);
                tys.push(t);
                slots.push(slot);
                lowered.push(ir::Expr::invalid(a.span.clone()));
            } else {
                let (t, l) = self.expr(a);
                tys.push(t);
                slots.push(None);
                lowered.push(l);
            }
        }
        let mut best: Option<(usize, usize)> = None; // (candidate, first failing arg)
        let mut chosen = None;
        for (ci, sig) in candidates.iter().enumerate() {
            let mut mapped = false;
            let mut fail = None;
            for (i, ((pty, _), aty)) in sig.params.iter().zip(&tys).enumerate() {
                let ok = match pty {
                    ParamTy::Enum(en) => enum_arg_ok(&args[i], *aty, *en),
                    _ => pty.accepts(*aty),
                };
                match ok {
                    Accept::No => {
                        fail = Some(i);
                        break;
                    }
                    Accept::Mapped => mapped = true,
                    Accept::Yes => {}
                }
            }
            match fail {
                None => {
                    chosen = Some((ci, mapped));
                    break;
                }
                Some(i) => {
                    if best.is_none_or(|(_, b)| i > b) {
                        best = Some((ci, i));
                    }
                }
            }
        }
        let Some((ci, mapped)) = chosen else {
            let (ci, i) = best.unwrap_or((0, 0));
            let (pty, pname) = &candidates[ci].params[i];
            let code = if *pty == ParamTy::Cond {
                "E0214"
            } else {
                "E0204"
            };
            self.diag(
                Diagnostic::new(
                    code,
                    file,
                    args[i].span.clone(),
                    format!(
                        "argument {} (`{pname}`) of `{name}` must be {pty}, found {}",
                        i + 1,
                        tys[i]
                    ),
                )
                .with_label(format!("expected {pty}"))
                .with_help(signatures_help(f)),
            );
            return invalid(e);
        };
        let sig = candidates[ci];
        let ty = match name {
            "IIF" => {
                if let [_, a, b] = tys.as_slice() {
                    let t = a.unify(*b);
                    t.with_multi(t.multi || tys[0].multi)
                } else {
                    Ty::ANY
                }
            }
            "Item" | "ItemOrNull" => Ty::one(tys[0].base),
            "ImportedValue" => tys[0],
            _ => sig.ret.with_multi(sig.ret.multi || mapped),
        };
        // An argument with an error could have matched any overload: the result is unknown
        // rather than the chosen overload's guess, so it causes no further errors.
        let ty = if tys.iter().any(|t| t.base == Base::Unknown) {
            Ty {
                base: Base::Unknown,
                multi: ty.multi,
            }
        } else {
            ty
        };
        let span = e.span.clone();
        let node = match name {
            "IIF" => {
                let mut it = lowered.into_iter();
                match (it.next(), it.next(), it.next()) {
                    (Some(c), Some(t), Some(f)) => ir::Node::Iif(Box::new([c, t, f])),
                    _ => return invalid(e),
                }
            }
            "Error" => match lowered.into_iter().next() {
                Some(m) => ir::Node::Error(Box::new(m)),
                None => return invalid(e),
            },
            "ImportedValue" | "ValueCount" => match slots.first().copied().flatten() {
                Some(slot) if name == "ImportedValue" => ir::Node::Imported(slot),
                Some(slot) => ir::Node::ValueCount(slot),
                None => return invalid(e),
            },
            _ => match builtins::lookup(name) {
                Some(fptr) => ir::Node::Call {
                    name: f.name.as_str(),
                    f: fptr,
                    mapped: sig
                        .params
                        .iter()
                        .map(|(p, _)| matches!(p, ParamTy::Scalar(_) | ParamTy::Cond))
                        .collect(),
                    args: lowered,
                },
                // Declared but not implemented: a defect caught by the conformance tests.
                None => ir::Node::Error(Box::new(ir::Expr::new(
                    ir::Node::Const(Value::str(format!("function {name} is not implemented"))),
                    span.clone(),
                ))),
            },
        };
        (ty, ir::Expr::new(node, span))
    }

    /// `ImportedValue("mail")`: the argument names an attribute of the source object.
    fn attr_name_arg(&mut self, a: &Expr) -> (Ty, Option<u32>) {
        match &a.kind {
            ExprKind::Str { value: name, .. } => match self.attribute(name, a) {
                Some((t, slot)) => (t, Some(slot)),
                None => (Ty::UNKNOWN, None),
            },
            _ => {
                self.diag(
                    Diagnostic::new("E0213", self.env.file, a.span.clone(), "expected an attribute name in quotes")
                        .with_help("write the attribute's name as a string, e.g. ImportedValue(\"proxyAddresses\")"),
                );
                self.expr(a);
                (Ty::UNKNOWN, None)
            }
        }
    }

    fn binder_call(&mut self, e: &Expr, f: &Function, args: &[Expr]) -> Typed {
        let file = self.env.file;
        if args.len() != 3 {
            self.diag(
                Diagnostic::new(
                    "E0203",
                    file,
                    e.span.clone(),
                    format!("`{}` takes 3 arguments, got {}", f.name, args.len()),
                )
                .with_help(signatures_help(f)),
            );
            for a in args {
                self.expr(a);
            }
            return invalid(e);
        }
        let var = match &args[0].kind {
            ExprKind::Var(v) => Some(v.clone()),
            _ => {
                self.diag(
                    Diagnostic::new(
                        "E0212",
                        file,
                        args[0].span.clone(),
                        format!("the first argument of `{}` must be a $variable", f.name),
                    )
                    .with_label("expected e.g. `$item`"),
                );
                None
            }
        };
        let (source, src_ir) = self.expr(&args[1]);
        let bound = if f.name == "With" {
            source
        } else {
            Ty::one(source.base)
        };
        self.vars.push((var.unwrap_or_default(), bound));
        let (body, body_ir) = self.expr(&args[2]);
        self.vars.pop();
        let pair = Box::new([src_ir, body_ir]);
        let (ty, node) = match f.name.as_str() {
            "Where" => {
                if !(body.is_open() || body.base == Base::Bool) {
                    self.diag(
                        Diagnostic::new(
                            "E0214",
                            file,
                            args[2].span.clone(),
                            format!("the condition of `Where` must be a boolean, found {body}"),
                        )
                        .with_label("expected a condition"),
                    );
                }
                (Ty::many(source.base), ir::Node::Where(pair))
            }
            "Select" => (Ty::many(body.base), ir::Node::Select(pair)),
            _ => (body, ir::Node::With(pair)),
        };
        leaf(ty, node, e)
    }

    fn switch(&mut self, e: &Expr, args: &[Expr]) -> Typed {
        let file = self.env.file;
        if args.is_empty() || !args.len().is_multiple_of(2) {
            self.diag(
                Diagnostic::new(
                    "E0211",
                    file,
                    e.span.clone(),
                    format!(
                        "`Switch` needs condition/value pairs, got {} argument(s)",
                        args.len()
                    ),
                )
                .with_help("Switch(condition1, value1, condition2, value2, ...)"),
            );
        }
        let mut result: Option<Ty> = None;
        let mut lowered = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            let (t, l) = self.expr(a);
            lowered.push(l);
            if i % 2 == 0 && i + 1 < args.len() {
                if !(t.is_open() || t.base == Base::Bool) {
                    self.diag(
                        Diagnostic::new(
                            "E0214",
                            file,
                            a.span.clone(),
                            format!("a Switch condition must be a boolean, found {t}"),
                        )
                        .with_label("expected a condition"),
                    );
                }
            } else {
                result = Some(result.map_or(t, |r| r.unify(t)));
            }
        }
        leaf(result.unwrap_or(Ty::ANY), ir::Node::Switch(lowered), e)
    }
}

fn enum_arg_ok(arg: &Expr, ty: Ty, en: u16) -> Accept {
    match (&arg.kind, ty.base) {
        (_, Base::Enum(x)) if x == en => Accept::Yes,
        (ExprKind::Str { value: s, .. }, _) => {
            if Stdlib::get().enums[en as usize]
                .values
                .iter()
                .any(|v| v.eq_ignore_ascii_case(s))
            {
                Accept::Yes
            } else {
                Accept::No
            }
        }
        (_, Base::Any | Base::Unknown | Base::Null) => Accept::Yes,
        _ => Accept::No,
    }
}

fn call_name_span(e: &Expr) -> std::ops::Range<usize> {
    match &e.kind {
        ExprKind::Call { name, .. } => name.span.clone(),
        _ => e.span.clone(),
    }
}

fn signatures_help(f: &Function) -> String {
    let sigs: Vec<&str> = f.signatures.iter().map(|s| s.text.as_str()).collect();
    format!("signatures: {}", sigs.join("; "))
}
