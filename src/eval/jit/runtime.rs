//! The runtime that generated code runs against: the frame of one evaluation ([`Rt`]) and the
//! host helpers generated code calls for string, multi-valued and error work.
//!
//! Consumes: pointers to [`Value`]s (attribute values, constants, temporaries) handed over by
//! generated code. Produces: values written into temporaries and a status (0 = ok, 1 = error;
//! the located [`EvalError`] is left in [`Rt::error`]). Every helper is `extern "C"` and never
//! unwinds: a panic inside one is caught and reported as an error, because unwinding out of
//! generated code would abort the process. The semantics are the interpreter's own functions
//! (`interp::operator`, `map_values`, ...), so both engines compute the same results.

use super::super::Ctx;
use super::super::interp::{self, EvalError};
use crate::builtins::{BuiltinFn, Fault};
use crate::ir::BinOp;
use crate::source::Span;
use crate::value::Value;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// The value every out-of-range load reads.
pub static NULL: Value = Value::Null;
/// The two booleans comparisons produce.
pub static TRUE: Value = Value::Bool(true);
pub static FALSE: Value = Value::Bool(false);

/// A builtin call site.
pub struct CallSite {
    pub f: BuiltinFn,
    pub mapped: Vec<bool>,
}

/// What generated code refers to by index: the spans of nodes (for error locations), call
/// sites, `&` chains and parameter names.
#[derive(Default)]
pub struct Tables {
    pub spans: Vec<Span>,
    pub calls: Vec<CallSite>,
    /// Per `&` chain: the node of each concatenation, innermost first.
    pub chains: Vec<Vec<u32>>,
    pub params: Vec<Arc<str>>,
}

/// The frame of one evaluation. Generated code reads the first fields at fixed offsets.
#[repr(C)]
pub struct Rt {
    pub attrs: *const Value,
    pub attrs_len: u64,
    pub imported: *const Value,
    pub imported_len: u64,
    /// The evaluation's temporaries (one per node that computes a value).
    pub temps: *mut Value,
    /// Values bound to `$variables`, by stack index.
    pub vars: *mut *const Value,
    pub max_steps: u64,
    /// The longest string a function may produce (`Limits::max_bytes`).
    pub max_bytes: u64,
    /// Where the result is, once the function returned 0.
    pub result: *const Value,
    pub ctx: *mut Ctx,
    pub tables: *const Tables,
    /// Growable scratch space; null for functions whose frame says they need none.
    pub heap: *mut Heap,
    pub error: Option<EvalError>,
}

/// Scratch space of evaluations with loops or calls of many arguments (reused per thread).
#[derive(Default)]
pub struct Heap {
    /// Collections being built by `Select`/`Where`, by loop.
    pub accs: Vec<Vec<Value>>,
    /// Arguments of a builtin call of more than four arguments.
    pub args: Vec<Value>,
}

/// Status values returned by helpers and generated functions.
pub const OK: u32 = 0;
pub const FAILED: u32 = 1;

impl Rt {
    fn span(&self, node: u32) -> Span {
        // SAFETY: `tables` points to the module's tables, alive for the whole evaluation.
        let t = unsafe { &*self.tables };
        t.spans.get(node as usize).cloned().unwrap_or(0..0)
    }

    #[allow(clippy::boxed_local)] // faults arrive boxed from the builtins
    fn fail(&mut self, node: u32, f: Box<Fault>) -> u32 {
        self.error = Some(EvalError {
            code: f.code,
            message: f.message,
            span: self.span(node),
        });
        FAILED
    }

    /// Runs a helper body: its result goes to `out`, its fault becomes the error at `node`,
    /// and a panic is caught (never unwinds into generated code).
    fn guard(
        &mut self,
        node: u32,
        out: *mut Value,
        body: impl FnOnce(&mut Rt) -> Result<Value, Box<Fault>>,
    ) -> u32 {
        match catch_unwind(AssertUnwindSafe(|| body(self))) {
            Ok(Ok(v)) => {
                // SAFETY: `out` is a temporary of the frame, a valid, initialised Value.
                unsafe { *out = v };
                OK
            }
            Ok(Err(f)) => self.fail(node, f),
            Err(_) => self.fail(
                node,
                Fault::new("E0502", "internal error in a runtime helper"),
            ),
        }
    }

    fn ctx(&mut self) -> &mut Ctx {
        // SAFETY: `ctx` is the evaluation's context, exclusively borrowed for its duration.
        unsafe { &mut *self.ctx }
    }
}

/// Reads a value generated code points at.
///
/// SAFETY (for callers): `p` points to a live Value — an attribute, a constant of the module, a
/// temporary of the frame or an element of one of those.
unsafe fn val<'a>(p: *const Value) -> &'a Value {
    // SAFETY: see above.
    unsafe { &*p }
}

/// The module's tables.
///
/// SAFETY (for callers): `t` is the frame's `tables`, which outlive the evaluation.
unsafe fn tables<'a>(t: *const Tables) -> &'a Tables {
    // SAFETY: see above.
    unsafe { &*t }
}

/// A builtin call: `argv` holds the call's argument pointers.
pub extern "C" fn rt_call(
    rt: *mut Rt,
    call: u32,
    argv: *const *const Value,
    out: *mut Value,
    node: u32,
) -> u32 {
    // SAFETY: generated code passes its own frame.
    let rt = unsafe { &mut *rt };
    rt.guard(node, out, |rt| {
        let site = &unsafe { tables(rt.tables) }.calls[call as usize];
        let n = site.mapped.len();
        // SAFETY: `argv` has one pointer per argument, each to a live value.
        let arg = |i: usize| unsafe { val(*argv.add(i)) };
        match n {
            // One argument is passed in place; up to four are gathered on the stack. Only a
            // multi-valued argument needs the mapping machinery.
            0 => (site.f)(rt.ctx(), &[]),
            1 if !matches!(arg(0), Value::Many(_)) => {
                (site.f)(rt.ctx(), std::slice::from_ref(arg(0)))
            }
            1 => interp::map_values(rt.ctx(), std::slice::from_ref(arg(0)), &site.mapped, site.f),
            2..=4 => {
                let mut buf: [Value; 4] = Default::default();
                for (i, b) in buf.iter_mut().enumerate().take(n) {
                    *b = arg(i).clone();
                }
                interp::map_values(rt.ctx(), &buf[..n], &site.mapped, site.f)
            }
            _ => {
                // SAFETY: a function with such a call has a heap (its frame says so).
                let heap = unsafe { &mut *rt.heap };
                let mut args = std::mem::take(&mut heap.args);
                args.clear();
                args.extend((0..n).map(|i| arg(i).clone()));
                let r = interp::map_values(rt.ctx(), &args, &site.mapped, site.f);
                args.clear();
                heap.args = args;
                r
            }
        }
    })
}

/// The operator codes generated code passes to [`rt_binary`].
pub const OPS: [BinOp; 12] = [
    BinOp::Concat,
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::Div,
    BinOp::Eq,
    BinOp::Ne,
    BinOp::Lt,
    BinOp::Le,
    BinOp::Gt,
    BinOp::Ge,
    BinOp::And,
];

/// The code of an operator for [`rt_binary`] (`||` is 12).
pub fn op_code(op: BinOp) -> u32 {
    if op == BinOp::Or {
        return 12;
    }
    OPS.iter().position(|o| *o == op).unwrap_or(0) as u32
}

/// A binary operator on its general path (multi-valued sides, NULLs, other types, errors).
pub extern "C" fn rt_binary(
    rt: *mut Rt,
    op: u32,
    l: *const Value,
    r: *const Value,
    out: *mut Value,
    node: u32,
) -> u32 {
    // SAFETY: generated code passes its own frame and live values.
    let rt = unsafe { &mut *rt };
    let (l, r) = unsafe { (val(l).clone(), val(r).clone()) };
    rt.guard(node, out, |rt| match op {
        11 => interp::logic(rt.ctx(), BinOp::And, l, r),
        12 => interp::logic(rt.ctx(), BinOp::Or, l, r),
        _ => interp::operator(rt.ctx(), OPS[op as usize], l, r),
    })
}

/// Unary minus on its general path.
pub extern "C" fn rt_neg(rt: *mut Rt, v: *const Value, out: *mut Value, node: u32) -> u32 {
    // SAFETY: generated code passes its own frame and a live value.
    let rt = unsafe { &mut *rt };
    let v = unsafe { val(v) }.clone();
    rt.guard(node, out, |rt| interp::negate(rt.ctx(), v))
}

/// A chain `a & b & c ...` of `n` operands: one allocation when every operand is a string or
/// NULL and the result fits; otherwise the pairwise left fold the interpreter does.
pub extern "C" fn rt_concat(
    rt: *mut Rt,
    chain: u32,
    argv: *const *const Value,
    n: u32,
    out: *mut Value,
) -> u32 {
    // SAFETY: generated code passes its own frame and `n` pointers to live values.
    let rt = unsafe { &mut *rt };
    let n = n as usize;
    // SAFETY: `argv` holds `n` pointers to live values.
    let arg = |i: usize| -> &Value { unsafe { val(*argv.add(i)) } };
    let args = || (0..n).map(arg);
    // SAFETY: the tables outlive the evaluation.
    let nodes = &unsafe { tables(rt.tables) }.chains[chain as usize];
    let plain = args().all(|v| matches!(v, Value::Str(_) | Value::Null));
    if plain {
        let total: usize = args().map(|v| v.as_str().map_or(0, str::len)).sum();
        let any = args().any(|v| !v.is_null());
        // What the interpreter's pairwise fold charges: each `&` of two non-NULL strings
        // builds their concatenation; with a NULL side the other side passes through.
        let mut charge = 0usize;
        let mut acc: Option<usize> = None;
        for v in args() {
            match (acc, v.as_str()) {
                (Some(a), Some(s)) => {
                    charge = charge.saturating_add(a.saturating_add(s.len()));
                    acc = Some(a.saturating_add(s.len()));
                }
                (None, Some(s)) => acc = Some(s.len()),
                (_, None) => {}
            }
        }
        if rt.ctx().limits.max_bytes >= total && rt.ctx().can_charge(charge) {
            // Cannot fail: checked just above.
            let _ = rt.ctx().charge(charge);
            let v = if any {
                concat_arc(args().filter_map(Value::as_str), total).map(Value::Str)
            } else {
                Some(Value::Null)
            };
            if let Some(v) = v {
                // SAFETY: `out` is a temporary of the frame.
                unsafe { *out = v };
                return OK;
            }
        }
    }
    let mut acc = if n > 0 { arg(0).clone() } else { Value::Null };
    for (i, v) in args().enumerate().skip(1) {
        let node = nodes.get(i - 1).copied().unwrap_or(0);
        let l = std::mem::take(&mut acc);
        let r = v.clone();
        let status = rt.guard(node, &mut acc, |rt| {
            interp::operator(rt.ctx(), BinOp::Concat, l, r)
        });
        if status != OK {
            return status;
        }
    }
    // SAFETY: `out` is a temporary of the frame.
    unsafe { *out = acc };
    OK
}

/// The concatenation of `parts` (`total` bytes together) in one allocation; `None` if the parts
/// do not add up to `total`.
fn concat_arc<'a>(parts: impl Iterator<Item = &'a str>, total: usize) -> Option<Arc<str>> {
    let mut buf: Arc<[std::mem::MaybeUninit<u8>]> = Arc::new_uninit_slice(total);
    let dst = Arc::get_mut(&mut buf)?;
    let mut filled = 0;
    for p in parts {
        let end = filled + p.len();
        let window = dst.get_mut(filled..end)?;
        // SAFETY: `window` is `p.len()` bytes of the new allocation, which `p` cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(p.as_ptr(), window.as_mut_ptr().cast::<u8>(), p.len())
        };
        filled = end;
    }
    if filled != total {
        return None;
    }
    // SAFETY: all `total` bytes were written above.
    let bytes: Arc<[u8]> = unsafe { buf.assume_init() };
    // SAFETY: the bytes are the concatenation of `str`s, so valid UTF-8; `str` and `[u8]` have
    // the same layout, so the pointer cast keeps the allocation and its length.
    Some(unsafe { Arc::from_raw(Arc::into_raw(bytes) as *const str) })
}

/// A condition that is neither a boolean nor NULL nor multi-valued: the type error.
pub extern "C" fn rt_truth_fail(rt: *mut Rt, v: *const Value, node: u32) -> u32 {
    // SAFETY: generated code passes its own frame and a live value.
    let rt = unsafe { &mut *rt };
    let v = unsafe { val(v) };
    match interp::truth(v) {
        Ok(_) => rt.fail(node, Fault::new("E0502", "condition is not a scalar")),
        Err(f) => rt.fail(node, f),
    }
}

/// Bit 0: some value of a multi-valued condition is true; bit 1: some is false; bit 31: error.
pub extern "C" fn rt_picks(rt: *mut Rt, cond: *const Value, node: u32) -> u32 {
    // SAFETY: generated code passes its own frame and a live value.
    let rt = unsafe { &mut *rt };
    let mut flags = 0;
    for c in unsafe { val(cond) }.values() {
        match interp::truth(c) {
            Ok(true) => flags |= 1,
            Ok(false) => flags |= 2,
            Err(f) => {
                rt.fail(node, f);
                return 1 << 31;
            }
        }
    }
    flags
}

/// The result of an `IIF` with a multi-valued condition once its branches are evaluated (the
/// budget error, if any, at `node`).
pub extern "C" fn rt_iif_zip(
    rt: *mut Rt,
    cond: *const Value,
    tv: *const Value,
    fv: *const Value,
    out: *mut Value,
    node: u32,
) -> u32 {
    // SAFETY: generated code passes its own frame, live values and a temporary.
    let rt = unsafe { &mut *rt };
    let (cond, tv, fv) = unsafe { (val(cond), val(tv), val(fv)) };
    let picks: Vec<bool> = cond
        .values()
        .iter()
        .map(|c| matches!(c, Value::Bool(true)))
        .collect();
    rt.guard(node, out, |rt| interp::iif_zip(rt.ctx(), &picks, tv, fv))
}

/// The value of a parameter (NULL when it has none).
pub extern "C" fn rt_param(rt: *mut Rt, param: u32) -> *const Value {
    // SAFETY: generated code passes its own frame; tables and ctx outlive the evaluation.
    let rt = unsafe { &mut *rt };
    let name = &unsafe { tables(rt.tables) }.params[param as usize];
    match rt.ctx().param(name) {
        Some(v) => v as *const Value,
        None => &NULL,
    }
}

/// `ValueCount`.
pub extern "C" fn rt_value_count(v: *const Value, out: *mut Value) {
    // SAFETY: generated code passes a live value and a temporary.
    let n = unsafe { val(v) }.values().len();
    unsafe { *out = Value::Num(n as i64) };
}

/// `IsPresent` of a string or multi-valued value (other tags are decided inline).
pub extern "C" fn rt_is_present(v: *const Value) -> u32 {
    // SAFETY: generated code passes a live value.
    let v = unsafe { val(v) };
    u32::from(
        !v.values()
            .iter()
            .all(|x| x.as_str().is_some_and(str::is_empty)),
    )
}

/// The number of values a loop over `v` visits.
pub extern "C" fn rt_len(v: *const Value) -> u64 {
    // SAFETY: generated code passes a live value.
    unsafe { val(v) }.values().len() as u64
}

/// The `i`th value of `v` (the loop variable of `Select`/`Where`).
pub extern "C" fn rt_elem(v: *const Value, i: u64) -> *const Value {
    // SAFETY: generated code passes a live value and `i < rt_len(v)`.
    match unsafe { val(v) }.values().get(i as usize) {
        Some(x) => x as *const Value,
        None => &NULL,
    }
}

/// Appends a `Select` body result (flattened, NULLs dropped) or a `Where` element to loop
/// `acc`'s collection, charging the values added to the budget (failing at `node`).
pub extern "C" fn rt_acc_push(rt: *mut Rt, acc: u32, v: *const Value, flat: u32, node: u32) -> u32 {
    // SAFETY: generated code passes its own frame and a live value.
    let rt = unsafe { &mut *rt };
    let v = unsafe { val(v) }.clone();
    let acc = acc as usize;
    // SAFETY: a function with loops has a heap (its frame says so).
    let heap = unsafe { &mut *rt.heap };
    if heap.accs.len() <= acc {
        heap.accs.resize_with(acc + 1, Vec::new);
    }
    match interp::push_charged(rt.ctx(), &mut heap.accs[acc], v, flat != 0) {
        Ok(()) => OK,
        Err(f) => rt.fail(node, f),
    }
}

/// Finishes loop `acc`: its collection goes to `out` (checked against the value limit for
/// `Select`).
pub extern "C" fn rt_acc_finish(
    rt: *mut Rt,
    acc: u32,
    out: *mut Value,
    node: u32,
    check: u32,
) -> u32 {
    // SAFETY: generated code passes its own frame and a temporary.
    let rt = unsafe { &mut *rt };
    // SAFETY: a function with loops has a heap (its frame says so).
    let heap = unsafe { &mut *rt.heap };
    let items = heap
        .accs
        .get_mut(acc as usize)
        .map(std::mem::take)
        .unwrap_or_default();
    rt.guard(node, out, |rt| {
        if check != 0 {
            rt.ctx().check_values(items.len())?;
        }
        Ok(Value::many(items))
    })
}

/// `Error(message)`: always fails.
pub extern "C" fn rt_error(rt: *mut Rt, msg: *const Value, node: u32) -> u32 {
    // SAFETY: generated code passes its own frame and a live value.
    let rt = unsafe { &mut *rt };
    let text = match unsafe { val(msg) } {
        Value::Str(s) | Value::Ref(s) => s.to_string(),
        v if v.is_null() => String::new(),
        other => interp::render_scalar(other),
    };
    rt.fail(node, Fault::new("E0501", text))
}

/// The step limit was exceeded at `node`.
pub extern "C" fn rt_step_fail(rt: *mut Rt, node: u32) -> u32 {
    // SAFETY: generated code passes its own frame.
    let rt = unsafe { &mut *rt };
    let max = rt.max_steps;
    rt.fail(
        node,
        Fault::new("E0512", format!("evaluation exceeded {max} steps")),
    )
}

/// Clears a temporary before generated code stores a number into it in place (inside loops,
/// where it may still hold a value of an earlier iteration).
pub extern "C" fn rt_clear(v: *mut Value) {
    // SAFETY: generated code passes a temporary.
    unsafe { *v = Value::Null };
}

/// Where a string's or a collection's length is inside a [`Value`], found by looking at values
/// of known lengths (the layout of `Arc<str>` and `Arc<[T]>` fat pointers is not specified, so
/// it is observed rather than assumed); `None` when it cannot be told, and helpers are used.
pub fn len_offset() -> Option<i32> {
    fn words(v: &Value) -> [usize; 2] {
        let p = v as *const Value as *const usize;
        // SAFETY: a Value is three words (checked by the caller); words 1 and 2 are the
        // payload of a string or collection, its fat pointer, fully initialised.
        unsafe { [*p.add(1), *p.add(2)] }
    }
    if std::mem::size_of::<Value>() != 3 * std::mem::size_of::<usize>() {
        return None;
    }
    let probes = [
        (Value::from("abc"), 3),
        (Value::from("abcdefghijklm"), 13),
        (Value::Ref("x".into()), 1),
        (Value::many(vec![Value::Null; 5]), 5),
        (Value::many(vec![Value::Num(1); 9]), 9),
    ];
    for (k, off) in [(0usize, 8i32), (1, 16)] {
        if probes.iter().all(|(v, n)| words(v)[k] == *n) {
            return Some(off);
        }
    }
    None
}

/// Where a string's bytes are, seen from a [`Value::Str`]: the offset of the pointer word in the
/// value and the offset of the first byte from that pointer (the `Arc` header). Observed on
/// values of known contents, like [`len_offset`]; `None` when it cannot be told.
pub fn str_data() -> Option<(i32, i64)> {
    let len_at = len_offset()?;
    let ptr_at = if len_at == 16 { 8 } else { 16 };
    let mut found = None;
    for text in ["abc", "hello, world", "x"] {
        let v = Value::from(text);
        let p = &v as *const Value as *const u8;
        // SAFETY: a Value is three words; the pointer word of a string is initialised.
        let word = unsafe { *(p.add(ptr_at as usize) as *const usize) };
        let data = v.as_str()?.as_ptr() as usize;
        let off = data.checked_sub(word)? as i64;
        if found.is_some_and(|f| f != off) {
            return None;
        }
        found = Some(off);
    }
    found.map(|off| (ptr_at, off))
}
