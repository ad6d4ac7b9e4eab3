//! Semantic analysis: schemas, rules and tests checked against each other and the stdlib.
//!
//! Consumes: the parsed files of a bundle. Produces: a [`Bundle`] (resolved schema, typed rules,
//! tests) and every diagnostic of the E01xx–E04xx and W06xx ranges. It never stops at the first
//! error: each rule, flow and test is checked independently.

pub mod lints;
pub mod rules;
pub mod schema;
pub mod testblocks;
pub mod typeck;
pub mod types;

use crate::diag::Diagnostic;
use crate::source::FileId;
use crate::syntax::ast;

/// A checked bundle.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub schema: schema::Schema,
    pub rules: Vec<rules::RuleDef>,
    pub tests: Vec<(FileId, ast::Test)>,
}

/// Checks every file of a bundle together.
pub fn check(files: &[(FileId, &ast::File)]) -> (Bundle, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let schema = schema::resolve(files, &mut diags);
    let mut bundle = Bundle {
        schema,
        ..Default::default()
    };
    for (file, ast) in files {
        for item in &ast.items {
            match item {
                ast::Item::Rule(r) => {
                    if let Some(def) = rules::resolve_rule(r, *file, &bundle.schema, &mut diags) {
                        bundle.rules.push(def);
                    }
                }
                ast::Item::Test(t) => {
                    testblocks::check(t, *file, &bundle.schema, &mut diags);
                    bundle.tests.push((*file, t.clone()));
                }
                _ => {}
            }
        }
    }
    let all: Vec<(FileId, &ast::Rule)> = files
        .iter()
        .flat_map(|(file, ast)| {
            ast.items.iter().filter_map(move |i| match i {
                ast::Item::Rule(r) => Some((*file, r)),
                _ => None,
            })
        })
        .collect();
    lints::check(&all, &bundle.rules, &bundle.schema, &mut diags);
    (bundle, diags)
}
