//! The function library's declarations, read from `stdlib/*.toml` (embedded at build time).
//!
//! Consumes: the TOML files in the repository's `stdlib/` folder. Produces: [`Stdlib`], the
//! single source of function signatures, enum constants, docs and examples for the checker,
//! `idflow functions` and the tests.

use crate::sema::types::{Base, ParamTy, Ty};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The embedded files, by area.
pub const FILES: &[(&str, &str)] = &[
    ("certificate", include_str!("../../stdlib/certificate.toml")),
    ("conversion", include_str!("../../stdlib/conversion.toml")),
    ("datetime", include_str!("../../stdlib/datetime.toml")),
    ("directory", include_str!("../../stdlib/directory.toml")),
    ("evaluation", include_str!("../../stdlib/evaluation.toml")),
    ("math", include_str!("../../stdlib/math.toml")),
    ("multivalued", include_str!("../../stdlib/multivalued.toml")),
    ("flow", include_str!("../../stdlib/flow.toml")),
    ("text", include_str!("../../stdlib/text.toml")),
    ("engine", include_str!("../../stdlib/engine.toml")),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    #[serde(default, rename = "enum")]
    enums: Vec<EnumDef>,
    #[serde(default, rename = "function")]
    functions: Vec<FunctionDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnumDef {
    name: String,
    values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionDef {
    name: String,
    signatures: Vec<String>,
    doc: String,
    #[serde(default = "yes")]
    documented: bool,
    #[serde(default, rename = "example")]
    examples: Vec<Example>,
}

fn yes() -> bool {
    true
}

/// One documented example: an expression, its inputs and its expected result.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub expr: String,
    #[serde(default)]
    pub input: Option<toml::Table>,
    #[serde(default)]
    pub params: Option<toml::Table>,
    /// JSON text of the expected `idflow eval` output.
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub error: bool,
    #[serde(default)]
    pub nondeterministic: bool,
}

impl Example {
    /// What the example gives, as documentation shows it: the result, `error`, or `(varies)`.
    pub fn outcome(&self) -> String {
        if self.error {
            "error".to_string()
        } else if self.nondeterministic {
            "(varies)".to_string()
        } else {
            self.result.clone().unwrap_or_default()
        }
    }
}

/// One overload.
#[derive(Debug, Clone)]
pub struct Signature {
    pub text: String,
    pub ret: Ty,
    pub params: Vec<(ParamTy, String)>,
}

/// One function with all its overloads.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub area: &'static str,
    pub signatures: Vec<Signature>,
    pub doc: String,
    pub documented: bool,
    pub examples: Vec<Example>,
}

/// An enumeration of named constants (`Encoding`: `UTF8`, `Unicode`, `ASCII`).
#[derive(Debug, Clone)]
pub struct Enum {
    pub name: String,
    pub values: Vec<String>,
}

/// The whole library.
#[derive(Debug)]
pub struct Stdlib {
    pub functions: Vec<Function>,
    pub enums: Vec<Enum>,
    by_name: HashMap<String, usize>,
    constants: HashMap<String, u16>,
}

impl Stdlib {
    /// The library, parsed once. The embedded files are validated by the test suite, so a
    /// failure here is a build defect.
    pub fn get() -> &'static Stdlib {
        static LIB: OnceLock<Stdlib> = OnceLock::new();
        LIB.get_or_init(|| match Stdlib::parse(FILES) {
            Ok(lib) => lib,
            Err(e) => panic!("embedded stdlib is invalid: {e}"),
        })
    }

    /// Parses a set of stdlib files.
    pub fn parse(files: &[(&'static str, &str)]) -> Result<Stdlib, String> {
        let mut defs = Vec::new();
        let mut enums = Vec::new();
        for (area, text) in files {
            let f: FileDef =
                toml::from_str(text).map_err(|e| format!("stdlib/{area}.toml: {e}"))?;
            enums.extend(f.enums.into_iter().map(|e| Enum {
                name: e.name,
                values: e.values,
            }));
            defs.extend(f.functions.into_iter().map(|d| (*area, d)));
        }
        let enum_index: HashMap<String, u16> = enums
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i as u16))
            .collect();
        let mut constants = HashMap::new();
        for (i, e) in enums.iter().enumerate() {
            for v in &e.values {
                constants.insert(v.clone(), i as u16);
            }
        }
        let mut functions = Vec::new();
        let mut by_name = HashMap::new();
        for (area, d) in defs {
            let signatures = d
                .signatures
                .iter()
                .map(|s| parse_signature(s, &d.name, &enum_index))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("stdlib/{area}.toml: function {}: {e}", d.name))?;
            if by_name.insert(d.name.clone(), functions.len()).is_some() {
                return Err(format!(
                    "stdlib/{area}.toml: function {} declared twice",
                    d.name
                ));
            }
            functions.push(Function {
                name: d.name,
                area,
                signatures,
                doc: d.doc.trim().to_string(),
                documented: d.documented,
                examples: d.examples,
            });
        }
        Ok(Stdlib {
            functions,
            enums,
            by_name,
            constants,
        })
    }

    pub fn function(&self, name: &str) -> Option<&Function> {
        self.by_name.get(name).map(|&i| &self.functions[i])
    }

    /// The enum a bare constant belongs to.
    pub fn constant(&self, name: &str) -> Option<u16> {
        self.constants.get(name).copied()
    }

    pub fn constant_names(&self) -> impl Iterator<Item = &str> {
        self.constants.keys().map(String::as_str)
    }

    pub fn function_names(&self) -> impl Iterator<Item = &str> {
        self.functions.iter().map(|f| f.name.as_str())
    }
}

fn parse_type(t: &str, enums: &HashMap<String, u16>) -> Result<ParamTy, String> {
    if let Some(name) = t.strip_prefix("enum:") {
        return enums
            .get(name)
            .map(|&i| ParamTy::Enum(i))
            .ok_or_else(|| format!("unknown enum `{name}`"));
    }
    Ok(match t {
        "exp" => ParamTy::Cond,
        "var" => ParamTy::Var,
        "mvstr" | "mvstring" => ParamTy::Collection(Base::Str),
        "mvref" => ParamTy::Collection(Base::Ref),
        "mvbin" => ParamTy::Collection(Base::Bin),
        "mvattr" => ParamTy::AnyCollection,
        "variable" => ParamTy::Binder,
        "attrname" => ParamTy::AttrName,
        "binary" => ParamTy::Scalar(Base::Bin),
        "string" => ParamTy::Scalar(Base::Str),
        other => ParamTy::Scalar(
            Base::from_stdlib(other).ok_or_else(|| format!("unknown parameter type `{other}`"))?,
        ),
    })
}

fn parse_return(t: &str) -> Result<Ty, String> {
    Ok(match t {
        "mvstr" | "mvstring" => Ty::many(Base::Str),
        "mvref" => Ty::many(Base::Ref),
        "mvbin" => Ty::many(Base::Bin),
        "mvattr" => Ty::many(Base::Any),
        "exp" => Ty::one(Base::Bool),
        "String" | "string" => Ty::one(Base::Str),
        "binary" => Ty::one(Base::Bin),
        other => Ty::one(
            Base::from_stdlib(other).ok_or_else(|| format!("unknown return type `{other}`"))?,
        ),
    })
}

/// Parses `RET Name(TYPE name, ...)`.
fn parse_signature(
    text: &str,
    name: &str,
    enums: &HashMap<String, u16>,
) -> Result<Signature, String> {
    let err = || format!("malformed signature `{text}`");
    let (head, rest) = text.split_once('(').ok_or_else(err)?;
    let params_text = rest.trim_end().strip_suffix(')').ok_or_else(err)?;
    let mut head_words = head.split_whitespace();
    let ret = parse_return(head_words.next().ok_or_else(err)?)?;
    let fname = head_words.next().ok_or_else(err)?;
    if fname != name {
        return Err(format!("signature `{text}` names `{fname}`"));
    }
    let mut params = Vec::new();
    for p in params_text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let mut words = p.split_whitespace();
        let ty = parse_type(words.next().ok_or_else(err)?, enums)?;
        let pname = words.next().unwrap_or("value").to_string();
        params.push((ty, pname));
    }
    Ok(Signature {
        text: text.to_string(),
        ret,
        params,
    })
}
