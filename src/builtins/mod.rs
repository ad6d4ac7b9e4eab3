//! Native implementations of the stdlib functions, one file per stdlib area.
//!
//! Consumes: argument [`Value`]s (already evaluated; multi-valued arguments of scalar
//! parameters have been mapped by the interpreter, so such a parameter receives one scalar or
//! NULL) and the evaluation [`Ctx`]. Produces: a [`Value`] or a [`Fault`] with a runtime error
//! code (E05xx). Builtins never panic: malformed input is a fault.
//!
//! The special forms `IIF`, `Switch`, `Select`, `Where`, `With`, `Error`, `ImportedValue` and
//! `ValueCount` are evaluated by the interpreter itself, not here.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod certificate;
pub mod conversion;
pub mod ctx;
pub mod datetime;
pub mod directory;
pub mod engine;
pub mod evaluation;
pub mod math;
pub mod multivalued;
pub mod text;

use crate::builtins::ctx::Ctx;
use crate::value::Value;

/// A runtime error raised by a builtin or the interpreter; the interpreter adds the location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: &'static str,
    pub message: String,
}

impl Fault {
    /// A fault, boxed: results then stay as small as a [`Value`], which keeps the success path
    /// (every call) cheap at the price of an allocation on the error path.
    pub fn new(code: &'static str, message: impl Into<String>) -> Box<Fault> {
        Box::new(Fault {
            code,
            message: message.into(),
        })
    }

    /// E0502: a value of the wrong type reached a function at run time.
    pub fn type_error(function: &str, expected: &str, got: &Value) -> Box<Fault> {
        Fault::new(
            "E0502",
            format!("{function}: expected {expected}, got {}", got.type_name()),
        )
    }

    /// E0503: an argument has the right type but an invalid value (bad base64, GUID, ...).
    pub fn invalid(function: &str, message: impl std::fmt::Display) -> Box<Fault> {
        Fault::new("E0503", format!("{function}: {message}"))
    }
}

/// The result of a builtin.
pub type Outcome = Result<Value, Box<Fault>>;

/// A builtin: the function name's implementation for every overload.
pub type BuiltinFn = fn(&mut Ctx, &[Value]) -> Outcome;

/// The implementation of a stdlib function, by name. The special forms return None.
pub fn lookup(name: &str) -> Option<BuiltinFn> {
    certificate::lookup(name)
        .or_else(|| conversion::lookup(name))
        .or_else(|| datetime::lookup(name))
        .or_else(|| directory::lookup(name))
        .or_else(|| engine::lookup(name))
        .or_else(|| evaluation::lookup(name))
        .or_else(|| math::lookup(name))
        .or_else(|| multivalued::lookup(name))
        .or_else(|| text::lookup(name))
}

/// The functions the interpreter evaluates itself (lazily or with access to the object).
pub const SPECIAL_FORMS: &[&str] = &[
    "IIF",
    "Switch",
    "Select",
    "Where",
    "With",
    "Error",
    "ImportedValue",
    "ValueCount",
];

/// Helpers shared by the builtin modules for reading arguments.
pub mod args {
    use super::{Fault, Value};
    use std::sync::Arc;

    /// Argument `i`, or NULL when the call has fewer arguments.
    pub fn get(args: &[Value], i: usize) -> &Value {
        args.get(i).unwrap_or(&Value::Null)
    }

    /// A string argument (str or ref); None for NULL.
    pub fn str<'a>(f: &str, args: &'a [Value], i: usize) -> Result<Option<&'a str>, Box<Fault>> {
        match get(args, i) {
            v if v.is_null() => Ok(None),
            Value::Str(s) | Value::Ref(s) => Ok(Some(s)),
            other => Err(Fault::type_error(f, "str", other)),
        }
    }

    /// A shared string argument (to return it unchanged without copying).
    pub fn arc_str(f: &str, args: &[Value], i: usize) -> Result<Option<Arc<str>>, Box<Fault>> {
        match get(args, i) {
            v if v.is_null() => Ok(None),
            Value::Str(s) | Value::Ref(s) => Ok(Some(s.clone())),
            other => Err(Fault::type_error(f, "str", other)),
        }
    }

    /// A number argument; None for NULL.
    pub fn num(f: &str, args: &[Value], i: usize) -> Result<Option<i64>, Box<Fault>> {
        match get(args, i) {
            v if v.is_null() => Ok(None),
            Value::Num(n) => Ok(Some(*n)),
            other => Err(Fault::type_error(f, "num", other)),
        }
    }

    /// A boolean argument; None for NULL.
    pub fn bool(f: &str, args: &[Value], i: usize) -> Result<Option<bool>, Box<Fault>> {
        match get(args, i) {
            v if v.is_null() => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            other => Err(Fault::type_error(f, "bool", other)),
        }
    }

    /// A binary argument; None for NULL.
    pub fn bin<'a>(f: &str, args: &'a [Value], i: usize) -> Result<Option<&'a [u8]>, Box<Fault>> {
        match get(args, i) {
            v if v.is_null() => Ok(None),
            Value::Bin(b) => Ok(Some(b)),
            other => Err(Fault::type_error(f, "bin", other)),
        }
    }

    /// A date-time argument; None for NULL.
    pub fn dt(
        f: &str,
        args: &[Value],
        i: usize,
    ) -> Result<Option<crate::value::DateTime>, Box<Fault>> {
        match get(args, i) {
            v if v.is_null() => Ok(None),
            Value::Dt(d) => Ok(Some(*d)),
            other => Err(Fault::type_error(f, "dt", other)),
        }
    }
}
