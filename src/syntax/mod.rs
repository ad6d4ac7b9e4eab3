//! Syntax: lexing and parsing `.idf` text into the AST, and printing it back (`fmt`).
//!
//! Consumes: [`SourceFile`]s. Produces: [`Parsed`] (AST, comments) and syntax diagnostics
//! (E00xx). Parsing never stops at the first error: the grammar recovers at item, rule-item and
//! test-step boundaries, so one run reports every syntax error of a file.

pub mod ast;
pub mod dump;
pub mod lexer;
pub mod printer;
pub mod token;

use crate::diag::Diagnostic;
use crate::source::FileId;
use lalrpop_util::{ErrorRecovery, ParseError};
use lexer::{Comment, LexErr, LexErrKind};
use token::{LexError, Tok};

#[allow(clippy::all, clippy::pedantic, unused_parens, dead_code)]
mod grammar {
    include!(concat!(env!("OUT_DIR"), "/idf.rs"));
}

/// The result of parsing one file.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub file: ast::File,
    pub comments: Vec<Comment>,
}

/// Parses one file. Returns the AST (possibly partial) and every syntax diagnostic.
pub fn parse(file: FileId, text: &str) -> (Parsed, Vec<Diagnostic>) {
    let lexer::Lexed {
        tokens: toks,
        comments,
        errors: lex_errors,
    } = tokenize_checked(text);
    let mut diags: Vec<Diagnostic> = lex_errors.iter().map(|e| lex_diag(file, e)).collect();
    let mut recovered: Vec<ErrorRecovery<usize, Tok, LexErr>> = Vec::new();
    let parser = grammar::FileParser::new();
    let result = parser.parse(&mut recovered, toks.into_iter().map(Ok::<_, LexErr>));
    // Past a nesting error the token stream was cut short: its end is not a finding.
    let cut = lex_errors.iter().any(|e| e.kind == LexErrKind::TooDeep);
    for r in recovered {
        diags.push(parse_diag(file, text, r.error));
    }
    let ast = match result {
        Ok(f) => f,
        Err(e) => {
            diags.push(parse_diag(file, text, e));
            ast::File::default()
        }
    };
    if cut {
        diags.retain(|d| d.code != "E0004");
    }
    (
        Parsed {
            file: ast,
            comments,
        },
        diags,
    )
}

/// Parses a standalone expression (used by `idflow eval` and the tests).
pub fn parse_expr(file: FileId, text: &str) -> (Option<ast::Expr>, Vec<Diagnostic>) {
    let lexer::Lexed {
        tokens: toks,
        errors: lex_errors,
        ..
    } = tokenize_checked(text);
    let mut diags: Vec<Diagnostic> = lex_errors.iter().map(|e| lex_diag(file, e)).collect();
    let mut recovered = Vec::new();
    let result = grammar::ExprParser::new().parse(&mut recovered, toks.into_iter().map(Ok));
    for r in recovered {
        diags.push(parse_diag(file, text, r.error));
    }
    match result {
        Ok(e) => (Some(e), diags),
        Err(e) => {
            diags.push(parse_diag(file, text, e));
            (None, diags)
        }
    }
}

/// The deepest nesting of parentheses/brackets accepted. The parser's stack and every later
/// recursive pass are bounded by it, so hostile input cannot overflow the stack.
pub const MAX_NESTING: usize = 256;

fn tokenize_checked(text: &str) -> lexer::Lexed {
    let mut lexed = lexer::tokenize(text);
    let mut depth = 0usize;
    let mut cut = None;
    for (i, (l, t, r)) in lexed.tokens.iter().enumerate() {
        match t {
            Tok::LParen | Tok::LBracket | Tok::LBrace => {
                depth += 1;
                if depth > MAX_NESTING {
                    cut = Some((i, *l..*r));
                    break;
                }
            }
            Tok::RParen | Tok::RBracket | Tok::RBrace => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if let Some((i, span)) = cut {
        // Cut the token stream: nothing past this point can be parsed safely.
        lexed.tokens.truncate(i);
        lexed.errors.push(LexErr {
            kind: LexErrKind::TooDeep,
            span,
        });
    }
    lexed
}

fn lex_diag(file: FileId, e: &LexErr) -> Diagnostic {
    match &e.kind {
        LexErrKind::Lex(LexError::InvalidChar) => {
            Diagnostic::new("E0001", file, e.span.clone(), "invalid character")
                .with_label("not part of the language")
        }
        LexErrKind::Lex(LexError::UnterminatedString) => Diagnostic::new(
            "E0002",
            file,
            e.span.start..e.span.start + 1,
            "unterminated string literal",
        )
        .with_label("this string is never closed")
        .with_help("close the string with `\"`; write `\\\"` for a quote inside it"),
        LexErrKind::Lex(LexError::NumberOutOfRange) => Diagnostic::new(
            "E0005",
            file,
            e.span.clone(),
            "number does not fit in a 64-bit signed integer",
        ),
        LexErrKind::TooDeep => Diagnostic::new(
            "E0215",
            file,
            e.span.start..e.span.start + 1,
            "nested too deeply",
        )
        .with_label("too deep")
        .with_help(format!(
            "brackets nest at most {MAX_NESTING} levels and expressions at most {} levels",
            ast::MAX_EXPR_DEPTH
        )),
        LexErrKind::Expected(what) => {
            Diagnostic::new("E0003", file, e.span.clone(), format!("expected {what}"))
        }
    }
}

fn describe_expected(expected: &[String]) -> String {
    let mut names: Vec<String> = expected
        .iter()
        .map(|e| e.trim_matches('"').replace("\\\"", "\""))
        .map(|e| match e.as_str() {
            "string" | "number" | "hex number" | "attribute" | "parameter" | "variable"
            | "identifier" => e,
            _ => format!("`{e}`"),
        })
        .collect();
    names.sort();
    names.dedup();
    if names.len() > 8 {
        let n = names.len() - 8;
        names.truncate(8);
        names.push(format!("{n} more"));
    }
    names.join(", ")
}

fn parse_diag(file: FileId, text: &str, e: ParseError<usize, Tok, LexErr>) -> Diagnostic {
    match e {
        ParseError::InvalidToken { location } => {
            Diagnostic::new("E0001", file, location..location + 1, "invalid token")
        }
        ParseError::UnrecognizedEof { location, expected } => {
            let at = location.min(text.len());
            Diagnostic::new("E0004", file, at..at, "unexpected end of file")
                .with_label("the file ends here")
                .with_help(format!("expected {}", describe_expected(&expected)))
        }
        ParseError::UnrecognizedToken {
            token: (l, t, r),
            expected,
        } => {
            let mut d = Diagnostic::new("E0003", file, l..r, format!("unexpected {t}"))
                .with_label("not expected here");
            if !expected.is_empty() {
                d = d.with_help(format!("expected {}", describe_expected(&expected)));
            }
            d
        }
        ParseError::ExtraToken { token: (l, t, r) } => {
            Diagnostic::new("E0003", file, l..r, format!("unexpected {t}"))
        }
        ParseError::User { error } => lex_diag(file, &error),
    }
}

/// Why a file could not be formatted.
#[derive(Debug)]
pub enum FormatError {
    /// The input has syntax errors (nothing is formatted).
    Syntax(Vec<Diagnostic>),
    /// The printer's output does not re-parse to the same tree: a bug, reported instead of
    /// writing anything.
    Unstable(String),
}

/// Formats one file's text canonically (expressions wrapped at
/// [`printer::DEFAULT_WIDTH`]), and proves the result re-parses to the same syntax tree with the
/// same comments before returning it.
pub fn format(file: FileId, text: &str) -> Result<String, FormatError> {
    format_width(file, text, printer::DEFAULT_WIDTH)
}

/// [`format`] with expressions wrapped at `width` characters.
pub fn format_width(file: FileId, text: &str, width: usize) -> Result<String, FormatError> {
    let (parsed, diags) = parse(file, text);
    if !diags.is_empty() {
        return Err(FormatError::Syntax(diags));
    }
    let out = printer::print_width(&parsed, text, width);
    let (again, diags) = parse(file, &out);
    if !diags.is_empty() {
        return Err(FormatError::Unstable(format!(
            "the formatted text does not parse: {}",
            diags[0].message
        )));
    }
    if shape(&parsed) != shape(&again) {
        return Err(FormatError::Unstable(
            "the formatted text parses to a different syntax tree".into(),
        ));
    }
    Ok(out)
}

/// Whether two texts both parse without errors to the same syntax tree with the same comments
/// (what [`format`] proves of its output). The language server checks partial formatting
/// with it.
pub fn equivalent(file: FileId, a: &str, b: &str) -> bool {
    let (pa, da) = parse(file, a);
    let (pb, db) = parse(file, b);
    da.is_empty() && db.is_empty() && shape(&pa) == shape(&pb)
}

/// The span-free shape of a parsed file: its tree dump and its comments.
fn shape(p: &Parsed) -> (Vec<String>, Vec<String>) {
    let tree = dump::file(&p.file)
        .lines()
        .map(|l| l.rsplit_once(" @").map_or(l, |(a, _)| a).to_string())
        .collect();
    let comments = p.comments.iter().map(|c| c.text.clone()).collect();
    (tree, comments)
}
