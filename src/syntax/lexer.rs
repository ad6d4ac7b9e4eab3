//! The lexer adapter between logos and the lalrpop parser.
//!
//! Consumes: source text. Produces: a token iterator for the parser, the comments (kept aside
//! for the printer), and lexical diagnostics. A lexical error never stops the parse: a bad
//! character is skipped, an unterminated string still yields a string token, a number out of
//! range yields 0, and each is reported once.

use super::token::{LexError, Tok};
use crate::source::Span;
use logos::Logos;

/// A comment: its text (with the leading `#`) and span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub text: String,
    pub span: Span,
}

/// An error raised by the lexer or by a grammar action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexErr {
    pub kind: LexErrKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexErrKind {
    Lex(LexError),
    /// A grammar action expected something else (message).
    Expected(&'static str),
    /// Brackets or an expression nested beyond the limits.
    TooDeep,
}

impl LexErr {
    pub fn expected(what: &'static str, span: Span) -> Self {
        Self {
            kind: LexErrKind::Expected(what),
            span,
        }
    }
}

/// The output of the lexer.
#[derive(Debug, Default)]
pub struct Lexed {
    /// `(start, token, end)` triples for the parser.
    pub tokens: Vec<(usize, Tok, usize)>,
    pub comments: Vec<Comment>,
    pub errors: Vec<LexErr>,
}

/// Tokenizes `text`: the parser's tokens, the comments and the lexical errors.
pub fn tokenize(text: &str) -> Lexed {
    let mut toks = Vec::new();
    let mut comments = Vec::new();
    let mut errors = Vec::new();
    let mut lex = Tok::lexer(text);
    while let Some(res) = lex.next() {
        let span = lex.span();
        match res {
            Ok(Tok::Comment) => comments.push(Comment {
                text: lex.slice().trim_end().to_string(),
                span,
            }),
            Ok(t) => toks.push((span.start, t, span.end)),
            Err(e) => {
                let slice = lex.slice();
                match e {
                    LexError::UnterminatedString => {
                        toks.push((span.start, Tok::Str(slice[1..].to_string()), span.end));
                    }
                    LexError::NumberOutOfRange => {
                        let t = if slice.starts_with('&') {
                            Tok::HexNum(0)
                        } else {
                            Tok::Num(0)
                        };
                        toks.push((span.start, t, span.end));
                    }
                    LexError::InvalidChar => {}
                }
                errors.push(LexErr {
                    kind: LexErrKind::Lex(e),
                    span,
                });
            }
        }
    }
    Lexed {
        tokens: toks,
        comments,
        errors,
    }
}

/// Rejects expression trees deeper than [`MAX_EXPR_DEPTH`](super::ast::MAX_EXPR_DEPTH).
pub fn guard(
    e: super::ast::Expr,
) -> Result<super::ast::Expr, lalrpop_util::ParseError<usize, Tok, LexErr>> {
    if e.depth > super::ast::MAX_EXPR_DEPTH {
        Err(lalrpop_util::ParseError::User {
            error: LexErr {
                kind: LexErrKind::TooDeep,
                span: e.span.clone(),
            },
        })
    } else {
        Ok(e)
    }
}
