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
