//! Semantic tokens: what each piece of a file is, for highlighting that knows the schema.
//!
//! Consumes: a file's text (the lexer's tokens and comments) and the analysis's symbol index.
//! Produces: the `textDocument/semanticTokens/full` data — keywords, strings, numbers,
//! comments, operators from the lexer; functions, attributes (declared, read or written),
//! object types, parameters, variables and constants from the index — relative-encoded in
//! UTF-16 units, one token per line.

use super::index::{Role, Symbol};
use super::workspace::Analysis;
use crate::source::{FileId, Span};
use crate::syntax::lexer;
use crate::syntax::token::Tok;
use lsp_types::{
    SemanticToken, SemanticTokenModifier, SemanticTokenType, SemanticTokens, SemanticTokensLegend,
};

const TYPES: &[SemanticTokenType] = &[
    SemanticTokenType::KEYWORD,
    SemanticTokenType::STRING,
    SemanticTokenType::NUMBER,
    SemanticTokenType::COMMENT,
    SemanticTokenType::FUNCTION,
    SemanticTokenType::PROPERTY,
    SemanticTokenType::PARAMETER,
    SemanticTokenType::VARIABLE,
    SemanticTokenType::ENUM_MEMBER,
    SemanticTokenType::TYPE,
    SemanticTokenType::OPERATOR,
];

const MODIFIERS: &[SemanticTokenModifier] = &[
    SemanticTokenModifier::DECLARATION,
    SemanticTokenModifier::MODIFICATION,
];

pub fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend {
        token_types: TYPES.to_vec(),
        token_modifiers: MODIFIERS.to_vec(),
    }
}

fn ty(t: &SemanticTokenType) -> u32 {
    TYPES.iter().position(|x| x == t).unwrap_or(0) as u32
}

const DECLARATION: u32 = 1;
const MODIFICATION: u32 = 2;

/// One classified piece of text.
struct Piece {
    span: Span,
    ty: u32,
    modifiers: u32,
}

const SCHEMA_TYPES: &[&str] = &[
    "string",
    "integer",
    "boolean",
    "binary",
    "reference",
    "datetime",
];

fn is_operator(t: &Tok) -> bool {
    matches!(
        t,
        Tok::Arrow
            | Tok::Eq
            | Tok::Ne
            | Tok::Lt
            | Tok::Le
            | Tok::Gt
            | Tok::Ge
            | Tok::Plus
            | Tok::Minus
            | Tok::Star
            | Tok::Slash
            | Tok::Amp
            | Tok::AndAnd
            | Tok::OrOr
    )
}

fn is_keyword(t: &Tok) -> bool {
    !matches!(
        t,
        Tok::Comment
            | Tok::Str(_)
            | Tok::Num(_)
            | Tok::HexNum(_)
            | Tok::Attr(_)
            | Tok::Param(_)
            | Tok::Var(_)
            | Tok::Ident(_)
    ) && !is_operator(t)
        && !matches!(
            t,
            Tok::LParen
                | Tok::RParen
                | Tok::LBrace
                | Tok::RBrace
                | Tok::LBracket
                | Tok::RBracket
                | Tok::Comma
                | Tok::Colon
        )
}

pub fn semantic_tokens(a: &Analysis, file: FileId) -> SemanticTokens {
    let text = a.text(file);
    let index = a.index();
    let lexed = lexer::tokenize(text);
    let known: std::collections::HashMap<(usize, usize), &super::index::Occurrence> = index
        .in_file(file)
        .map(|o| ((o.span.start, o.span.end), o))
        .collect();
    let mut pieces: Vec<Piece> = Vec::new();
    for c in &lexed.comments {
        pieces.push(Piece {
            span: c.span.clone(),
            ty: ty(&SemanticTokenType::COMMENT),
            modifiers: 0,
        });
    }
    for (start, tok, end) in &lexed.tokens {
        let span = *start..*end;
        // Names: what the index knows about them wins over the lexer's view.
        let named = match tok {
            Tok::Attr(_) | Tok::Param(_) => super::index::inner(&span),
            _ => span.clone(),
        };
        if let Some(o) = known
            .get(&(named.start, named.end))
            .filter(|o| !matches!(o.symbol, Symbol::Rule(_)))
            .filter(|_| !matches!(tok, Tok::Str(_)))
        {
            let t = match &o.symbol {
                Symbol::Attr { .. } => SemanticTokenType::PROPERTY,
                Symbol::Object { .. } => SemanticTokenType::TYPE,
                Symbol::Connector(_) => SemanticTokenType::STRING,
                Symbol::Param { .. } => SemanticTokenType::PARAMETER,
                Symbol::Function(_) => SemanticTokenType::FUNCTION,
                Symbol::Constant(_) => SemanticTokenType::ENUM_MEMBER,
                Symbol::Rule(_) => SemanticTokenType::KEYWORD,
            };
            let modifiers = match o.role {
                Role::Declaration => DECLARATION,
                Role::Write => MODIFICATION,
                _ => 0,
            };
            pieces.push(Piece {
                span: named,
                ty: ty(&t),
                modifiers,
            });
            continue;
        }
        let t = match tok {
            Tok::Str(_) => SemanticTokenType::STRING,
            Tok::Num(_) | Tok::HexNum(_) => SemanticTokenType::NUMBER,
            Tok::Attr(_) => {
                pieces.push(Piece {
                    span: named,
                    ty: ty(&SemanticTokenType::PROPERTY),
                    modifiers: 0,
                });
                continue;
            }
            Tok::Param(_) => SemanticTokenType::PARAMETER,
            Tok::Var(_) => SemanticTokenType::VARIABLE,
            Tok::Ident(name) if SCHEMA_TYPES.contains(&name.as_str()) => SemanticTokenType::TYPE,
            Tok::Ident(_) => continue,
            t if is_operator(t) => SemanticTokenType::OPERATOR,
            t if is_keyword(t) => SemanticTokenType::KEYWORD,
            _ => continue,
        };
        pieces.push(Piece {
            span,
            ty: ty(&t),
            modifiers: 0,
        });
    }
    pieces.sort_by_key(|p| p.span.start);
    encode(a, file, &pieces)
}

/// Relative encoding; a piece over several lines becomes one token per line.
fn encode(a: &Analysis, file: FileId, pieces: &[Piece]) -> SemanticTokens {
    let text = a.text(file);
    let lines = a.line_index(file);
    let mut data = Vec::with_capacity(pieces.len());
    let (mut prev_line, mut prev_start) = (0u32, 0u32);
    let mut last_end = 0usize;
    for p in pieces {
        if p.span.start < last_end || p.span.is_empty() {
            continue;
        }
        last_end = p.span.end;
        let mut start = p.span.start;
        while start < p.span.end {
            let end = text[start..p.span.end]
                .find('\n')
                .map_or(p.span.end, |i| start + i);
            if end > start {
                let from = lines.position(text, start);
                let to = lines.position(text, end);
                let delta_line = from.line - prev_line;
                let delta_start = if delta_line == 0 {
                    from.character - prev_start
                } else {
                    from.character
                };
                data.push(SemanticToken {
                    delta_line,
                    delta_start,
                    length: to.character - from.character,
                    token_type: p.ty,
                    token_modifiers_bitset: p.modifiers,
                });
                prev_line = from.line;
                prev_start = from.character;
            }
            start = end + 1;
        }
    }
    SemanticTokens {
        result_id: None,
        data,
    }
}
