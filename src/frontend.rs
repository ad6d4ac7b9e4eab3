//! The front-end driver: files → parse → check, as used by `check`, `test` and later stages.
//!
//! Consumes: a [`SourceMap`]. Produces: [`Checked`] — the parsed files, the checked bundle and
//! all diagnostics, sorted by file and position.

use crate::diag::{self, Diagnostic};
use crate::sema::{self, Bundle};
use crate::source::SourceMap;
use crate::syntax::{self, Parsed};

pub struct Checked {
    pub parsed: Vec<Parsed>,
    pub bundle: Bundle,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// True when a warning is switched off by an `# allow: CODE` comment on its line or on the
/// line just above it. Errors cannot be switched off.
fn allowed(map: &SourceMap, parsed: &[Parsed], d: &Diagnostic) -> bool {
    if d.is_error() {
        return false;
    }
    let file = map.get(d.file);
    let line = file.line_of(d.span.start);
    parsed[d.file.0 as usize].comments.iter().any(|c| {
        let l = file.line_of(c.span.start);
        (l == line || l + 1 == line)
            && c.text
                .trim_start_matches('#')
                .trim()
                .strip_prefix("allow:")
                .is_some_and(|codes| codes.split([',', ' ']).any(|x| x.trim() == d.code))
    })
}

/// Parses and checks every file in `map` as one bundle.
pub fn check(map: &SourceMap) -> Checked {
    let mut diagnostics = Vec::new();
    let mut parsed = Vec::new();
    for f in map.files() {
        let (p, d) = syntax::parse(f.id, &f.text);
        diagnostics.extend(d);
        parsed.push(p);
    }
    let files: Vec<_> = map
        .files()
        .iter()
        .zip(&parsed)
        .map(|(f, p)| (f.id, &p.file))
        .collect();
    let (bundle, d) = sema::check(&files);
    diagnostics.extend(d);
    diagnostics.retain(|d| !allowed(map, &parsed, d));
    diag::sort(&mut diagnostics);
    Checked {
        parsed,
        bundle,
        diagnostics,
    }
}
