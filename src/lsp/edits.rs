//! Formatting and code actions.
//!
//! Consumes: an [`Analysis`] (a document's text and its diagnostics) and the formatter
//! (`syntax::format`). Produces: text edits — the lines `idflow fmt` changes, as a line diff
//! so the cursor and unchanged lines stay put; for a range, only the changed lines inside it,
//! and only when the result alone still parses to the same tree with the same comments — and
//! quick fixes: a misspelt name replaced by the checker's suggestion ("did you mean `x`?"),
//! and a warning switched off with an `# allow:` comment on the line above.

use super::workspace::Analysis;
use crate::diag::Diagnostic;
use crate::source::{FileId, Span};
use crate::syntax;
use lsp_types::{CodeAction, CodeActionKind, CodeActionOrCommand, Range, TextEdit, WorkspaceEdit};
use std::collections::HashMap;

/// A changed run of lines: the byte range of the old lines and their new text.
struct Hunk {
    old: Span,
    new: String,
}

/// Line starts of a text with the end of the text as the last entry.
fn line_offsets(text: &str) -> Vec<usize> {
    let mut v = vec![0];
    v.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    if *v.last().unwrap_or(&0) != text.len() {
        v.push(text.len());
    }
    v
}

/// The hunks that turn `old` into `new`, line by line (longest common subsequence; for very
/// long files with many changes, one hunk between the common head and tail).
fn diff(old: &str, new: &str) -> Vec<Hunk> {
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let oa = line_offsets(old);
    let mut head = 0;
    while head < a.len() && head < b.len() && a[head] == b[head] {
        head += 1;
    }
    let mut tail = 0;
    while tail < a.len() - head
        && tail < b.len() - head
        && a[a.len() - 1 - tail] == b[b.len() - 1 - tail]
    {
        tail += 1;
    }
    let (xa, xb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    if xa.is_empty() && xb.is_empty() {
        return Vec::new();
    }
    let hunk = |i0: usize, i1: usize, j0: usize, j1: usize| Hunk {
        old: oa[head + i0]..oa[head + i1],
        new: xb[j0..j1].concat(),
    };
    if xa.len().saturating_mul(xb.len()) > 4_000_000 {
        return vec![hunk(0, xa.len(), 0, xb.len())];
    }
    // lcs[i][j]: the common subsequence length of xa[i..] and xb[j..].
    let (n, m) = (xa.len(), xb.len());
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * (m + 1) + j] = if xa[i] == xb[j] {
                lcs[(i + 1) * (m + 1) + j + 1] + 1
            } else {
                lcs[(i + 1) * (m + 1) + j].max(lcs[i * (m + 1) + j + 1])
            };
        }
    }
    let mut hunks = Vec::new();
    let (mut i, mut j) = (0, 0);
    let mut start: Option<(usize, usize)> = None;
    while i < n || j < m {
        if i < n && j < m && xa[i] == xb[j] {
            if let Some((i0, j0)) = start.take() {
                hunks.push(hunk(i0, i, j0, j));
            }
            i += 1;
            j += 1;
            continue;
        }
        start.get_or_insert((i, j));
        if j < m && (i == n || lcs[i * (m + 1) + j + 1] >= lcs[(i + 1) * (m + 1) + j]) {
            j += 1;
        } else {
            i += 1;
        }
    }
    if let Some((i0, j0)) = start {
        hunks.push(hunk(i0, n, j0, m));
    }
    hunks
}

fn apply(text: &str, hunks: &[&Hunk]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for h in hunks {
        out.push_str(&text[at..h.old.start]);
        out.push_str(&h.new);
        at = h.old.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The edits that format a document (all of it, or the lines of `range`). None when the
/// document has syntax errors or the range cannot be formatted on its own.
pub fn format(a: &Analysis, file: FileId, range: Option<Range>) -> Option<Vec<TextEdit>> {
    let text = a.text(file);
    let formatted = syntax::format(file, text).ok()?;
    let mut hunks = diff(text, &formatted);
    if let Some(r) = range {
        let span = a.line_index(file).span(text, r);
        hunks.retain(|h| h.old.start <= span.end && span.start <= h.old.end);
        let partial = apply(text, &hunks.iter().collect::<Vec<_>>());
        if partial != formatted && !syntax::equivalent(file, text, &partial) {
            return None;
        }
    }
    Some(
        hunks
            .into_iter()
            .map(|h| TextEdit::new(a.range(file, &h.old), h.new))
            .collect(),
    )
}

/// The name a "did you mean `x`?" help suggests.
fn suggestion(help: &str) -> Option<&str> {
    let rest = help.strip_prefix("did you mean `")?;
    Some(&rest[..rest.find('`')?])
}

/// The span of the name inside a diagnostic's span: without the brackets of `[attr]`, the
/// percent signs of `%param%` and the quotes of `"connector"`.
fn name_span(text: &str, span: &Span) -> Span {
    let s = text.get(span.clone()).unwrap_or("");
    let delimited = s.len() >= 2
        && matches!(
            (s.as_bytes()[0], s.as_bytes()[s.len() - 1]),
            (b'[', b']') | (b'%', b'%') | (b'"', b'"')
        );
    if delimited {
        span.start + 1..span.end - 1
    } else {
        span.clone()
    }
}

fn action(
    title: String,
    uri: &lsp_types::Uri,
    edit: TextEdit,
    d: lsp_types::Diagnostic,
    preferred: bool,
) -> CodeActionOrCommand {
    CodeActionOrCommand::CodeAction(CodeAction {
        title,
        kind: Some(CodeActionKind::QUICKFIX),
        diagnostics: Some(vec![d]),
        edit: Some(WorkspaceEdit {
            changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
            document_changes: None,
            change_annotations: None,
        }),
        command: None,
        is_preferred: Some(preferred),
        disabled: None,
        data: None,
    })
}

/// Quick fixes for the diagnostics of `file` that touch `range`.
pub fn code_actions(a: &Analysis, file: FileId, range: Range) -> Vec<CodeActionOrCommand> {
    let text = a.text(file);
    let span = a.line_index(file).span(text, range);
    let Some(uri) = a.uris.get(file.0 as usize) else {
        return Vec::new();
    };
    let touching =
        |d: &&Diagnostic| d.file == file && d.span.start <= span.end && span.start <= d.span.end;
    let mut out = Vec::new();
    for d in a.checked.diagnostics.iter().filter(touching) {
        let lsp = super::diagnostics::convert(a, d);
        if let Some(name) = d.help.as_deref().and_then(suggestion) {
            let target = name_span(text, &d.span);
            let edit = TextEdit::new(a.range(file, &target), name.to_string());
            out.push(action(
                format!("Replace with `{name}`"),
                uri,
                edit,
                lsp.clone(),
                true,
            ));
        }
        if !d.is_error() {
            // `# allow: CODE` on the line above, indented like the line.
            let line_start = text[..d.span.start].rfind('\n').map_or(0, |i| i + 1);
            let indent: String = text[line_start..]
                .chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .collect();
            let at = a.range(file, &(line_start..line_start));
            let edit = TextEdit::new(at, format!("{indent}# allow: {}\n", d.code));
            out.push(action(
                format!("Allow {} on this line", d.code),
                uri,
                edit,
                lsp,
                false,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(old: &str, new: &str) -> String {
        let hunks = diff(old, new);
        apply(old, &hunks.iter().collect::<Vec<_>>())
    }

    #[test]
    fn diff_reproduces_the_new_text() {
        for (a, b) in [
            ("a\nb\nc\n", "a\nB\nc\n"),
            ("a\nb\nc\n", "a\nc\n"),
            ("a\nc", "a\nb\nc\n"),
            ("", "x\n"),
            ("x\ny\n", ""),
            ("1\n2\n3\n4\n5\n", "0\n2\n3\n4\n6\n"),
        ] {
            assert_eq!(run(a, b), b, "{a:?} -> {b:?}");
        }
        assert_eq!(diff("1\n2\n3\n4\n5\n", "0\n2\n3\n4\n6\n").len(), 2);
    }

    #[test]
    fn suggestions_and_name_spans() {
        assert_eq!(suggestion("did you mean `mail`?"), Some("mail"));
        assert_eq!(
            suggestion("did you mean `Trim`? function names are case-sensitive"),
            Some("Trim")
        );
        assert_eq!(suggestion("declare it"), None);
        assert_eq!(name_span("x [maill] y", &(2..9)), 3..8);
        assert_eq!(name_span("Trimm(", &(0..5)), 0..5);
    }
}
