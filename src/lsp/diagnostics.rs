//! Diagnostics for the editor.
//!
//! Consumes: an [`Analysis`] (the checker's diagnostics, already filtered by `# allow:`
//! comments). Produces: one `textDocument/publishDiagnostics` list per file of the unit, with
//! the code (linked to `idflow explain`), severity, message, help, the primary label and the
//! related locations, positions in UTF-16. [`Published`] remembers what each file was last
//! sent, so a file is only sent again when its list changed, and a file that left the unit is
//! cleared.

use super::workspace::Analysis;
use crate::diag::{self, Severity};
use crate::source::FileId;
use lsp_types::{
    DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString,
    PublishDiagnosticsParams, Uri,
};
use std::collections::HashMap;

/// The protocol form of one checker diagnostic.
pub fn convert(a: &Analysis, d: &diag::Diagnostic) -> lsp_types::Diagnostic {
    let mut message = d.message.clone();
    if let Some(label) = &d.label {
        message.push_str(&format!(" ({label})"));
    }
    if let Some(help) = &d.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .related
        .iter()
        .filter_map(|l| {
            let uri = a.uris.get(l.file.0 as usize)?.clone();
            Some(DiagnosticRelatedInformation {
                location: Location::new(uri, a.range(l.file, &l.span)),
                message: l.message.clone(),
            })
        })
        .collect();
    lsp_types::Diagnostic {
        range: a.range(d.file, &d.span),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        code_description: None,
        source: Some("idflow".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        tags: None,
        data: None,
    }
}

/// The diagnostics of one file of an analysis.
pub fn of_file(a: &Analysis, file: FileId) -> Vec<lsp_types::Diagnostic> {
    a.checked
        .diagnostics
        .iter()
        .filter(|d| d.file == file)
        .map(|d| convert(a, d))
        .collect()
}

/// What was last published for each file.
#[derive(Default)]
pub struct Published {
    /// By the text of the file's URI.
    sent: HashMap<String, Vec<lsp_types::Diagnostic>>,
    /// The files of each unit at its last publication.
    units: HashMap<super::workspace::UnitKey, Vec<Uri>>,
}

impl Published {
    /// The notifications that bring the editor up to date with a unit's new analysis.
    pub fn update(
        &mut self,
        unit: &super::workspace::UnitKey,
        a: &Analysis,
        versions: impl Fn(&Uri) -> Option<i32>,
    ) -> Vec<PublishDiagnosticsParams> {
        let mut out = Vec::new();
        let mut now: Vec<Uri> = Vec::new();
        for f in a.map.files() {
            let uri = a.uris[f.id.0 as usize].clone();
            let list = of_file(a, f.id);
            if self.sent.get(uri.as_str()) != Some(&list) {
                self.sent.insert(uri.as_str().to_string(), list.clone());
                out.push(PublishDiagnosticsParams::new(
                    uri.clone(),
                    list,
                    versions(&uri),
                ));
            }
            now.push(uri);
        }
        let before = self
            .units
            .insert(unit.clone(), now.clone())
            .unwrap_or_default();
        for uri in before {
            if !now.iter().any(|u| u.as_str() == uri.as_str()) {
                out.extend(self.clear(&uri));
            }
        }
        out
    }

    /// Clears a file's diagnostics (a file checked alone was closed).
    pub fn forget(&mut self, unit: &super::workspace::UnitKey) -> Vec<PublishDiagnosticsParams> {
        let uris = self.units.remove(unit).unwrap_or_default();
        uris.iter().filter_map(|u| self.clear(u)).collect()
    }

    fn clear(&mut self, uri: &Uri) -> Option<PublishDiagnosticsParams> {
        match self.sent.remove(uri.as_str()) {
            Some(list) if !list.is_empty() => {
                Some(PublishDiagnosticsParams::new(uri.clone(), Vec::new(), None))
            }
            _ => None,
        }
    }
}
