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
#[derive(Debug, Clone, Default)]
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

/// Equal values: the same variant and the same content. Texts, binaries and collections
/// held in one allocation are equal without reading them (the engine shares a value's
/// allocation wherever it passes unchanged, and compares such values constantly; `Arc`'s own
/// comparison reads the bytes of an unsized value even when both sides are one allocation).
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null)
            | (Value::AuthoritativeNull, Value::AuthoritativeNull)
            | (Value::IgnoreThisFlow, Value::IgnoreThisFlow) => true,
            (Value::Str(a), Value::Str(b)) | (Value::Ref(a), Value::Ref(b)) => {
                Arc::ptr_eq(a, b) || a == b
            }
            (Value::Num(a), Value::Num(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Bin(a), Value::Bin(b)) => Arc::ptr_eq(a, b) || a == b,
            (Value::Dt(a), Value::Dt(b)) => a == b,
            (Value::Many(a), Value::Many(b)) => Arc::ptr_eq(a, b) || a[..] == b[..],
            _ => false,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_equal_by_variant_and_content_shared_or_not() {
        let text: Arc<str> = Arc::from("CN=A,DC=contoso,DC=com");
        let bytes: Arc<[u8]> = Arc::from(&[1u8, 2, 3][..]);
        let many: Arc<[Value]> = Arc::from(vec![Value::from("a"), Value::Num(1)]);
        // One allocation, and equal copies in two.
        let pairs = [
            (Value::Str(text.clone()), Value::Str(text.clone())),
            (
                Value::Str(text.clone()),
                Value::from("CN=A,DC=contoso,DC=com"),
            ),
            (
                Value::Ref(text.clone()),
                Value::Ref("CN=A,DC=contoso,DC=com".into()),
            ),
            (Value::Bin(bytes.clone()), Value::Bin(bytes.clone())),
            (Value::Bin(bytes.clone()), Value::bin(vec![1u8, 2, 3])),
            (Value::Many(many.clone()), Value::Many(many.clone())),
            (
                Value::Many(many.clone()),
                Value::many(vec![Value::from("a"), Value::Num(1)]),
            ),
            (Value::Num(i64::MIN), Value::Num(i64::MIN)),
            (Value::Bool(false), Value::Bool(false)),
            (Value::Null, Value::Null),
            (Value::AuthoritativeNull, Value::AuthoritativeNull),
            (Value::IgnoreThisFlow, Value::IgnoreThisFlow),
        ];
        for (a, b) in &pairs {
            assert_eq!(a, b);
            assert_eq!(b, a);
        }
        // Other content, or the same content in another variant, differs.
        let differ = [
            (Value::Str(text.clone()), Value::Ref(text.clone())),
            (
                Value::Str(text.clone()),
                Value::from("CN=B,DC=contoso,DC=com"),
            ),
            (Value::Bin(bytes.clone()), Value::bin(vec![1u8, 2])),
            (
                Value::Many(many.clone()),
                Value::many(vec![Value::from("a")]),
            ),
            (
                Value::Many(many),
                Value::many(vec![Value::Num(1), Value::from("a")]),
            ),
            (Value::Num(1), Value::Num(2)),
            (Value::Num(1), Value::Bool(true)),
            (Value::Null, Value::AuthoritativeNull),
            (Value::AuthoritativeNull, Value::IgnoreThisFlow),
            (Value::from(""), Value::Null),
        ];
        for (a, b) in &differ {
            assert_ne!(a, b);
            assert_ne!(b, a);
        }
    }
}
