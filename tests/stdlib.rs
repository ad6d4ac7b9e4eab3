//! The stdlib declarations: all 85 Connect Sync functions are declared, and every documented
//! example parses and type-checks against its own inputs with a result of the declared type.

use idflow::diag::render::{self, Style};
use idflow::sema::schema::{AttrDef, ObjectDef, ParamDef};
use idflow::sema::typeck::{Env, check_expr};
use idflow::sema::types::{Base, Ty};
use idflow::source::{FileId, SourceMap};
use idflow::stdlib::Stdlib;
use std::collections::BTreeMap;

/// The 85 functions of Microsoft's Connect Sync function reference.
const DOCUMENTED: &[&str] = &[
    "CertExtensionOids",
    "CertFormat",
    "CertFriendlyName",
    "CertHashString",
    "CertIssuer",
    "CertIssuerDN",
    "CertIssuerOid",
    "CertKeyAlgorithm",
    "CertKeyAlgorithmParams",
    "CertNameInfo",
    "CertNotAfter",
    "CertNotBefore",
    "CertPublicKeyOid",
    "CertPublicKeyParametersOid",
    "CertSerialNumber",
    "CertSignatureAlgorithmOid",
    "CertSubject",
    "CertSubjectNameDN",
    "CertSubjectNameOid",
    "CertThumbprint",
    "CertVersion",
    "IsCert",
    "CBool",
    "CDate",
    "CGuid",
    "ConvertFromBase64",
    "ConvertToBase64",
    "ConvertFromUTF8Hex",
    "ConvertToUTF8Hex",
    "CNum",
    "CRef",
    "CStr",
    "StringFromGuid",
    "StringFromSid",
    "DateAdd",
    "DateFromNum",
    "FormatDateTime",
    "Now",
    "NumFromDate",
    "DNComponent",
    "DNComponentRev",
    "EscapeDNComponent",
    "IsBitSet",
    "IsDate",
    "IsEmpty",
    "IsGuid",
    "IsNull",
    "IsNullOrEmpty",
    "IsNumeric",
    "IsPresent",
    "IsString",
    "BitAnd",
    "BitOr",
    "RandomNum",
    "Contains",
    "Count",
    "Item",
    "ItemOrNull",
    "Join",
    "RemoveDuplicates",
    "Split",
    "Error",
    "IIF",
    "Select",
    "Switch",
    "Where",
    "With",
    "Guid",
    "InStr",
    "InStrRev",
    "LCase",
    "Left",
    "Len",
    "LTrim",
    "Mid",
    "PadLeft",
    "PadRight",
    "PCase",
    "Replace",
    "ReplaceChars",
    "Right",
    "RTrim",
    "Trim",
    "UCase",
    "Word",
];

#[test]
fn all_85_documented_functions_are_declared() {
    assert_eq!(DOCUMENTED.len(), 85);
    let lib = Stdlib::get();
    for name in DOCUMENTED {
        let f = lib
            .function(name)
            .unwrap_or_else(|| panic!("{name} is not declared"));
        assert!(f.documented, "{name} should be marked documented");
    }
    let documented = lib.functions.iter().filter(|f| f.documented).count();
    assert_eq!(
        documented, 85,
        "exactly the 85 reference functions are marked documented"
    );
}

#[test]
fn every_function_has_doc_signatures_and_examples() {
    for f in &Stdlib::get().functions {
        assert!(!f.signatures.is_empty(), "{}: no signature", f.name);
        assert!(f.doc.len() > 40, "{}: doc too short", f.name);
        assert!(!f.examples.is_empty(), "{}: no example", f.name);
        for ex in &f.examples {
            let outcomes = [ex.result.is_some(), ex.error, ex.nondeterministic]
                .iter()
                .filter(|b| **b)
                .count();
            assert_eq!(
                outcomes, 1,
                "{}: example `{}` needs exactly one of result, error, nondeterministic",
                f.name, ex.expr
            );
        }
    }
}

fn value_ty(v: &toml::Value) -> Ty {
    match v {
        toml::Value::String(_) => Ty::one(Base::Str),
        toml::Value::Integer(_) => Ty::one(Base::Num),
        toml::Value::Boolean(_) => Ty::one(Base::Bool),
        toml::Value::Datetime(_) => Ty::one(Base::Dt),
        toml::Value::Float(_) => Ty::ANY,
        toml::Value::Array(items) => items
            .first()
            .map_or(Ty::many(Base::Any), |i| value_ty(i).with_multi(true)),
        toml::Value::Table(t) => {
            if t.contains_key("$binary") {
                Ty::one(Base::Bin)
            } else if t.contains_key("$datetime") {
                Ty::one(Base::Dt)
            } else {
                Ty::ANY
            }
        }
    }
}

/// Every attribute an expression reads: `[x]`, and the quoted names of ImportedValue/ValueCount.
fn attribute_names(e: &idflow::syntax::ast::Expr) -> Vec<String> {
    use idflow::syntax::ast::ExprKind;
    match &e.kind {
        ExprKind::Attr(a) => vec![a.clone()],
        ExprKind::Call { name, args } => {
            let mut out: Vec<String> = args.iter().flat_map(attribute_names).collect();
            if name.name == "ImportedValue" || name.name == "ValueCount" {
                for a in args {
                    if let ExprKind::Str { value, .. } = &a.kind {
                        out.push(value.clone());
                    }
                }
            }
            out
        }
        ExprKind::Binary { lhs, rhs, .. } => [attribute_names(lhs), attribute_names(rhs)].concat(),
        ExprKind::Neg(x) | ExprKind::Paren(x) => attribute_names(x),
        _ => Vec::new(),
    }
}

/// Whether a JSON result fits the checked type.
fn result_fits(json: &serde_json::Value, ty: Ty) -> bool {
    use serde_json::Value as J;
    if ty.is_open() {
        return true;
    }
    if let J::Array(items) = json {
        return items.iter().all(|i| result_fits(i, ty.with_multi(false)));
    }
    match json {
        J::Null => true,
        J::String(_) => matches!(ty.base, Base::Str | Base::Ref),
        J::Number(_) => ty.base == Base::Num,
        J::Bool(_) => ty.base == Base::Bool,
        J::Object(o) if o.contains_key("$binary") => ty.base == Base::Bin,
        J::Object(o) if o.contains_key("$datetime") => ty.base == Base::Dt,
        J::Object(o) if o.contains_key("special") => true,
        _ => false,
    }
}

#[test]
fn every_example_type_checks_and_its_result_fits() {
    let mut failures = Vec::new();
    for f in &Stdlib::get().functions {
        for ex in &f.examples {
            let mut attrs = BTreeMap::new();
            for (k, v) in ex.input.iter().flatten() {
                let ty = value_ty(v);
                attrs.insert(
                    k.clone(),
                    AttrDef {
                        name: k.clone(),
                        base: ty.base,
                        multi: ty.multi,
                        ref_target: None,
                        file: FileId(0),
                        span: 0..0,
                    },
                );
            }
            // Attributes the example reads but leaves absent are of unknown type.
            if let (Some(expr), _) = idflow::syntax::parse_expr(FileId(0), &ex.expr) {
                for name in attribute_names(&expr) {
                    attrs.entry(name.clone()).or_insert(AttrDef {
                        name,
                        base: Base::Any,
                        multi: false,
                        ref_target: None,
                        file: FileId(0),
                        span: 0..0,
                    });
                }
            }
            let object = ObjectDef {
                name: "example".into(),
                anchor: None,
                attrs,
                file: FileId(0),
                span: 0..0,
            };
            let params: BTreeMap<String, ParamDef> = ex
                .params
                .iter()
                .flatten()
                .map(|(k, _)| {
                    (
                        k.trim_matches('%').to_string(),
                        ParamDef {
                            name: k.clone(),
                            base: Base::Str,
                        },
                    )
                })
                .collect();
            let mut map = SourceMap::new();
            let id = map.add(format!("{} example", f.name), ex.expr.clone());
            let (expr, mut diags) = idflow::syntax::parse_expr(id, &ex.expr);
            let Some(expr) = expr else {
                failures.push(format!("{}: `{}` does not parse", f.name, ex.expr));
                continue;
            };
            let env = Env {
                file: id,
                object: Some(&object),
                params: vec![&params],
            };
            let ty = check_expr(&env, &expr, &mut diags);
            let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
            if !errors.is_empty() {
                let text: String = errors
                    .iter()
                    .map(|d| render::human(&map, d, Style::Plain))
                    .collect();
                failures.push(format!("{}: `{}`:\n{text}", f.name, ex.expr));
                continue;
            }
            if let Some(result) = &ex.result {
                match serde_json::from_str::<serde_json::Value>(result) {
                    Ok(json) if result_fits(&json, ty) => {}
                    Ok(_) => failures.push(format!(
                        "{}: `{}` has type {ty} but the example result is {result}",
                        f.name, ex.expr
                    )),
                    Err(e) => {
                        failures.push(format!("{}: result {result} is not JSON: {e}", f.name))
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing examples:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
