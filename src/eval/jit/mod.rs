//! The Cranelift JIT: native code for every expression of a bundle, behind the interpreter's
//! interface.
//!
//! Consumes: lowered expressions ([`crate::ir::Expr`]). Produces: a [`Module`] — one Cranelift
//! JIT module per bundle generation holding a native function per expression, freed when the
//! module is dropped — whose [`Module::eval`] returns exactly what
//! [`crate::eval::interp::eval`] returns for the same expression, object and context (value,
//! error code and error location). This is the only module of the crate with `unsafe` code;
//! every unsafe block says why it is sound.

#![allow(unsafe_code)]

mod codegen;
mod runtime;

use super::Ctx;
use super::interp::{EvalError, Evaluated, Object};
use crate::ir::{Expr, Node};
use crate::source::Span;
use crate::value::Value;
use codegen::{FrameSize, Gen};
use cranelift_codegen::ir::{AbiParam, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module as _, default_libcall_names};
use runtime::{Heap, Rt, Tables};
use std::cell::RefCell;

type Code = unsafe extern "C" fn(*mut Rt) -> u32;

/// How one expression runs.
enum Entry {
    /// `[attr]`: a copy of the slot, no call at all.
    Direct(u32, Span),
    /// A constant: a copy of it, no call at all.
    Const(Value, Span),
    Native {
        code: Code,
        frame: FrameSize,
    },
}

/// The compiled expressions of one bundle generation.
pub struct Module {
    /// The generated code as text, when asked for.
    listing: Option<String>,
    entries: Vec<Entry>,
    /// Spans, call sites and parameter names the generated code refers to by index.
    tables: Box<Tables>,
    /// Constants the generated code points at (boxed: their addresses never move).
    #[allow(clippy::vec_box)]
    _consts: Vec<Box<Value>>,
    /// The code; released when the module is dropped.
    jit: Option<JITModule>,
}

// SAFETY: after `Module::compile` returns, the JIT module, the tables and the constants are
// never mutated again (generated code only reads them); the code pages are freed only in
// `drop`, when no evaluation can be running.
unsafe impl Send for Module {}
// SAFETY: as above: shared access is read-only.
unsafe impl Sync for Module {}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("jit::Module")
            .field("functions", &self.entries.len())
            .finish()
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        if let Some(m) = self.jit.take() {
            // SAFETY: the module is being dropped, so none of its functions is running or can
            // be called again (the entries holding their pointers go with it).
            unsafe { m.free_memory() };
        }
    }
}

/// Whether this machine can run generated code (Cranelift knows its ISA).
pub fn available() -> bool {
    cranelift_native::builder().is_ok()
}

impl Module {
    /// Compiles every expression; `eval(i, ..)` then runs `exprs[i]`.
    pub fn compile(exprs: &[&Expr]) -> Result<Module, String> {
        Module::compile_with(exprs, false)
    }

    /// Compiles; with `dump`, [`Module::dump`] then holds the Cranelift IR and the machine code
    /// of every generated function.
    pub fn compile_with(exprs: &[&Expr], dump: bool) -> Result<Module, String> {
        let mut listing = dump.then(String::new);
        let mut fb = settings::builder();
        let set = |fb: &mut settings::Builder, k: &str, v: &str| {
            fb.set(k, v)
                .map_err(|e| format!("cranelift setting {k}: {e}"))
        };
        set(&mut fb, "opt_level", "speed")?;
        set(&mut fb, "use_colocated_libcalls", "false")?;
        set(&mut fb, "is_pic", "false")?;
        let isa = cranelift_native::builder()
            .map_err(|e| format!("no native code generator for this machine: {e}"))?
            .finish(settings::Flags::new(fb))
            .map_err(|e| format!("cranelift ISA: {e}"))?;
        let call_conv = isa.default_call_conv();
        let mut jit = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        let len_offset = runtime::len_offset();
        let layout = codegen::Layout {
            len: len_offset,
            str_data: runtime::str_data(),
        };
        let mut tables = Box::new(Tables::default());
        let mut consts = Vec::new();
        let mut entries = Vec::with_capacity(exprs.len());
        let mut pending = Vec::new();
        let mut ctx = jit.make_context();
        let mut fctx = FunctionBuilderContext::new();
        for (i, e) in exprs.iter().enumerate() {
            match &e.node {
                Node::Attr(s) => {
                    entries.push(Entry::Direct(*s, e.span.clone()));
                    continue;
                }
                Node::Const(v) => {
                    entries.push(Entry::Const(v.clone(), e.span.clone()));
                    continue;
                }
                _ => {}
            }
            let ptr = jit.target_config().pointer_type();
            ctx.func.signature.params.push(AbiParam::new(ptr));
            ctx.func.signature.returns.push(AbiParam::new(types::I32));
            let frame = {
                let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
                let frame = Gen::function(&mut b, &mut tables, &mut consts, call_conv, layout, e);
                b.finalize(jit.target_config());
                frame
            };
            let id = jit
                .declare_function(&format!("e{i}"), Linkage::Local, &ctx.func.signature)
                .map_err(|e| e.to_string())?;
            if let Some(l) = &mut listing {
                l.push_str(&format!(
                    "; expression {i}: Cranelift IR\n{}\n",
                    ctx.func.display()
                ));
                ctx.set_disasm(true);
            }
            jit.define_function(id, &mut ctx)
                .map_err(|e| format!("code generation: {e:?}"))?;
            if let Some(l) = &mut listing {
                let code = ctx.compiled_code().and_then(|c| c.vcode.as_ref());
                l.push_str(&format!(
                    "; expression {i}: machine code\n{}\n",
                    code.map_or("", String::as_str)
                ));
            }
            jit.clear_context(&mut ctx);
            pending.push((entries.len(), id, frame));
            entries.push(Entry::Const(Value::Null, 0..0));
        }
        jit.finalize_definitions().map_err(|e| e.to_string())?;
        for (slot, id, frame) in pending {
            let p = jit.get_finalized_function(id);
            // SAFETY: `p` is the finalized code of a function generated with the signature
            // `fn(*mut Rt) -> u32` in the host calling convention, which is `extern "C"`.
            let code = unsafe { std::mem::transmute::<*const u8, Code>(p) };
            entries[slot] = Entry::Native { code, frame };
        }
        Ok(Module {
            listing,
            entries,
            tables,
            _consts: consts,
            jit: Some(jit),
        })
    }

    /// The Cranelift IR and machine code of the generated functions, if compiled with `dump`.
    /// Expressions that are a plain attribute or a constant have no function.
    pub fn dump(&self) -> Option<&str> {
        self.listing.as_deref()
    }

    /// Evaluates expression `i` (which is `e`) for one object.
    #[inline]
    pub fn eval(&self, ctx: &mut Ctx, i: usize, e: &Expr, obj: Object<'_>) -> Evaluated {
        ctx.begin();
        let (code, frame) = match self.entries.get(i) {
            Some(Entry::Native { code, frame })
                if frame.counted || u64::from(frame.nodes) <= ctx.limits.max_steps =>
            {
                (*code, *frame)
            }
            // A step limit below the node count: the interpreter counts every step.
            Some(Entry::Native { .. }) => return super::interp::eval(ctx, e, obj),
            // A one-node expression takes one step: it fails only with no steps at all.
            Some(Entry::Direct(_, span) | Entry::Const(_, span)) if ctx.limits.max_steps == 0 => {
                return Err(Box::new(EvalError {
                    code: "E0512",
                    message: "evaluation exceeded 0 steps".into(),
                    span: span.clone(),
                }));
            }
            Some(Entry::Direct(s, _)) => {
                return Ok(obj.attrs.get(*s as usize).cloned().unwrap_or_default());
            }
            Some(Entry::Const(v, _)) => return Ok(v.clone()),
            None => return Ok(Value::Null),
        };
        if !frame.heap && frame.temps as usize <= SMALL && frame.vars as usize <= SMALL {
            // A small frame lives on the stack.
            if frame.temps == 0 && frame.vars == 0 {
                return run(
                    ctx,
                    &self.tables,
                    code,
                    obj,
                    &mut [],
                    &mut [],
                    std::ptr::null_mut(),
                );
            }
            let n = frame.temps as usize;
            let mut space = [const { std::mem::MaybeUninit::<Value>::uninit() }; SMALL];
            for t in &mut space[..n] {
                t.write(Value::Null);
            }
            // SAFETY: the first `n` elements were just initialised. They need no drop
            // afterwards: `run` leaves every temporary NULL, which owns nothing.
            let temps =
                unsafe { std::slice::from_raw_parts_mut(space.as_mut_ptr().cast::<Value>(), n) };
            let mut vars = [std::ptr::null(); SMALL];
            return run(
                ctx,
                &self.tables,
                code,
                obj,
                temps,
                &mut vars,
                std::ptr::null_mut(),
            );
        }
        FRAME.with(|cell| {
            let mut fr = cell.take();
            fr.temps.resize(frame.temps as usize, Value::Null);
            fr.vars.resize(frame.vars as usize, std::ptr::null());
            let r = run(
                ctx,
                &self.tables,
                code,
                obj,
                &mut fr.temps,
                &mut fr.vars,
                &mut fr.heap,
            );
            for a in fr.heap.accs.iter_mut() {
                a.clear();
            }
            cell.replace(fr);
            r
        })
    }
}

/// Frames with at most this many temporaries and variables (and no loops) live on the stack.
const SMALL: usize = 8;

/// The reusable parts of an evaluation frame (per thread).
#[derive(Default)]
struct Frame {
    temps: Vec<Value>,
    vars: Vec<*const Value>,
    heap: Heap,
}

thread_local! {
    static FRAME: RefCell<Frame> = RefCell::new(Frame::default());
}

#[inline(always)]
fn run(
    ctx: &mut Ctx,
    tables: &Tables,
    code: Code,
    obj: Object<'_>,
    temps: &mut [Value],
    vars: &mut [*const Value],
    heap: *mut Heap,
) -> Evaluated {
    let mut rt = Rt {
        attrs: obj.attrs.as_ptr(),
        attrs_len: obj.attrs.len() as u64,
        imported: obj.imported.as_ptr(),
        imported_len: obj.imported.len() as u64,
        temps: temps.as_mut_ptr(),
        vars: vars.as_mut_ptr(),
        max_steps: ctx.limits.max_steps,
        max_bytes: ctx.limits.max_bytes as u64,
        result: std::ptr::null(),
        ctx,
        tables,
        heap,
        error: None,
    };
    // SAFETY: `code` was generated for this frame layout: it reads the object's attribute
    // arrays within their lengths, writes only the temporaries and variables its `FrameSize`
    // counts (the slices above are at least that long), and calls only the runtime helpers,
    // which never unwind. `ctx`, `tables` and the object outlive the call.
    let status = unsafe { code(&mut rt) };
    let result = if status == runtime::OK {
        let p = rt.result;
        let base = temps.as_ptr();
        let in_temps = p >= base && p < base.wrapping_add(temps.len());
        // SAFETY: `p` points to a live value: a temporary, an attribute of the object, a
        // constant of the module or a static.
        let tag = unsafe { *(p as *const u8) };
        if matches!(tag, 0..=2 | Value::TAG_NUM | Value::TAG_BOOL | 7) {
            // NULL, a number, a boolean or a date owns nothing: a bitwise copy is a clone
            // (and cheaper than the derived clone, which copies through partial stores).
            // SAFETY: as above; the variants of these tags hold no heap data.
            Ok(unsafe { std::ptr::read(p) })
        } else if in_temps {
            let idx = (p as usize - base as usize) / std::mem::size_of::<Value>();
            Ok(std::mem::take(&mut temps[idx]))
        } else {
            // SAFETY: as above.
            Ok(unsafe { (*p).clone() })
        }
    } else {
        Err(Box::new(rt.error.take().unwrap_or(EvalError {
            code: "E0502",
            message: "evaluation failed without an error".into(),
            span: 0..0,
        })))
    };
    for t in temps.iter_mut() {
        if !matches!(t, Value::Null) {
            *t = Value::Null;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated code reads tags and payloads in place: the layout must be what it assumes.
    #[test]
    fn value_layout_is_what_generated_code_reads() {
        let tag = |v: &Value| unsafe { *(v as *const Value as *const u8) };
        assert_eq!(tag(&Value::Null), 0);
        assert_eq!(tag(&Value::IgnoreThisFlow), Value::TAG_LAST_NULL);
        assert_eq!(tag(&Value::from("x")), Value::TAG_STR);
        assert_eq!(tag(&Value::Ref("x".into())), Value::TAG_REF);
        assert_eq!(tag(&Value::Num(1)), Value::TAG_NUM);
        assert_eq!(tag(&Value::Bool(true)), Value::TAG_BOOL);
        assert_eq!(tag(&Value::many(vec![Value::Num(1)])), Value::TAG_MANY);
        let n = Value::Num(-5);
        let payload = unsafe { *((&n as *const Value as *const u8).add(8) as *const i64) };
        assert_eq!(payload, -5);
        let b = Value::Bool(true);
        assert_eq!(unsafe { *(&b as *const Value as *const u8).add(8) }, 1);
        // An evaluation result is no larger than a value.
        assert_eq!(
            std::mem::size_of::<super::super::interp::Evaluated>(),
            std::mem::size_of::<Value>()
        );
        assert_eq!(
            runtime::len_offset().is_some(),
            cfg!(target_pointer_width = "64")
        );
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    fn resident_kib() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Each bundle generation's code is released when its module is dropped: compiling and
    /// dropping the same large module many times does not grow the process.
    #[test]
    fn dropping_a_module_frees_its_code() {
        let texts: Vec<String> = (0..400)
            .map(|i| {
                format!(
                    "IIF(IsPresent([a]), Left(Trim([a]), {i}) & \"-{i}\", BitAnd([n], {i}) + {i})"
                )
            })
            .collect();
        let attrs = vec![
            ("a".to_string(), Value::from(" x ")),
            ("n".to_string(), Value::Num(7)),
        ];
        let prepared: Vec<_> = texts
            .iter()
            .map(|t| super::super::adhoc::prepare("m", t, &attrs, &[]).expect("checks"))
            .collect();
        let exprs: Vec<&Expr> = prepared.iter().map(|p| &p.expr).collect();
        let once = || {
            let m = Module::compile(&exprs).expect("compiles");
            let mut ctx = Ctx::fixed();
            let p = &prepared[5];
            let obj = Object {
                attrs: &p.values,
                imported: &p.values,
            };
            assert_eq!(m.eval(&mut ctx, 5, &p.expr, obj), Ok(Value::from("x-5")));
        };
        for _ in 0..3 {
            once();
        }
        let Some(before) = resident_kib() else {
            return;
        };
        for _ in 0..20 {
            once();
        }
        let after = resident_kib().unwrap_or(before);
        // One module of 400 functions takes about 400 KiB of code; twenty leaked would be
        // about 8 MiB.
        assert!(
            after < before + 4 * 1024,
            "resident memory grew from {before} KiB to {after} KiB"
        );
    }
}
