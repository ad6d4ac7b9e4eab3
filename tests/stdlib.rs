//! The stdlib declarations: all 85 Connect Sync functions are declared, and every documented
//! example parses and type-checks against its own inputs with a result of the declared type.

use idflow::diag::render::{self, Style};
use idflow::eval::{adhoc, json};
use idflow::sema::types::{Base, Ty};
use idflow::stdlib::Stdlib;
use idflow::value::Value;

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

fn to_values(t: Option<&toml::Table>) -> Vec<(String, Value)> {
    t.into_iter()
        .flatten()
        .map(|(k, v)| {
            let j = serde_json::to_value(v).unwrap();
            (
                k.trim_matches('%').to_string(),
                json::from_json(&j).unwrap_or_else(|e| panic!("{k}: {e}")),
            )
        })
        .collect()
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
            let attrs = to_values(ex.input.as_ref());
            let params = to_values(ex.params.as_ref());
            let prepared =
                match adhoc::prepare(&format!("{} example", f.name), &ex.expr, &attrs, &params) {
                    Ok(p) => p,
                    Err((map, diags)) => {
                        let text: String = diags
                            .iter()
                            .map(|d| render::human(&map, d, Style::Plain))
                            .collect();
                        failures.push(format!("{}: `{}`:\n{text}", f.name, ex.expr));
                        continue;
                    }
                };
            let ty = prepared.ty;
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
