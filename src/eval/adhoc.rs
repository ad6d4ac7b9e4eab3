//! Evaluation of one standalone expression against named attribute values: the engine behind
//! `idflow eval`, the conformance suite and the stdlib example tests.
//!
//! Consumes: expression text, attribute values by name and parameter values. Produces: the
//! checker's diagnostics when the expression does not check (attributes are typed from their
//! values; attributes the expression reads but that are not given are absent and of any type),
//! or a [`Prepared`] expression to evaluate with the interpreter.

use super::Ctx;
use super::interp::{self, Evaluated, Object};
use crate::diag::Diagnostic;
use crate::ir;
use crate::sema::schema::{AttrDef, ObjectDef, ParamDef, assign_slots};
use crate::sema::typeck::{Env, lower_expr};
use crate::sema::types::{Base, Ty};
use crate::source::{FileId, SourceMap};
use crate::value::Value;
use std::collections::BTreeMap;

/// A checked, lowered expression with its input values by slot.
pub struct Prepared {
    pub map: SourceMap,
    pub ty: Ty,
    pub expr: ir::Expr,
    pub values: Vec<Value>,
    pub warnings: Vec<Diagnostic>,
}

/// The type of an input value.
pub fn type_of(v: &Value) -> Ty {
    match v {
        Value::Str(_) => Ty::one(Base::Str),
        Value::Ref(_) => Ty::one(Base::Ref),
        Value::Num(_) => Ty::one(Base::Num),
        Value::Bool(_) => Ty::one(Base::Bool),
        Value::Bin(_) => Ty::one(Base::Bin),
        Value::Dt(_) => Ty::one(Base::Dt),
        Value::Many(items) => items
            .first()
            .map_or(Ty::many(Base::Any), |i| type_of(i).with_multi(true)),
        _ => Ty::ANY,
    }
}

/// Parses, checks and lowers `text`. On failure returns the source map and every diagnostic.
pub fn prepare(
    name: &str,
    text: &str,
    attrs: &[(String, Value)],
    params: &[(String, Value)],
) -> Result<Prepared, (SourceMap, Vec<Diagnostic>)> {
    let mut map = SourceMap::new();
    let file = map.add(name, text);
    let (expr, mut diags) = crate::syntax::parse_expr(file, text);
    let Some(expr) = expr else {
        return Err((map, diags));
    };
    if diags.iter().any(Diagnostic::is_error) {
        return Err((map, diags));
    }
    let mut defs: BTreeMap<String, AttrDef> = BTreeMap::new();
    let def = |name: &str, ty: Ty| AttrDef {
        name: name.to_string(),
        slot: 0,
        base: ty.base,
        multi: ty.multi,
        unique: false,
        ref_target: None,
        file: FileId(0),
        span: 0..0,
    };
    for (n, v) in attrs {
        defs.insert(n.clone(), def(n, type_of(v)));
    }
    for n in expr.attribute_names() {
        defs.entry(n.to_string()).or_insert_with(|| def(n, Ty::ANY));
    }
    assign_slots(&mut defs);
    let object = ObjectDef {
        name: "input".into(),
        anchor: None,
        attrs: defs,
        file: FileId(0),
        span: 0..0,
    };
    let param_defs: BTreeMap<String, ParamDef> = params
        .iter()
        .map(|(n, v)| {
            let base = match type_of(v).base {
                Base::Any => Base::Str,
                b => b,
            };
            (
                n.clone(),
                ParamDef {
                    name: n.clone(),
                    base,
                },
            )
        })
        .collect();
    let env = Env {
        file,
        object: Some(&object),
        params: vec![&param_defs],
    };
    let (ty, lowered) = lower_expr(&env, &expr, &mut diags);
    if diags.iter().any(Diagnostic::is_error) {
        return Err((map, diags));
    }
    let mut values = vec![Value::Null; object.attrs.len()];
    for (n, v) in attrs {
        if let Some(d) = object.attrs.get(n)
            && let Some(slot) = values.get_mut(d.slot as usize)
        {
            *slot = v.clone();
        }
    }
    Ok(Prepared {
        map,
        ty,
        expr: lowered,
        values,
        warnings: diags,
    })
}

impl Prepared {
    /// Evaluates with `kind` (the expression is compiled first for the JIT).
    pub fn eval_with(&self, kind: super::EngineKind, ctx: &mut Ctx) -> Evaluated {
        self.eval_program(&super::Program::new(kind, &[&self.expr]), ctx)
    }

    /// Evaluates with a program compiled from this expression alone.
    pub fn eval_program(&self, program: &super::Program, ctx: &mut Ctx) -> Evaluated {
        program.eval(
            ctx,
            0,
            &self.expr,
            Object {
                attrs: &self.values,
                imported: &self.values,
            },
        )
    }

    /// Evaluates with the interpreter; the inputs serve as the confirmed imported values too.
    pub fn eval(&self, ctx: &mut Ctx) -> Evaluated {
        interp::eval(
            ctx,
            &self.expr,
            Object {
                attrs: &self.values,
                imported: &self.values,
            },
        )
    }
}
