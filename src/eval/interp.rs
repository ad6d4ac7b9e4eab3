//! The reference interpreter: the semantic oracle every other evaluator must agree with.
//!
//! Consumes: a lowered [`ir::Expr`], the source object's attribute values by slot
//! ([`Object`]) and a [`Ctx`]. Produces: a [`Value`] (possibly `AuthoritativeNull` or
//! `IgnoreThisFlow`) or an [`EvalError`] with a code, a message and the span of the failing
//! node. It never panics on data: wrong types, bad values and exhausted limits are errors.
//!
//! Semantics (docs/DECISIONS.md): a multi-valued argument of a scalar parameter maps the call
//! over its values in lockstep, dropping NULL results; `IIF` evaluates only the branch it takes
//! (with a multi-valued condition it works value by value); `&&` and `||` short-circuit.

use super::Ctx;
use crate::builtins::Fault;
use crate::ir::BinOp;
use crate::ir::{Expr, Node};
use crate::source::Span;
use crate::value::Value;
use std::cmp::Ordering;

/// The attribute values an expression reads.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    /// Current values by slot (what `[x]` reads).
    pub attrs: &'a [Value],
    /// Confirmed imported values by slot (what `ImportedValue("x")` reads).
    pub imported: &'a [Value],
}

/// A located runtime error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    pub code: &'static str,
    pub message: String,
    pub span: Span,
}

/// What an evaluation returns. The error is boxed so that the result is no larger than a
/// [`Value`] (a value then moves through the call chain without being re-laid out).
pub type Evaluated = Result<Value, Box<EvalError>>;

/// Evaluates `e` for one object.
pub fn eval(ctx: &mut Ctx, e: &Expr, obj: Object<'_>) -> Evaluated {
    ctx.begin();
    let mut it = Interp {
        ctx,
        obj,
        vars: Vec::new(),
        stack: Vec::new(),
    };
    it.eval(e)
}

struct Interp<'c, 'o> {
    ctx: &'c mut Ctx,
    obj: Object<'o>,
    vars: Vec<Value>,
    /// Argument values of calls in progress (reused: a call does not allocate).
    stack: Vec<Value>,
}

pub(super) fn at(span: &Span) -> impl Fn(Box<Fault>) -> Box<EvalError> + '_ {
    move |f| {
        Box::new(EvalError {
            code: f.code,
            message: f.message,
            span: span.clone(),
        })
    }
}

impl Interp<'_, '_> {
    fn eval(&mut self, e: &Expr) -> Evaluated {
        self.ctx.step().map_err(at(&e.span))?;
        match &e.node {
            Node::Const(v) => Ok(v.clone()),
            Node::Attr(slot) => Ok(self
                .obj
                .attrs
                .get(*slot as usize)
                .cloned()
                .unwrap_or_default()),
            Node::Imported(slot) => Ok(self
                .obj
                .imported
                .get(*slot as usize)
                .cloned()
                .unwrap_or_default()),
            Node::ValueCount(slot) => {
                let n = self
                    .obj
                    .attrs
                    .get(*slot as usize)
                    .map_or(0, |v| v.values().len());
                Ok(Value::Num(n as i64))
            }
            Node::Param(name) => Ok(self.ctx.param(name).cloned().unwrap_or_default()),
            Node::Var(i) => Ok(self.vars.get(*i as usize).cloned().unwrap_or_default()),
            Node::Call {
                f, args, mapped, ..
            } => {
                let base = self.stack.len();
                for a in args {
                    let v = match self.eval(a) {
                        Ok(v) => v,
                        Err(err) => {
                            self.stack.truncate(base);
                            return Err(err);
                        }
                    };
                    self.stack.push(v);
                }
                let result = map_values(self.ctx, &self.stack[base..], mapped, f);
                self.stack.truncate(base);
                result.map_err(at(&e.span))
            }
            Node::Iif(parts) => {
                let [c, t, f] = parts.as_ref();
                let cond = self.eval(c)?;
                match cond {
                    Value::Many(conds) => self.iif_per_value(&conds, t, f, &e.span),
                    other => {
                        if truth(&other).map_err(at(&c.span))? {
                            self.eval(t)
                        } else {
                            self.eval(f)
                        }
                    }
                }
            }
            Node::Switch(items) => {
                let mut chosen = None;
                let pairs = items.len() / 2;
                for i in 0..pairs {
                    let c = &items[2 * i];
                    let v = self.eval(c)?;
                    if chosen.is_none() && truth(&v).map_err(at(&c.span))? {
                        chosen = Some(&items[2 * i + 1]);
                    }
                }
                match chosen {
                    Some(v) => self.eval(v),
                    None => Ok(Value::Null),
                }
            }
            Node::Select(parts) => {
                let [coll, body] = parts.as_ref();
                let source = self.eval(coll)?;
                let mut out = Vec::new();
                for v in source.values() {
                    self.vars.push(v.clone());
                    let r = self.eval(body);
                    self.vars.pop();
                    push_charged(self.ctx, &mut out, r?, true).map_err(at(&e.span))?;
                }
                self.ctx.check_values(out.len()).map_err(at(&e.span))?;
                Ok(Value::many(out))
            }
            Node::Where(parts) => {
                let [coll, cond] = parts.as_ref();
                let source = self.eval(coll)?;
                let mut out = Vec::new();
                for v in source.values() {
                    self.vars.push(v.clone());
                    let r = self.eval(cond);
                    self.vars.pop();
                    if truth(&r?).map_err(at(&cond.span))? {
                        push_charged(self.ctx, &mut out, v.clone(), false).map_err(at(&e.span))?;
                    }
                }
                Ok(Value::many(out))
            }
            Node::With(parts) => {
                let [value, body] = parts.as_ref();
                let v = self.eval(value)?;
                self.vars.push(v);
                let r = self.eval(body);
                self.vars.pop();
                r
            }
            Node::Error(msg) => {
                let m = self.eval(msg)?;
                let text = match &m {
                    Value::Str(s) | Value::Ref(s) => s.to_string(),
                    v if v.is_null() => String::new(),
                    other => render_scalar(other),
                };
                Err(Box::new(EvalError {
                    code: "E0501",
                    message: text,
                    span: e.span.clone(),
                }))
            }
            Node::Binary(op, parts) => {
                let [l, r] = parts.as_ref();
                match op {
                    BinOp::And | BinOp::Or => {
                        let lv = self.eval(l)?;
                        if !matches!(lv, Value::Many(_)) {
                            let lt = truth(&lv).map_err(at(&l.span))?;
                            // Short circuit.
                            if (*op == BinOp::And && !lt) || (*op == BinOp::Or && lt) {
                                return Ok(Value::Bool(lt));
                            }
                        }
                        let rv = self.eval(r)?;
                        logic(self.ctx, *op, lv, rv).map_err(at(&e.span))
                    }
                    _ => {
                        let lv = self.eval(l)?;
                        let rv = self.eval(r)?;
                        operator(self.ctx, *op, lv, rv).map_err(at(&e.span))
                    }
                }
            }
            Node::Neg(x) => {
                let v = self.eval(x)?;
                negate(self.ctx, v).map_err(at(&e.span))
            }
        }
    }

    /// `IIF` with a multi-valued condition: value `i` takes element `i` of a branch that has as
    /// many values as the condition (the same attribute), or the whole branch otherwise.
    fn iif_per_value(&mut self, conds: &[Value], t: &Expr, f: &Expr, span: &Span) -> Evaluated {
        let mut picks = Vec::with_capacity(conds.len());
        for c in conds {
            picks.push(truth(c).map_err(at(span))?);
        }
        let tv = if picks.iter().any(|p| *p) {
            self.eval(t)?
        } else {
            Value::Null
        };
        let fv = if picks.iter().any(|p| !*p) {
            self.eval(f)?
        } else {
            Value::Null
        };
        iif_zip(self.ctx, &picks, &tv, &fv).map_err(at(span))
    }
}

/// The result of a per-value `IIF`: value `i` is element `i` of the branch its condition picks
/// when that branch has as many values as there are conditions, or the whole branch otherwise.
/// The values collected are charged to the budget as they are added.
pub(super) fn iif_zip(
    ctx: &mut Ctx,
    picks: &[bool],
    tv: &Value,
    fv: &Value,
) -> Result<Value, Box<Fault>> {
    let n = picks.len();
    let pick = |v: &Value, i: usize| -> Value {
        match v {
            Value::Many(items) if items.len() == n => items.get(i).cloned().unwrap_or_default(),
            other => other.clone(),
        }
    };
    let mut out = Vec::with_capacity(n);
    for (i, p) in picks.iter().enumerate() {
        let v = if *p { pick(tv, i) } else { pick(fv, i) };
        push_charged(ctx, &mut out, v, true)?;
    }
    Ok(Value::many(out))
}

/// `&&` and `||` once both sides are evaluated (mapped over multi-valued sides).
pub(super) fn logic(ctx: &mut Ctx, op: BinOp, lv: Value, rv: Value) -> Result<Value, Box<Fault>> {
    map_values(ctx, &[lv, rv], &[true, true], |_, a| {
        let (x, y) = (truth(&a[0])?, truth(&a[1])?);
        Ok(Value::Bool(if op == BinOp::And { x && y } else { x || y }))
    })
}

/// A value operator (arithmetic, comparison, `&`), mapped over multi-valued sides.
pub(super) fn operator(
    ctx: &mut Ctx,
    op: BinOp,
    lv: Value,
    rv: Value,
) -> Result<Value, Box<Fault>> {
    map_values(ctx, &[lv, rv], &[true, true], |ctx, a| {
        binary(ctx, op, &a[0], &a[1])
    })
}

/// Unary minus, mapped over a multi-valued operand.
pub(super) fn negate(ctx: &mut Ctx, v: Value) -> Result<Value, Box<Fault>> {
    map_values(ctx, &[v], &[true], |_, a| match &a[0] {
        Value::Num(n) => n
            .checked_neg()
            .map(Value::Num)
            .ok_or_else(|| Fault::new("E0505", "arithmetic overflow")),
        v if v.is_null() => Ok(Value::Null),
        other => Err(Fault::type_error("-", "num", other)),
    })
}

/// Appends a value to a collection: NULLs are dropped, collections are flattened.
pub(super) fn push_flat(out: &mut Vec<Value>, v: Value) {
    match v {
        Value::Many(items) => out.extend(items.iter().filter(|x| !x.is_null()).cloned()),
        v if v.is_null() => {}
        v => out.push(v),
    }
}

/// Appends a value to a collection being built (flattened as by [`push_flat`] when `flat`) and
/// charges the values added to the evaluation's budget.
pub(super) fn push_charged(
    ctx: &mut Ctx,
    out: &mut Vec<Value>,
    v: Value,
    flat: bool,
) -> Result<(), Box<Fault>> {
    let before = out.len();
    if flat {
        push_flat(out, v);
    } else {
        out.push(v);
    }
    ctx.charge_values(out.len() - before)
}

/// Calls `f` once, or once per value when mapped arguments are multi-valued (in lockstep).
pub(super) fn map_values(
    ctx: &mut Ctx,
    args: &[Value],
    mapped: &[bool],
    f: impl Fn(&mut Ctx, &[Value]) -> Result<Value, Box<Fault>>,
) -> Result<Value, Box<Fault>> {
    let mut len = None;
    for (a, m) in args.iter().zip(mapped) {
        if let (Value::Many(items), true) = (a, m) {
            match len {
                None => len = Some(items.len()),
                Some(n) if n != items.len() => {
                    return Err(Fault::new(
                        "E0506",
                        format!(
                            "multi-valued arguments of different lengths ({n} and {})",
                            items.len()
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    let Some(n) = len else {
        return f(ctx, args);
    };
    if let [Value::Many(items)] = args {
        // One mapped argument: its values are passed in place.
        let mut out = Vec::with_capacity(n);
        for item in items.iter() {
            let v = f(ctx, std::slice::from_ref(item))?;
            push_charged(ctx, &mut out, v, true)?;
        }
        ctx.check_values(out.len())?;
        return Ok(Value::many(out));
    }
    let mut out = Vec::with_capacity(n);
    let mut one: Vec<Value> = args.to_vec();
    for i in 0..n {
        for (k, (a, m)) in args.iter().zip(mapped).enumerate() {
            if let (Value::Many(items), true) = (a, m) {
                one[k] = items.get(i).cloned().unwrap_or_default();
            }
        }
        let v = f(ctx, &one)?;
        push_charged(ctx, &mut out, v, true)?;
    }
    ctx.check_values(out.len())?;
    Ok(Value::many(out))
}

/// The truth of a condition: NULL is false.
pub(super) fn truth(v: &Value) -> Result<bool, Box<Fault>> {
    match v {
        Value::Bool(b) => Ok(*b),
        v if v.is_null() => Ok(false),
        other => Err(Fault::type_error("condition", "bool", other)),
    }
}

/// The text of a scalar where a string is needed (`&` with a number, ...).
pub(crate) fn render_scalar(v: &Value) -> String {
    match v {
        Value::Str(s) | Value::Ref(s) => s.to_string(),
        Value::Num(n) => n.to_string(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Dt(d) => d.to_string(),
        Value::Bin(b) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b)
        }
        _ => String::new(),
    }
}

pub(super) fn binary(ctx: &mut Ctx, op: BinOp, l: &Value, r: &Value) -> Result<Value, Box<Fault>> {
    match op {
        BinOp::Concat => concat(ctx, l, r),
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => arithmetic(op, l, r),
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => compare(op, l, r),
        BinOp::And | BinOp::Or => Err(Fault::new(
            "E0502",
            "logical operator evaluated as a value operator",
        )),
    }
}

/// `&`: binaries concatenate as bytes; otherwise as text, NULL counting as empty (NULL & NULL
/// is NULL).
pub(super) fn concat(ctx: &mut Ctx, l: &Value, r: &Value) -> Result<Value, Box<Fault>> {
    match (l, r) {
        (a, b) if a.is_null() && b.is_null() => Ok(Value::Null),
        (Value::Bin(a), Value::Bin(b)) => {
            ctx.check_bytes(a.len().saturating_add(b.len()))?;
            let mut v = Vec::with_capacity(a.len() + b.len());
            v.extend_from_slice(a);
            v.extend_from_slice(b);
            ctx.binary(v)
        }
        (a, b) if a.is_null() => as_text(ctx, b),
        (a, b) if b.is_null() => as_text(ctx, a),
        (Value::Str(x), Value::Str(y)) => {
            ctx.check_bytes(x.len().saturating_add(y.len()))?;
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            ctx.string(s)
        }
        (a, b) => {
            let (x, y) = (render_scalar(a), render_scalar(b));
            ctx.check_bytes(x.len().saturating_add(y.len()))?;
            ctx.string(x + &y)
        }
    }
}

/// A string passes through; another scalar is rendered as a new (charged) string.
fn as_text(ctx: &mut Ctx, v: &Value) -> Result<Value, Box<Fault>> {
    match v {
        Value::Str(_) => Ok(v.clone()),
        other => ctx.string(render_scalar(other)),
    }
}

fn arithmetic(op: BinOp, l: &Value, r: &Value) -> Result<Value, Box<Fault>> {
    let (a, b) = match (l, r) {
        (x, y) if x.is_null() || y.is_null() => return Ok(Value::Null),
        (Value::Num(a), Value::Num(b)) => (*a, *b),
        (Value::Num(_), other) | (other, _) => {
            return Err(Fault::type_error(op.as_str(), "num", other));
        }
    };
    let overflow = || {
        Fault::new(
            "E0505",
            format!("arithmetic overflow in {a} {} {b}", op.as_str()),
        )
    };
    let v = match op {
        BinOp::Add => a.checked_add(b).ok_or_else(overflow)?,
        BinOp::Sub => a.checked_sub(b).ok_or_else(overflow)?,
        BinOp::Mul => a.checked_mul(b).ok_or_else(overflow)?,
        _ => {
            if b == 0 {
                return Err(Fault::new("E0505", "division by zero"));
            }
            a.checked_div(b).ok_or_else(overflow)?
        }
    };
    Ok(Value::Num(v))
}

/// Comparisons. Strings compare exactly (case-sensitive, as VBA's binary compare); a boolean
/// compares with the strings "True"/"False" case-insensitively. With NULL on a side, `=` is
/// true only when both sides are NULL, `<>` is its negation, and orderings are false.
fn compare(op: BinOp, l: &Value, r: &Value) -> Result<Value, Box<Fault>> {
    let ord: Option<Ordering> = match (l, r) {
        (a, b) if a.is_null() || b.is_null() => {
            let both = a.is_null() && b.is_null();
            return Ok(Value::Bool(match op {
                BinOp::Eq => both,
                BinOp::Ne => !both,
                _ => false,
            }));
        }
        (Value::Num(a), Value::Num(b)) => Some(a.cmp(b)),
        (Value::Str(a) | Value::Ref(a), Value::Str(b) | Value::Ref(b)) => {
            Some(a.as_ref().cmp(b.as_ref()))
        }
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Str(s)) | (Value::Str(s), Value::Bool(a)) => {
            let text = if *a { "true" } else { "false" };
            if s.eq_ignore_ascii_case(text) {
                Some(Ordering::Equal)
            } else {
                None
            }
        }
        (Value::Dt(a), Value::Dt(b)) => Some(a.cmp(b)),
        (Value::Bin(a), Value::Bin(b)) => Some(a.as_ref().cmp(b.as_ref())),
        _ => None,
    };
    let v = match (op, ord) {
        (BinOp::Eq, o) => o == Some(Ordering::Equal),
        (BinOp::Ne, o) => o != Some(Ordering::Equal),
        (_, None) => {
            return Err(Fault::new(
                "E0502",
                format!("cannot order {} and {}", l.type_name(), r.type_name()),
            ));
        }
        (BinOp::Lt, Some(o)) => o == Ordering::Less,
        (BinOp::Le, Some(o)) => o != Ordering::Greater,
        (BinOp::Gt, Some(o)) => o == Ordering::Greater,
        (_, Some(o)) => o != Ordering::Less,
    };
    Ok(Value::Bool(v))
}
