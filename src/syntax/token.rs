//! Tokens of the rule language (logos).
//!
//! Consumes: source text. Produces: [`Tok`] values with byte spans; comments are tokens too
//! (the lexer adapter moves them aside for the printer).

use logos::Logos;

/// Why a piece of text is not a token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LexError {
    #[default]
    InvalidChar,
    UnterminatedString,
    NumberOutOfRange,
}

/// A string literal's body with `\\` -> `\` and `\"` -> `"`; every other backslash is kept.
pub fn unescape(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('\\') | Some('"') => {
                    out.push(chars.next().unwrap_or('\\'));
                }
                _ => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The shortest literal text (without quotes) that [`unescape`]s to `value`.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    let chars: Vec<char> = value.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => {
                // A lone backslash is kept as written unless the lexer would read it together
                // with the next character (`\\`, `\"`) or it ends the literal.
                match chars.get(i + 1) {
                    None | Some('\\') | Some('"') => out.push_str("\\\\"),
                    Some(_) => out.push('\\'),
                }
            }
            _ => out.push(c),
        }
    }
    out
}

fn string(lex: &mut logos::Lexer<'_, Tok>) -> Result<String, LexError> {
    let s = lex.slice();
    Ok(s[1..s.len() - 1].to_string())
}

fn unterminated(_: &mut logos::Lexer<'_, Tok>) -> Result<String, LexError> {
    Err(LexError::UnterminatedString)
}

fn decimal(lex: &mut logos::Lexer<'_, Tok>) -> Result<i64, LexError> {
    lex.slice()
        .parse::<i64>()
        .map_err(|_| LexError::NumberOutOfRange)
}

fn hex(lex: &mut logos::Lexer<'_, Tok>) -> Result<i64, LexError> {
    let digits = &lex.slice()[2..];
    u64::from_str_radix(digits, 16)
        .map(|v| v as i64)
        .map_err(|_| LexError::NumberOutOfRange)
}

fn inner(lex: &mut logos::Lexer<'_, Tok>) -> String {
    let s = lex.slice();
    s[1..s.len() - 1].to_string()
}

fn tail(lex: &mut logos::Lexer<'_, Tok>) -> String {
    lex.slice()[1..].to_string()
}

#[derive(Logos, Debug, Clone, PartialEq, Eq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(error = LexError)]
pub enum Tok {
    #[regex(r"#[^\n]*", allow_greedy = true)]
    Comment,

    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token("<-")]
    Arrow,
    #[token("=")]
    Eq,
    #[token("<>")]
    Ne,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("&")]
    Amp,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,

    /// A string literal; the token holds the text between the quotes as written.
    #[regex(r#""([^"\\]|\\[^\n])*""#, string)]
    #[regex(r#""([^"\\]|\\[^\n])*"#, unterminated)]
    Str(String),
    #[regex(r"[0-9]+", decimal)]
    Num(i64),
    #[regex(r"&[Hh][0-9A-Fa-f]+", hex)]
    HexNum(i64),
    /// `[name]`; a name may carry LDAP attribute options (`[cn;lang-ja]`).
    #[regex(r"\[[A-Za-z_0-9][A-Za-z0-9_\-\.;]*\]", inner)]
    Attr(String),
    #[regex(r"%[A-Za-z_][A-Za-z0-9_\.\-]*%", inner)]
    Param(String),
    #[regex(r"\$[A-Za-z_][A-Za-z0-9_]*", tail)]
    Var(String),
    /// Names; an attribute name may carry LDAP attribute options (`cn;lang-ja`).
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*([\-\.;][A-Za-z0-9_]+)*", |lex| lex.slice().to_string())]
    Ident(String),

    #[token("bundle")]
    KwBundle,
    #[token("param")]
    KwParam,
    #[token("metaverse")]
    KwMetaverse,
    #[token("object")]
    KwObject,
    #[token("connector")]
    KwConnector,
    #[token("anchor")]
    KwAnchor,
    #[token("multi")]
    KwMulti,
    #[token("unique")]
    KwUnique,
    #[token("inbound")]
    KwInbound,
    #[token("outbound")]
    KwOutbound,
    #[token("rule")]
    KwRule,
    #[token("source")]
    KwSource,
    #[token("target")]
    KwTarget,
    #[token("link")]
    KwLink,
    #[token("precedence")]
    KwPrecedence,
    #[token("description")]
    KwDescription,
    #[token("tag")]
    KwTag,
    #[token("password-sync")]
    KwPasswordSync,
    #[token("disabled")]
    KwDisabled,
    #[token("scope")]
    KwScope,
    #[token("join")]
    KwJoin,
    #[token("flow")]
    KwFlow,
    #[token("once")]
    KwOnce,
    #[token("update")]
    KwUpdate,
    #[token("merge")]
    KwMerge,
    #[token("merge-case-insensitive")]
    KwMergeCi,
    #[token("replace")]
    KwReplace,
    #[token("case-sensitive")]
    KwCaseSensitive,
    #[token("test")]
    KwTest,
    #[token("given")]
    KwGiven,
    #[token("delete")]
    KwDelete,
    #[token("sync")]
    KwSync,
    #[token("expect")]
    KwExpect,
    #[token("export")]
    KwExport,
    #[token("no")]
    KwNo,
    #[token("where")]
    KwWhere,
    #[token("absent")]
    KwAbsent,
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s: String = match self {
            Tok::Comment => "comment".into(),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Num(n) => format!("number {n}"),
            Tok::HexNum(n) => format!("number &H{n:X}"),
            Tok::Attr(a) => format!("attribute [{a}]"),
            Tok::Param(p) => format!("parameter %{p}%"),
            Tok::Var(v) => format!("variable ${v}"),
            Tok::Ident(i) => format!("`{i}`"),
            other => format!("`{}`", punct_or_keyword(other)),
        };
        f.write_str(&s)
    }
}

fn punct_or_keyword(t: &Tok) -> &'static str {
    match t {
        Tok::LParen => "(",
        Tok::RParen => ")",
        Tok::LBrace => "{",
        Tok::RBrace => "}",
        Tok::LBracket => "[",
        Tok::RBracket => "]",
        Tok::Comma => ",",
        Tok::Colon => ":",
        Tok::Arrow => "<-",
        Tok::Eq => "=",
        Tok::Ne => "<>",
        Tok::Lt => "<",
        Tok::Le => "<=",
        Tok::Gt => ">",
        Tok::Ge => ">=",
        Tok::Plus => "+",
        Tok::Minus => "-",
        Tok::Star => "*",
        Tok::Slash => "/",
        Tok::Amp => "&",
        Tok::AndAnd => "&&",
        Tok::OrOr => "||",
        Tok::KwBundle => "bundle",
        Tok::KwParam => "param",
        Tok::KwMetaverse => "metaverse",
        Tok::KwObject => "object",
        Tok::KwConnector => "connector",
        Tok::KwAnchor => "anchor",
        Tok::KwMulti => "multi",
        Tok::KwUnique => "unique",
        Tok::KwInbound => "inbound",
        Tok::KwOutbound => "outbound",
        Tok::KwRule => "rule",
        Tok::KwSource => "source",
        Tok::KwTarget => "target",
        Tok::KwLink => "link",
        Tok::KwPrecedence => "precedence",
        Tok::KwDescription => "description",
        Tok::KwTag => "tag",
        Tok::KwPasswordSync => "password-sync",
        Tok::KwDisabled => "disabled",
        Tok::KwScope => "scope",
        Tok::KwJoin => "join",
        Tok::KwFlow => "flow",
        Tok::KwOnce => "once",
        Tok::KwUpdate => "update",
        Tok::KwMerge => "merge",
        Tok::KwMergeCi => "merge-case-insensitive",
        Tok::KwReplace => "replace",
        Tok::KwCaseSensitive => "case-sensitive",
        Tok::KwTest => "test",
        Tok::KwGiven => "given",
        Tok::KwDelete => "delete",
        Tok::KwSync => "sync",
        Tok::KwExpect => "expect",
        Tok::KwExport => "export",
        Tok::KwNo => "no",
        Tok::KwWhere => "where",
        Tok::KwAbsent => "absent",
        _ => "?",
    }
}

/// The keyword spelling of a keyword token, used where a keyword is accepted as a name.
pub fn keyword_text(t: &Tok) -> &'static str {
    punct_or_keyword(t)
}
