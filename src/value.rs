//! Runtime values of the expression language.
//!
//! Consumes: nothing. Produces: [`Value`] — NULL (absence), the flow results `AuthoritativeNull`
//! and `IgnoreThisFlow`, the scalar types str, num (i64), bool, bin, dt, ref, and multi-valued
//! collections of scalars. Strings and binaries are reference counted (`Arc`), so a value that
//! passes through a flow unchanged is never copied, and clones are cheap.

use std::sync::Arc;

/// A UTC instant (`dt`).
pub type DateTime = jiff::Timestamp;

/// The layout is fixed (`repr(C, u8)`: a one-byte tag at offset 0, the payload at offset 8) so
/// that generated code can test tags and read numbers and booleans in place; [`Value::TAG_NUM`]
/// and the other `TAG_` constants are the tags.
#[derive(Debug, Clone, PartialEq, Default)]
#[repr(C, u8)]
pub enum Value {
    /// Absent: no value.
    #[default]
    Null = 0,
    /// A flow result: no value, and lower-precedence rules may not contribute one.
    AuthoritativeNull = 1,
    /// A flow result: leave the target attribute as it is.
    IgnoreThisFlow = 2,
    Str(Arc<str>) = 3,
    Num(i64) = 4,
    Bool(bool) = 5,
    Bin(Arc<[u8]>) = 6,
    Dt(DateTime) = 7,
    /// A reference (a DN before resolution).
    Ref(Arc<str>) = 8,
    /// A multi-valued value: scalars only, never nested, in source order.
    Many(Arc<[Value]>) = 9,
}

impl Value {
    /// The highest tag of the three values that are not values (NULL and the flow results).
    pub const TAG_LAST_NULL: u8 = 2;
    pub const TAG_STR: u8 = 3;
    pub const TAG_NUM: u8 = 4;
    pub const TAG_BOOL: u8 = 5;
    pub const TAG_REF: u8 = 8;
    pub const TAG_MANY: u8 = 9;
    /// Offset of the payload (the `i64` of a number, the `bool` of a boolean).
    pub const PAYLOAD: i32 = 8;
}

impl Value {
    pub fn str(s: impl Into<Arc<str>>) -> Value {
        Value::Str(s.into())
    }

    pub fn bin(b: impl Into<Arc<[u8]>>) -> Value {
        Value::Bin(b.into())
    }

    /// A collection; an empty one is NULL, a collection is never nested.
    pub fn many(values: Vec<Value>) -> Value {
        if values.is_empty() {
            Value::Null
        } else {
            Value::Many(values.into())
        }
    }

    /// True for NULL and the two special flow results (none of them is a value).
    pub fn is_null(&self) -> bool {
        matches!(
            self,
            Value::Null | Value::AuthoritativeNull | Value::IgnoreThisFlow
        )
    }

    /// The values of this value: none for NULL, one for a scalar, all of a collection.
    pub fn values(&self) -> &[Value] {
        match self {
            Value::Null | Value::AuthoritativeNull | Value::IgnoreThisFlow => &[],
            Value::Many(v) => v,
            other => std::slice::from_ref(other),
        }
    }

    /// The string of a str or ref value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Ref(s) => Some(s),
            _ => None,
        }
    }

    /// The type name used in messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::AuthoritativeNull => "AuthoritativeNull",
            Value::IgnoreThisFlow => "IgnoreThisFlow",
            Value::Str(_) => "str",
            Value::Num(_) => "num",
            Value::Bool(_) => "bool",
            Value::Bin(_) => "bin",
            Value::Dt(_) => "dt",
            Value::Ref(_) => "ref",
            Value::Many(_) => "multi-valued",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.into())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s.into())
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Num(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Value {
        Value::Bin(b.into())
    }
}
