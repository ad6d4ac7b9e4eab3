//! `fmt` tests: golden pairs (`x.idf` formats to `x.idf.formatted`), idempotency and tree
//! equivalence over every `.idf` file in the repository, and refusal on syntax errors.

use idflow::source::FileId;
use idflow::syntax::{self, FormatError};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn idf_files_under(dir: &Path) -> Vec<PathBuf> {
    idflow::source::collect_idf_files(&[dir.to_path_buf()]).unwrap()
}

#[test]
fn golden_files() {
    let dir = root().join("tests/fixtures/fmt");
    let inputs = idf_files_under(&dir);
    assert!(!inputs.is_empty());
    for input in inputs {
        let text = std::fs::read_to_string(&input).unwrap();
        let golden_path = PathBuf::from(format!("{}.formatted", input.display()));
        let golden = std::fs::read_to_string(&golden_path)
            .unwrap_or_else(|e| panic!("{}: {e}", golden_path.display()));
        let out = syntax::format(FileId(0), &text)
            .unwrap_or_else(|e| panic!("{}: {e:?}", input.display()));
        assert_eq!(
            out,
            golden,
            "{} does not format to its golden file",
            input.display()
        );
    }
}

/// Every `.idf` in the repository that parses is formatted idempotently, and the formatted
/// text of the shipped bundles and fixtures is already canonical where it says so.
#[test]
fn idempotent_over_the_repository() {
    let mut count = 0;
    for dir in ["rules", "tests/fixtures"] {
        for path in idf_files_under(&root().join(dir)) {
            let text = std::fs::read_to_string(&path).unwrap();
            let Ok(once) = syntax::format(FileId(0), &text) else {
                continue; // syntax-error fixtures
            };
            let twice = syntax::format(FileId(0), &once).unwrap_or_else(|e| {
                panic!(
                    "{}: formatted output does not format: {e:?}",
                    path.display()
                )
            });
            assert_eq!(
                once,
                twice,
                "{}: formatting is not idempotent",
                path.display()
            );
            count += 1;
        }
    }
    assert!(count > 20, "too few files formatted: {count}");
}

/// Wrapping is stable at any width: formatting the output again changes nothing, and the
/// result means the same (`format` proves that itself).
#[test]
fn idempotent_at_every_width() {
    let mut paths = idf_files_under(&root().join("rules"));
    paths.extend(idf_files_under(&root().join("tests/fixtures/fmt")));
    for width in [40, 60, 80, 100, 140] {
        for path in &paths {
            let text = std::fs::read_to_string(path).unwrap();
            let once = syntax::format_width(FileId(0), &text, width)
                .unwrap_or_else(|e| panic!("{} at {width}: {e:?}", path.display()));
            let twice = syntax::format_width(FileId(0), &once, width).unwrap();
            assert_eq!(once, twice, "{} at width {width}", path.display());
        }
    }
}

/// Lines are at most the width, except where one token (or a flow's head) is longer.
#[test]
fn wrapped_lines_fit_the_width() {
    for path in idf_files_under(&root().join("rules")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let out = syntax::format_width(FileId(0), &text, 80).unwrap();
        for line in out.lines() {
            let n = line.chars().count();
            let unbreakable =
                !line.contains(", ") && !line.contains(" & ") && !line.contains(" || ");
            assert!(
                n <= 80 || unbreakable || line.trim_start().starts_with('#'),
                "{}: {n} characters: {line}",
                path.display()
            );
        }
    }
}

#[test]
fn shipped_bundles_are_formatted() {
    for path in idf_files_under(&root().join("rules")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let out = syntax::format(FileId(0), &text).unwrap();
        assert!(
            out == text,
            "{} is not formatted: run `idflow fmt --write rules`",
            path.display()
        );
    }
}

#[test]
fn refuses_files_with_syntax_errors() {
    for text in [
        "inbound rule \"r\" {",
        "flow a <- [b]",
        "inbound rule \"x\" { flow a <- \"open }",
    ] {
        match syntax::format(FileId(0), text) {
            Err(FormatError::Syntax(d)) => assert!(!d.is_empty()),
            other => panic!("{text:?}: expected a syntax error, got {other:?}"),
        }
    }
}

#[test]
fn keeps_every_comment() {
    let text = "# a\ninbound rule \"r\" { # b\n  connector \"c\" # c\n  flow x <- IIF( # d\n True, 1, 2) # e\n} # f\n# g\n";
    let out = syntax::format(FileId(0), text).unwrap();
    for c in ["# a", "# b", "# c", "# d", "# e", "# f", "# g"] {
        assert!(out.contains(c), "lost {c}:\n{out}");
    }
}

#[test]
fn empty_and_comment_only_files() {
    assert_eq!(syntax::format(FileId(0), "").unwrap(), "");
    assert_eq!(syntax::format(FileId(0), "  \n\n").unwrap(), "");
    assert_eq!(
        syntax::format(FileId(0), "# only\n\n# two\n").unwrap(),
        "# only\n# two\n"
    );
}
