//! Builtins of the stdlib area `multivalued` (see `stdlib/multivalued.toml` for the declarations).
//!
//! Consumes: evaluated argument values. Produces: the function results or faults.

use super::BuiltinFn;

/// The implementation of a function of this area, by name.
pub fn lookup(name: &str) -> Option<BuiltinFn> {
    let f: BuiltinFn = match name {
        _ => return None,
    };
    #[allow(unreachable_code)]
    Some(f)
}
