//! Repository hygiene, checked by `cargo test`: module headers, printing only in the CLI,
//! no `unsafe` outside the JIT, and every diagnostic code used in the source is registered.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn every_module_has_a_header() {
    for (path, text) in sources() {
        if path == "src/main.rs" {
            continue;
        }
        assert!(
            text.starts_with("//!"),
            "{path} must start with a //! header saying what it consumes and produces"
        );
    }
}

#[test]
fn only_the_cli_prints() {
    for (path, text) in sources() {
        if path.starts_with("src/cli/") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for mac in ["println!", "eprintln!", "print!(", "eprint!(", "dbg!("] {
                assert!(
                    !code.contains(mac),
                    "{path}:{}: `{mac}` outside src/cli",
                    i + 1
                );
            }
        }
    }
}

#[test]
fn the_cli_writes_stdout_through_its_helper() {
    // `println!` panics when stdout is closed (`idflow ... | head`); `outln!`/`out!` and
    // `cli::Stdout` stop printing quietly instead.
    for (path, text) in sources() {
        if !path.starts_with("src/cli/") || path == "src/cli/mod.rs" {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let bare = |mac: &str| {
                code.match_indices(mac)
                    .any(|(at, _)| !code[..at].ends_with('e'))
            };
            for mac in ["println!", "print!(", "std::io::stdout()"] {
                assert!(
                    !bare(mac),
                    "{path}:{}: `{mac}` in the CLI: use `outln!`, `out!` or `cli::Stdout`",
                    i + 1
                );
            }
        }
    }
}

#[test]
fn no_unsafe_outside_the_jit() {
    for (path, text) in sources() {
        if path.starts_with("src/eval/jit/") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            assert!(
                !code.contains("unsafe "),
                "{path}:{}: unsafe code outside src/eval/jit",
                i + 1
            );
        }
    }
}

#[test]
fn every_code_used_is_registered() {
    for (path, text) in sources() {
        if path == "src/diag/codes.rs" {
            continue;
        }
        let bytes = text.as_bytes();
        for i in 0..bytes.len().saturating_sub(6) {
            if bytes[i] == b'"'
                && (bytes[i + 1] == b'E' || bytes[i + 1] == b'W')
                && bytes[i + 2..i + 6].iter().all(u8::is_ascii_digit)
                && bytes[i + 6] == b'"'
            {
                let code = &text[i + 1..i + 6];
                assert!(
                    idflow::diag::codes::find(code).is_some(),
                    "{path}: code {code} is not registered in src/diag/codes.rs"
                );
            }
        }
    }
}

/// Which top-level modules of the crate each module may use (`crate::x`, `use crate::x`). The
/// layers, lowest first: values and sources; the front end (syntax, sema, stdlib, frontend,
/// diag); the lowered form and its evaluation (ir, builtins, eval); the engine, which computes
/// changes and does no I/O; the store and the connectors, which do the I/O; the runner, which
/// drives them; the CLI on top, which nothing uses.
const MAY_USE: &[(&str, &[&str])] = &[
    ("value", &[]),
    ("source", &[]),
    ("dn", &[]),
    ("files", &[]),
    ("diag", &["source"]),
    ("syntax", &["diag", "source", "ir"]),
    ("stdlib", &["sema"]),
    (
        "sema",
        &[
            "builtins", "diag", "ir", "source", "stdlib", "syntax", "value",
        ],
    ),
    ("frontend", &["diag", "sema", "source", "syntax"]),
    (
        "lsp",
        &["diag", "frontend", "sema", "source", "stdlib", "syntax"],
    ),
    ("ir", &["builtins", "source", "value"]),
    ("builtins", &["value"]),
    (
        "eval",
        &[
            "builtins", "diag", "ir", "sema", "source", "syntax", "value",
        ],
    ),
    ("engine", &["dn", "eval", "ir", "sema", "syntax", "value"]),
    (
        "testrun",
        &["dn", "engine", "eval", "sema", "source", "syntax", "value"],
    ),
    (
        "import",
        &["diag", "frontend", "sema", "source", "stdlib", "syntax"],
    ),
    ("config", &["dn", "engine", "store", "value"]),
    ("store", &["engine", "eval", "files", "value"]),
    (
        "connector",
        &["config", "dn", "engine", "eval", "files", "sema", "value"],
    ),
    ("gen", &["connector", "value"]),
    (
        "runner",
        &[
            "config",
            "connector",
            "diag",
            "engine",
            "eval",
            "files",
            "frontend",
            "source",
            "store",
            "value",
        ],
    ),
    (
        "serve",
        &[
            "config", "diag", "eval", "files", "runner", "source", "store",
        ],
    ),
    ("lib", &["*"]),
    ("main", &["*"]),
    ("cli", &["*"]),
];

#[test]
fn modules_use_only_the_layers_below_them() {
    for (path, text) in sources() {
        let module = path
            .trim_start_matches("src/")
            .split(['/', '.'])
            .next()
            .unwrap()
            .to_string();
        let Some((_, allowed)) = MAY_USE.iter().find(|(m, _)| *m == module) else {
            panic!("{path}: module `{module}` is not in tests/tidy.rs MAY_USE: add it to a layer");
        };
        if allowed.contains(&"*") {
            continue;
        }
        // A module's unit tests (`#[cfg(test)]`, at the end by convention) may use anything.
        let lines = text.lines().take_while(|l| *l != "#[cfg(test)]");
        for (i, line) in lines.enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                // `crate::x` or a group `crate::{x, y::z}`.
                let names: Vec<String> = match rest.strip_prefix('{') {
                    Some(group) => group
                        .split('}')
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(|p| p.trim().split("::").next().unwrap_or("").to_string())
                        .collect(),
                    None => vec![
                        rest.chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect(),
                    ],
                };
                for used in names {
                    if used.is_empty() || used == module {
                        continue;
                    }
                    assert!(
                        allowed.contains(&used.as_str()),
                        "{path}:{}: `{module}` may not use `{used}` (tests/tidy.rs MAY_USE)",
                        i + 1
                    );
                }
            }
        }
    }
}
