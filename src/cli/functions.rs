//! `idflow functions [NAME]`: the expression functions from the stdlib declarations.

use super::{OK, USAGE};
use crate::diag::suggest;
use crate::stdlib::Stdlib;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A function name (case-sensitive, as in rules); without one, all are listed.
    name: Option<String>,
}

pub fn run(args: Args) -> u8 {
    let lib = Stdlib::get();
    let Some(name) = args.name else {
        let mut fns: Vec<_> = lib.functions.iter().collect();
        fns.sort_by(|a, b| (a.area, &a.name).cmp(&(b.area, &b.name)));
        let mut area = "";
        for f in fns {
            if f.area != area {
                if !area.is_empty() {
                    outln!();
                }
                area = f.area;
                outln!("{area}:");
            }
            let first = f.signatures.first().map_or("", |s| s.text.as_str());
            let note = if f.documented {
                ""
            } else {
                "  (used by Entra's default rules, not in its reference)"
            };
            outln!("  {:28} {first}{note}", f.name);
        }
        return OK;
    };
    let Some(f) = lib.function(&name) else {
        let hint = suggest(&name, lib.function_names())
            .map(|h| format!("\n  help: {h}"))
            .unwrap_or_default();
        eprintln!("error: unknown function `{name}`{hint}");
        return USAGE;
    };
    outln!("{} ({})", f.name, f.area);
    outln!();
    for s in &f.signatures {
        outln!("  {}", s.text);
    }
    outln!();
    for line in wrap(&f.doc, 96) {
        outln!("{line}");
    }
    if !f.examples.is_empty() {
        outln!();
        outln!("Examples:");
        for ex in &f.examples {
            let input = ex
                .input
                .as_ref()
                .filter(|t| !t.is_empty())
                .map(|t| format!("   with {}", inline_table(t)))
                .unwrap_or_default();
            let outcome = ex.outcome();
            outln!("  {}{input}", ex.expr);
            outln!("    --> {outcome}");
        }
    }
    OK
}

fn inline_table(t: &toml::Table) -> String {
    let parts: Vec<String> = t.iter().map(|(k, v)| format!("[{k}] = {v}")).collect();
    parts.join(", ")
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split("\n\n") {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines.push(String::new());
    }
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}
