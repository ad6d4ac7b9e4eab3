//! Go to definition, find references and rename.
//!
//! Consumes: an [`Analysis`] (symbol index and schema) and a position. Produces: the declaration
//! of the name under the cursor (an attribute's line in its schema, an object type, a
//! connector, a parameter, a rule); every occurrence of it across the bundle (for an attribute:
//! each rule and flow that reads or writes it, and the tests that set or expect it); and the
//! edit that renames a rule.

use super::index::{Role, Space, Symbol, attr_def};
use super::workspace::Analysis;
use crate::source::{FileId, Span};
use crate::syntax::token::escape;
use lsp_types::{Location, Range, TextEdit, WorkspaceEdit};
use std::collections::HashMap;

fn location(a: &Analysis, file: FileId, span: &Span) -> Option<Location> {
    Some(Location::new(
        a.uris.get(file.0 as usize)?.clone(),
        a.range(file, span),
    ))
}

/// The declaration of a symbol: from the index, else (the implicit `dn`, object types and
/// connectors) from the schema.
fn declaration(a: &Analysis, symbol: &Symbol) -> Option<(FileId, Span)> {
    if let Some(o) = a.index().declaration(symbol) {
        return Some((o.file, o.span.clone()));
    }
    let schema = &a.checked.bundle.schema;
    match symbol {
        Symbol::Attr {
            space,
            object,
            name,
        } => attr_def(schema, space, object, name).map(|d| (d.file, d.span.clone())),
        Symbol::Object {
            space: Space::Metaverse,
            name,
        } => schema.metaverse.get(name).map(|o| (o.file, o.span.clone())),
        _ => None,
    }
}

pub fn definition(a: &Analysis, file: FileId, offset: usize) -> Option<Location> {
    let occ = a.index().at(file, offset)?;
    let (f, span) = declaration(a, &occ.symbol)?;
    location(a, f, &span)
}

pub fn references(
    a: &Analysis,
    file: FileId,
    offset: usize,
    include_declaration: bool,
) -> Vec<Location> {
    let index = a.index();
    let Some(occ) = index.at(file, offset) else {
        return Vec::new();
    };
    let symbol = occ.symbol.clone();
    let mut out: Vec<Location> = index
        .find(&symbol)
        .filter(|o| include_declaration || o.role != Role::Declaration)
        // A rule's `link` and `precedence` settings are part of the rule, not mentions of it.
        .filter(|o| !matches!(symbol, Symbol::Rule(_)) || o.role == Role::Declaration)
        .filter_map(|o| location(a, o.file, &o.span))
        .collect();
    if include_declaration
        && index.declaration(&symbol).is_none()
        && let Some((f, span)) = declaration(a, &symbol)
        && let Some(l) = location(a, f, &span)
    {
        out.insert(0, l);
    }
    out
}

/// The range of the rule name under the cursor, if it can be renamed.
pub fn prepare_rename(a: &Analysis, file: FileId, offset: usize) -> Option<Range> {
    let occ = a.index().at(file, offset)?;
    match (&occ.symbol, occ.role) {
        (Symbol::Rule(_), Role::Declaration) => Some(a.range(file, &occ.span)),
        _ => None,
    }
}

/// The edit that renames the rule under the cursor, or why it cannot be done.
pub fn rename(
    a: &Analysis,
    file: FileId,
    offset: usize,
    new_name: &str,
) -> Result<WorkspaceEdit, String> {
    let index = a.index();
    let occ = index
        .at(file, offset)
        .filter(|o| matches!(o.symbol, Symbol::Rule(_)) && o.role == Role::Declaration)
        .ok_or("only rules can be renamed: put the cursor on a rule's name")?;
    if new_name.is_empty() || new_name.contains('\n') {
        return Err("a rule name is one non-empty line".into());
    }
    if index.rules.iter().any(|r| r.name == new_name) {
        return Err(format!("a rule named \"{new_name}\" already exists"));
    }
    let uri = a
        .uris
        .get(file.0 as usize)
        .ok_or("the file is not in the bundle")?
        .clone();
    let edit = TextEdit::new(a.range(file, &occ.span), escape(new_name));
    Ok(WorkspaceEdit {
        changes: Some(HashMap::from([(uri, vec![edit])])),
        document_changes: None,
        change_annotations: None,
    })
}
