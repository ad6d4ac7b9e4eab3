//! Rendering of diagnostics.
//!
//! Consumes: [`Diagnostic`]s and the [`SourceMap`] they point into. Produces: text for humans
//! (miette's graphical report: file:line:col, the source line, carets, help), a JSON document for
//! CI, or a SARIF 2.1.0 log for code-scanning tools. A human report reads only the lines around
//! its spans (found by the file's line index), so rendering every diagnostic of a file costs
//! in proportion to their number, not to their number times the file's size.

use super::{Diagnostic, Severity};
use crate::source::{SourceFile, SourceMap};
use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, MietteError,
    MietteSpanContents, SourceCode, SourceSpan, SpanContents,
};
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
    let report = WithSource {
        md,
        source: Excerpt { file },
    };
    let theme = match style {
        Style::Fancy => GraphicalTheme::unicode(),
        Style::Plain => GraphicalTheme::unicode_nocolor(),
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
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

/// A diagnostic with its file as source code, borrowed: rendering one diagnostic costs in
/// proportion to the lines it shows, not to the size of the file.
#[derive(Debug)]
struct WithSource<'a> {
    md: MietteDiagnostic,
    source: Excerpt<'a>,
}

impl std::fmt::Display for WithSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.md, f)
    }
}

impl std::error::Error for WithSource<'_> {}

impl miette::Diagnostic for WithSource<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.md.code()
    }

    fn severity(&self) -> Option<miette::Severity> {
        self.md.severity()
    }

    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.md.help()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.md.labels()
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }
}

/// A file as miette's source code, read through a window of whole lines around each span
/// (miette's own reader scans the text from its start for every span it reads).
#[derive(Debug)]
struct Excerpt<'a> {
    file: &'a SourceFile,
}

impl SourceCode for Excerpt<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let f = self.file;
        let end = span
            .offset()
            .checked_add(span.len())
            .filter(|e| *e <= f.text.len())
            .ok_or(MietteError::OutOfBounds)?;
        // One line more than asked on each side: miette then finds the same context lines
        // in the window as in the whole text.
        let first = f.line_of(span.offset()).saturating_sub(before + 1).max(1);
        let last = f.line_of(end).saturating_add(after + 1);
        let (from, to) = (f.line_start(first), f.line_start(last.saturating_add(1)));
        let window = f.text.get(from..to).ok_or(MietteError::OutOfBounds)?;
        let inner = SourceSpan::new((span.offset() - from).into(), span.len());
        let c = <str as SourceCode>::read_span(window, &inner, before, after)?;
        // Lines miette counts from the window's start are offset by the lines above it.
        let skipped = first - 1;
        Ok(Box::new(MietteSpanContents::new_named(
            f.name.clone(),
            c.data(),
            SourceSpan::new((c.span().offset() + from).into(), c.span().len()),
            c.line() + skipped,
            c.column(),
            c.line_count() + skipped,
        )))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceMap;
    use miette::NamedSource;

    /// The rendering miette makes with the whole file as source (what `human` did before it
    /// read through an [`Excerpt`]).
    fn whole(map: &SourceMap, d: &Diagnostic) -> String {
        let file = map.get(d.file);
        let span = clamp(file, d.span.clone());
        let md = MietteDiagnostic::new(d.message.clone())
            .with_code(d.code)
            .with_severity(miette::Severity::Error)
            .with_labels(vec![LabeledSpan::new_primary_with_span(
                d.label.clone(),
                (span.start, span.len()),
            )]);
        let report = miette::Report::new(md)
            .with_source_code(NamedSource::new(file.name.clone(), file.text.clone()));
        let handler =
            GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(100);
        let mut out = String::new();
        handler.render_report(&mut out, report.as_ref()).unwrap();
        out
    }

    /// Reading through a window of lines renders exactly what reading the whole file does,
    /// for spans anywhere: first and last lines, line ends, empty lines, CRLF, several lines.
    #[test]
    fn excerpt_renders_like_the_whole_source() {
        let texts = [
            "a\nbb\n\nccc ddd\r\neeee\n\nf",
            "one line only",
            "x\n\n\n\ny\n",
            "\nstarts with a newline\nand ends without",
        ];
        for text in texts {
            let mut map = SourceMap::new();
            let id = map.add("t.idf", text);
            for start in 0..=text.len() {
                for end in start..=text.len().min(start + 12) {
                    if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
                        continue;
                    }
                    let d = Diagnostic::new("E0001", id, start..end, "m").with_label("here");
                    assert_eq!(
                        human(&map, &d, Style::Plain),
                        whole(&map, &d),
                        "{text:?} at {start}..{end}"
                    );
                }
            }
        }
    }
}
