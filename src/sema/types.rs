//! Expression types and function signature types.
//!
//! Consumes: attribute type names from schemas, signature strings from `stdlib/`. Produces:
//! [`Ty`] (the type of an expression) and [`ParamTy`] (what a function parameter accepts),
//! with the compatibility rules the checker applies.

use std::fmt;

/// The scalar part of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Base {
    Str,
    Num,
    Bool,
    Bin,
    Dt,
    Ref,
    /// A constant of the stdlib enum with this index.
    Enum(u16),
    /// Any type (`var`): compatible with everything.
    Any,
    /// Unknown after an earlier error (an unknown attribute, function or constant): compatible
    /// with everything, and what is computed from it is unknown too, so one mistake gives one
    /// error, not a trail of false ones.
    Unknown,
    /// `NULL`, `AuthoritativeNull`, `IgnoreThisFlow`: no value, fits every target.
    Null,
    /// `Error(...)`: never produces a value.
    Void,
}

/// The type of an expression: a base and whether it is multi-valued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ty {
    pub base: Base,
    pub multi: bool,
}

impl Ty {
    pub const fn one(base: Base) -> Ty {
        Ty { base, multi: false }
    }

    pub const fn many(base: Base) -> Ty {
        Ty { base, multi: true }
    }

    pub const ANY: Ty = Ty::one(Base::Any);

    /// The type of an expression that already has an error.
    pub const UNKNOWN: Ty = Ty::one(Base::Unknown);

    pub fn with_multi(self, multi: bool) -> Ty {
        Ty {
            base: self.base,
            multi,
        }
    }

    /// True for types that carry no concrete information (`Any`, `Unknown`, `Null`, `Void`).
    pub fn is_open(self) -> bool {
        matches!(
            self.base,
            Base::Any | Base::Unknown | Base::Null | Base::Void
        )
    }

    /// The common type of two branches (IIF, Switch): open types give way to concrete ones;
    /// different concrete types give `Any`.
    pub fn unify(self, other: Ty) -> Ty {
        let multi = self.multi || other.multi;
        let base = match (self.base, other.base) {
            (a, b) if a == b => a,
            (Base::Unknown, _) | (_, Base::Unknown) => Base::Unknown,
            (Base::Void, b) | (b, Base::Void) => b,
            (Base::Null, b) | (b, Base::Null) => b,
            _ => Base::Any,
        };
        Ty { base, multi }
    }

    /// Whether a value of this type may be stored in an attribute of type `target`.
    pub fn fits(self, target: Base) -> bool {
        self.is_open()
            || self.base == target
            || (target == Base::Str && self.base == Base::Ref)
            || (target == Base::Ref && self.base == Base::Str)
    }
}

impl Base {
    /// Maps a schema attribute type name.
    pub fn from_schema(name: &str) -> Option<Base> {
        Some(match name {
            "string" => Base::Str,
            "integer" => Base::Num,
            "boolean" => Base::Bool,
            "binary" => Base::Bin,
            "reference" => Base::Ref,
            "datetime" => Base::Dt,
            _ => return None,
        })
    }

    pub fn schema_name(self) -> &'static str {
        match self {
            Base::Str => "string",
            Base::Num => "integer",
            Base::Bool => "boolean",
            Base::Bin => "binary",
            Base::Ref => "reference",
            Base::Dt => "datetime",
            Base::Enum(_) => "enum constant",
            Base::Any => "any",
            Base::Unknown => "unknown",
            Base::Null => "NULL",
            Base::Void => "no value",
        }
    }

    /// Parses a scalar stdlib type name.
    pub fn from_stdlib(name: &str) -> Option<Base> {
        Some(match name {
            "str" => Base::Str,
            "num" => Base::Num,
            "bool" | "exp" => Base::Bool,
            "bin" => Base::Bin,
            "dt" => Base::Dt,
            "ref" => Base::Ref,
            "var" => Base::Any,
            "void" => Base::Void,
            _ => return None,
        })
    }

    pub fn stdlib_name(self) -> &'static str {
        match self {
            Base::Str => "str",
            Base::Num => "num",
            Base::Bool => "bool",
            Base::Bin => "bin",
            Base::Dt => "dt",
            Base::Ref => "ref",
            Base::Enum(_) => "enum",
            Base::Any => "var",
            Base::Unknown => "unknown",
            Base::Null => "NULL",
            Base::Void => "void",
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.multi {
            write!(f, "multi-valued {}", self.base.stdlib_name())
        } else {
            f.write_str(self.base.stdlib_name())
        }
    }
}

/// What a function parameter accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamTy {
    /// A scalar of this base; a multi-valued argument maps the function over its values.
    Scalar(Base),
    /// A boolean condition (`exp`); maps like a scalar.
    Cond,
    /// Anything, taken whole (`var`).
    Var,
    /// The whole collection of values of this base (`mvstr`, `mvref`, `mvbin`).
    Collection(Base),
    /// The whole collection of any type (`mvattr`).
    AnyCollection,
    /// A constant of the stdlib enum with this index.
    Enum(u16),
    /// A `$variable` binder.
    Binder,
    /// An attribute name in quotes.
    AttrName,
}

impl fmt::Display for ParamTy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamTy::Scalar(b) => f.write_str(b.stdlib_name()),
            ParamTy::Cond => f.write_str("bool"),
            ParamTy::Var => f.write_str("var"),
            ParamTy::Collection(b) => write!(f, "mv{}", b.stdlib_name()),
            ParamTy::AnyCollection => f.write_str("mvattr"),
            ParamTy::Enum(_) => f.write_str("enum"),
            ParamTy::Binder => f.write_str("$variable"),
            ParamTy::AttrName => f.write_str("attribute name in quotes"),
        }
    }
}

/// Result of matching one argument against one parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Accepted as is.
    Yes,
    /// Accepted; the function maps over the argument's values.
    Mapped,
    No,
}

impl ParamTy {
    /// Whether an argument of type `arg` is accepted (binders, enums and attribute names are
    /// checked by the caller from the argument's syntax).
    pub fn accepts(&self, arg: Ty) -> Accept {
        let mapped = if arg.multi {
            Accept::Mapped
        } else {
            Accept::Yes
        };
        match self {
            ParamTy::Var | ParamTy::AnyCollection => Accept::Yes,
            ParamTy::Scalar(b) => {
                if arg.is_open() || arg.base == *b {
                    mapped
                } else {
                    Accept::No
                }
            }
            ParamTy::Cond => {
                if arg.is_open() || arg.base == Base::Bool {
                    mapped
                } else {
                    Accept::No
                }
            }
            ParamTy::Collection(b) => {
                if arg.is_open() || arg.base == *b {
                    Accept::Yes
                } else {
                    Accept::No
                }
            }
            ParamTy::Enum(e) => match arg.base {
                Base::Enum(x) if x == *e => Accept::Yes,
                Base::Str | Base::Any | Base::Unknown | Base::Null => Accept::Yes,
                _ => Accept::No,
            },
            ParamTy::Binder | ParamTy::AttrName => Accept::Yes,
        }
    }
}
