//! Rendering of diagnostics.
//!
//! Consumes: [`Diagnostic`]s and the [`SourceMap`] they point into. Produces: text for humans
//! (miette's graphical report: file:line:col, the source line, carets, help), a JSON document for
//! CI, or a SARIF 2.1.0 log for code-scanning tools.

use super::{Diagnostic, Severity};
use crate::source::{SourceFile, SourceMap};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};
use serde_json::{Value, json};

/// Output styles for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Colours and unicode, for a terminal.
    Fancy,
    /// Unicode without colour (used in snapshots and when not on a terminal).
    Plain,
}

/// Renders one diagnostic for humans.
pub fn human(map: &SourceMap, d: &Diagnostic, style: Style) -> String {
    let file = map.get(d.file);
    let span = clamp(file, d.span.clone());
    let mut labels = vec![LabeledSpan::new_primary_with_span(
        d.label.clone(),
        (span.start, span.len()),
    )];
    let mut help = d.help.clone();
    for r in &d.related {
        if r.file == d.file {
            let s = clamp(file, r.span.clone());
            labels.push(LabeledSpan::new_with_span(
                Some(r.message.clone()),
                (s.start, s.len()),
            ));
        } else {
            let other = map.get(r.file);
            let (l, c) = other.line_col(r.span.start);
            let note = format!("{}: {}:{}:{}", r.message, other.name, l, c);
            help = Some(match help {
                Some(h) => format!("{h}\n{note}"),
                None => note,
            });
        }
    }
    let mut md = MietteDiagnostic::new(d.message.clone())
        .with_code(d.code)
        .with_severity(match d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
        .with_labels(labels);
    if let Some(h) = help {
        md = md.with_help(h);
    }
    let report = miette::Report::new(md)
        .with_source_code(NamedSource::new(file.name.clone(), file.text.clone()));
    let theme = match style {
        Style::Fancy => GraphicalTheme::unicode(),
        Style::Plain => GraphicalTheme::unicode_nocolor(),
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    if handler.render_report(&mut out, report.as_ref()).is_err() {
        out = format!(
            "{}: {}[{}]: {}\n",
            file.name,
            d.severity.as_str(),
            d.code,
            d.message
        );
    }
    out
}

fn clamp(file: &SourceFile, span: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let len = file.text.len();
    let mut start = span.start.min(len);
    let mut end = span.end.clamp(start, len);
    while !file.text.is_char_boundary(start) {
        start -= 1;
    }
    while !file.text.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

fn location(map: &SourceMap, d: &Diagnostic) -> Value {
    let file = map.get(d.file);
    let (line, column) = file.line_col(d.span.start);
    let (end_line, end_column) = file.line_col(d.span.end);
    json!({
        "file": file.name,
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
    })
}

/// A JSON document: `{"diagnostics": [...], "errors": N, "warnings": N}`.
pub fn json(map: &SourceMap, diags: &[Diagnostic]) -> String {
    let items: Vec<Value> = diags
        .iter()
        .map(|d| {
            let mut v = location(map, d);
            let obj = v.as_object_mut().expect("location is an object");
            obj.insert("code".into(), json!(d.code));
            obj.insert("severity".into(), json!(d.severity.as_str()));
            obj.insert("message".into(), json!(d.message));
            obj.insert("label".into(), json!(d.label));
            obj.insert("help".into(), json!(d.help));
            let related: Vec<Value> = d
                .related
                .iter()
                .map(|r| {
                    let f = map.get(r.file);
                    let (line, column) = f.line_col(r.span.start);
                    json!({"file": f.name, "line": line, "column": column, "message": r.message})
                })
                .collect();
            obj.insert("related".into(), json!(related));
            v
        })
        .collect();
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let doc = json!({
        "diagnostics": items,
        "errors": errors,
        "warnings": diags.len() - errors,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// A SARIF 2.1.0 log with one run.
pub fn sarif(map: &SourceMap, diags: &[Diagnostic]) -> String {
    let mut used: Vec<&str> = diags.iter().map(|d| d.code).collect();
    used.sort_unstable();
    used.dedup();
    let rules: Vec<Value> = used
        .iter()
        .map(|c| {
            let summary = super::codes::find(c).map_or("", |c| c.summary);
            json!({"id": c, "shortDescription": {"text": summary}})
        })
        .collect();
    let results: Vec<Value> = diags
        .iter()
        .map(|d| {
            let file = map.get(d.file);
            let (line, column) = file.line_col(d.span.start);
            let (end_line, end_column) = file.line_col(d.span.end);
            json!({
                "ruleId": d.code,
                "level": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
                "message": {"text": d.message},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": file.name},
                    "region": {"startLine": line, "startColumn": column,
                               "endLine": end_line, "endColumn": end_column}
                }}]
            })
        })
        .collect();
    let doc = json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {"name": "idflow", "version": env!("CARGO_PKG_VERSION"), "rules": rules}},
            "results": results
        }]
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
