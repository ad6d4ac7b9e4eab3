//! Evaluation of compiled expressions.
//!
//! Consumes: lowered expressions ([`crate::ir`]) and an object's attribute values. Produces:
//! [`Value`]s or located runtime errors. [`Ctx`] carries what one evaluation may use: the
//! resource [`Limits`], the run's single `now`, a deterministic random source and the
//! parameters. `interp` is the reference interpreter; `jit` compiles the same expressions to
//! native code with Cranelift. [`Program`] puts either behind one interface.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod adhoc;
pub mod interp;
#[cfg(feature = "jit")]
pub mod jit;
pub mod json;

pub use crate::builtins::ctx::{Ctx, Limits, VALUE_BYTES};
use crate::ir;
use interp::{Evaluated, Object};

/// Which evaluator runs expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// The reference interpreter (available everywhere).
    Interp,
    /// Native code generated with Cranelift.
    Jit,
}

impl EngineKind {
    /// The JIT where this build and machine can run it, the interpreter everywhere else.
    pub fn preferred() -> EngineKind {
        if jit_available() {
            EngineKind::Jit
        } else {
            EngineKind::Interp
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Interp => "interp",
            EngineKind::Jit => "jit",
        }
    }
}

/// Whether this build includes the JIT and the machine supports it.
pub fn jit_available() -> bool {
    #[cfg(feature = "jit")]
    {
        jit::available()
    }
    #[cfg(not(feature = "jit"))]
    {
        false
    }
}

/// A set of expressions compiled for one evaluator. Expressions are numbered in the order they
/// were given to [`Program::new`]; [`Program::eval`] takes that number and the expression.
#[derive(Debug, Default)]
pub struct Program {
    #[cfg(feature = "jit")]
    jit: Option<jit::Module>,
}

impl Program {
    /// Compiles `exprs` for `kind`. When the JIT is asked for but cannot be used here, the
    /// program falls back to the interpreter with the reason in `Err` of [`Program::try_new`].
    pub fn new(kind: EngineKind, exprs: &[&ir::Expr]) -> Program {
        match Program::try_new(kind, exprs) {
            Ok(p) => p,
            Err(reason) => {
                tracing::warn!("JIT unavailable, using the interpreter: {reason}");
                Program::default()
            }
        }
    }

    /// Compiles `exprs` for `kind`, failing when the JIT is asked for and cannot be used.
    pub fn try_new(kind: EngineKind, exprs: &[&ir::Expr]) -> Result<Program, String> {
        match kind {
            EngineKind::Interp => Ok(Program::default()),
            #[cfg(feature = "jit")]
            EngineKind::Jit => Ok(Program {
                jit: Some(jit::Module::compile(exprs)?),
            }),
            #[cfg(not(feature = "jit"))]
            EngineKind::Jit => {
                let _ = exprs;
                Err("this build has no JIT (built without the `jit` feature)".into())
            }
        }
    }

    /// Compiles `exprs` for the JIT keeping a listing of the generated code ([`Program::dump`]).
    pub fn jit_with_dump(exprs: &[&ir::Expr]) -> Result<Program, String> {
        #[cfg(feature = "jit")]
        {
            Ok(Program {
                jit: Some(jit::Module::compile_with(exprs, true)?),
            })
        }
        #[cfg(not(feature = "jit"))]
        {
            let _ = exprs;
            Err("this build has no JIT (built without the `jit` feature)".into())
        }
    }

    /// The generated code as text, for a program made by [`Program::jit_with_dump`].
    pub fn dump(&self) -> Option<&str> {
        #[cfg(feature = "jit")]
        if let Some(m) = &self.jit {
            return m.dump();
        }
        None
    }

    /// The evaluator that runs this program.
    pub fn kind(&self) -> EngineKind {
        #[cfg(feature = "jit")]
        if self.jit.is_some() {
            return EngineKind::Jit;
        }
        EngineKind::Interp
    }

    /// Evaluates expression number `i` (which is `e`) for one object.
    #[inline]
    pub fn eval(&self, ctx: &mut Ctx, i: usize, e: &ir::Expr, obj: Object<'_>) -> Evaluated {
        #[cfg(feature = "jit")]
        if let Some(m) = &self.jit {
            return m.eval(ctx, i, e, obj);
        }
        let _ = i;
        interp::eval(ctx, e, obj)
    }
}
