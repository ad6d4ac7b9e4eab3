//! The tokenizer of the PowerShell reader.
//!
//! Consumes: script text (line endings already normalised to `\n`). Produces: [`Token`]s with
//! their line, column and byte range, or a located error (unterminated strings and comments,
//! unbalanced brackets, brackets nested more than [`MAX_NESTING`] levels). Double-quoted
//! strings keep the pieces PowerShell expands (`$name`, `${name}`, `$(...)`) as [`Part`]s.

use super::{LocErr, Pos, err};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// A bare word: a command name, an unquoted argument, or an operator PowerShell spells
    /// with punctuation (`-`, `--`, `-=`, `/`, `.member`, `::member`).
    Word(String),
    /// `-Name`; `colon` for the `-Name:value` form. Also the dash operators (`-eq`, `-and`).
    Param {
        name: String,
        colon: bool,
    },
    /// A string. `text` is its literal text; `parts` is empty unless it is a double-quoted
    /// string that expands variables or subexpressions.
    Str {
        text: String,
        parts: Vec<Part>,
    },
    Num(String),
    /// `$name`, `$name[0]`, `$name[0].Member` (scope qualifiers `script:` and the like are
    /// dropped; `env:` is kept).
    Var {
        name: String,
        index: Option<u64>,
        members: Vec<String>,
    },
    /// `@name`: splatting.
    Splat(String),
    /// `@(`
    ArrayOpen,
    /// `$(`
    SubOpen,
    /// `@{`
    HashOpen,
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Pipe,
    Semi,
    Newline,
    Assign,
    /// Any other operator character (`&`, `>`, `!`, `+`, `*`, `%`, `<`).
    Op(String),
}

/// A piece of an expandable string.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Part {
    Lit(String),
    /// `$name` or `${name}`.
    Var(String),
    /// `$( ... )`: the script text inside, read when the string is evaluated.
    Sub(String),
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub tok: Tok,
    pub pos: Pos,
    /// Byte offsets of the token in the script.
    pub start: usize,
    pub end: usize,
}

struct Lexer<'a> {
    src: &'a str,
    chars: Vec<(usize, char)>,
    i: usize,
    line: usize,
    col: usize,
    out: Vec<Token>,
    /// Open brackets: the closing character expected and where the opener is.
    stack: Vec<(char, Pos)>,
}

/// How deeply brackets may nest, as in rule files (`syntax::MAX_NESTING`): the parser
/// recurses once per level, so deeper input is rejected before parsing.
pub(super) const MAX_NESTING: usize = crate::syntax::MAX_NESTING;

/// Characters that end a bare word.
fn ends_word(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '(' | ')' | '{' | '}' | '[' | ']' | ',' | ';' | '|' | '\'' | '"'
        )
}

pub(super) fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Drops a variable's scope qualifier: `$script:x` and `$x` are one variable here (the
/// reader keeps one scope per function call, as PowerShell does for reading).
pub(super) fn strip_scope(name: &str) -> &str {
    if let Some((scope, rest)) = name.split_once(':')
        && ["script", "global", "local", "private", "using"]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scope))
    {
        return rest;
    }
    name
}

pub(super) fn lex(src: &str) -> Result<Vec<Token>, LocErr> {
    let mut lx = Lexer {
        src,
        chars: src.char_indices().collect(),
        i: 0,
        line: 1,
        col: 1,
        out: Vec::new(),
        stack: Vec::new(),
    };
    lx.run()?;
    Ok(lx.out)
}

/// Collects the pieces of an expandable string.
#[derive(Default)]
struct Parts {
    parts: Vec<Part>,
    lit: String,
    /// The whole literal text (escapes decoded, expansions as written).
    text: String,
    expands: bool,
}

impl Parts {
    fn push(&mut self, c: char) {
        self.lit.push(c);
        self.text.push(c);
    }

    fn flush(&mut self) {
        if !self.lit.is_empty() {
            self.parts.push(Part::Lit(std::mem::take(&mut self.lit)));
        }
    }

    fn expansion(&mut self, part: Part, written: &str) {
        self.flush();
        self.parts.push(part);
        self.text.push_str(written);
        self.expands = true;
    }

    fn finish(mut self) -> Tok {
        self.flush();
        Tok::Str {
            text: self.text,
            parts: if self.expands { self.parts } else { Vec::new() },
        }
    }
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.i + n).map(|&(_, c)| c)
    }

    fn offset(&self) -> usize {
        self.chars.get(self.i).map_or(self.src.len(), |&(o, _)| o)
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn push(&mut self, tok: Tok, pos: Pos, start: usize) {
        let end = self.offset();
        self.out.push(Token {
            tok,
            pos,
            start,
            end,
        });
    }

    /// Opens a bracket closed by `close`; more than [`MAX_NESTING`] open brackets is an error
    /// (the parser recurses once per level).
    fn open(&mut self, close: char, pos: Pos) -> Result<(), LocErr> {
        if self.stack.len() >= MAX_NESTING {
            return err(
                pos,
                format!("E0215: brackets nested too deeply (at most {MAX_NESTING} levels)"),
            );
        }
        self.stack.push((close, pos));
        Ok(())
    }

    /// After a backtick: is the rest of the line blank (a line continuation)?
    fn continuation_follows(&self) -> bool {
        let mut n = 1;
        loop {
            match self.peek_at(n) {
                None | Some('\n') => return true,
                Some(' ' | '\t' | '\r') => n += 1,
                Some(_) => return false,
            }
        }
    }

    fn run(&mut self) -> Result<(), LocErr> {
        while let Some(c) = self.peek() {
            let pos = self.pos();
            let start = self.offset();
            match c {
                c if c == '\u{feff}' || (c.is_whitespace() && c != '\n') => {
                    self.bump();
                }
                '`' if self.continuation_follows() => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                '\n' => {
                    self.bump();
                    self.push(Tok::Newline, pos, start);
                }
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                '<' if self.peek_at(1) == Some('#') => self.block_comment(pos)?,
                '\'' => {
                    let text = self.single_quoted(pos)?;
                    self.push(
                        Tok::Str {
                            text,
                            parts: Vec::new(),
                        },
                        pos,
                        start,
                    );
                }
                '"' => {
                    let tok = self.double_quoted(pos)?;
                    self.push(tok, pos, start);
                }
                '@' if matches!(self.peek_at(1), Some('\'' | '"')) => {
                    let tok = self.here_string(pos)?;
                    self.push(tok, pos, start);
                }
                '@' if self.peek_at(1) == Some('(') => {
                    self.bump();
                    self.bump();
                    self.open(')', pos)?;
                    self.push(Tok::ArrayOpen, pos, start);
                }
                '@' if self.peek_at(1) == Some('{') => {
                    self.bump();
                    self.bump();
                    self.open('}', pos)?;
                    self.push(Tok::HashOpen, pos, start);
                }
                '@' if self.peek_at(1).is_some_and(is_name_char) => {
                    self.bump();
                    let mut name = String::new();
                    while let Some(c) = self.peek().filter(|&c| is_name_char(c)) {
                        name.push(c);
                        self.bump();
                    }
                    self.push(Tok::Splat(name), pos, start);
                }
                '$' if self.peek_at(1) == Some('(') => {
                    self.bump();
                    self.bump();
                    self.open(')', pos)?;
                    self.push(Tok::SubOpen, pos, start);
                }
                '$' => self.variable(pos, start)?,
                '(' | '{' | '[' => {
                    self.bump();
                    let (close, tok) = match c {
                        '(' => (')', Tok::LParen),
                        '{' => ('}', Tok::LBrace),
                        _ => (']', Tok::LBracket),
                    };
                    self.open(close, pos)?;
                    self.push(tok, pos, start);
                }
                ')' | '}' | ']' => {
                    match self.stack.pop() {
                        Some((want, _)) if want == c => {}
                        Some((want, open)) => {
                            return err(
                                pos,
                                format!(
                                    "`{c}` does not match the bracket opened at {}:{} (expected `{want}`)",
                                    open.line, open.col
                                ),
                            );
                        }
                        None => return err(pos, format!("unbalanced `{c}`: nothing is open")),
                    }
                    self.bump();
                    let tok = match c {
                        ')' => Tok::RParen,
                        '}' => Tok::RBrace,
                        _ => Tok::RBracket,
                    };
                    self.push(tok, pos, start);
                }
                ',' | ';' | '|' | '=' => {
                    self.bump();
                    let tok = match c {
                        ',' => Tok::Comma,
                        ';' => Tok::Semi,
                        '|' => Tok::Pipe,
                        _ => Tok::Assign,
                    };
                    self.push(tok, pos, start);
                }
                '-' if self
                    .peek_at(1)
                    .is_some_and(|c| c.is_alphabetic() || c == '_') =>
                {
                    self.bump();
                    let mut name = String::new();
                    while let Some(c) = self.peek().filter(|&c| is_name_char(c)) {
                        name.push(c);
                        self.bump();
                    }
                    let colon = self.peek() == Some(':');
                    if colon {
                        self.bump();
                    }
                    self.push(Tok::Param { name, colon }, pos, start);
                }
                '&' | '!' | '>' | '<' | '+' | '*' | '%' => {
                    self.bump();
                    self.push(Tok::Op(c.to_string()), pos, start);
                }
                _ => {
                    let word = self.word();
                    if word.is_empty() {
                        // Not reachable: every character that ends a word is handled above.
                        self.bump();
                        continue;
                    }
                    let digits = word.strip_prefix('-').unwrap_or(&word);
                    let tok = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                        Tok::Num(word)
                    } else {
                        Tok::Word(word)
                    };
                    self.push(tok, pos, start);
                }
            }
        }
        if let Some(&(close, open)) = self.stack.last() {
            let opener = match close {
                ')' => "(",
                '}' => "{",
                _ => "[",
            };
            return err(
                open,
                format!("unbalanced `{opener}`: no matching `{close}`"),
            );
        }
        Ok(())
    }

    fn block_comment(&mut self, pos: Pos) -> Result<(), LocErr> {
        self.bump();
        self.bump();
        loop {
            match self.bump() {
                None => return err(pos, "unterminated block comment `<#`: no `#>`"),
                Some('#') if self.peek() == Some('>') => {
                    self.bump();
                    return Ok(());
                }
                Some(_) => {}
            }
        }
    }

    fn single_quoted(&mut self, pos: Pos) -> Result<String, LocErr> {
        self.bump();
        let mut text = String::new();
        loop {
            match self.bump() {
                None => return err(pos, "unterminated single-quoted string"),
                Some('\'') if self.peek() == Some('\'') => {
                    self.bump();
                    text.push('\'');
                }
                Some('\'') => return Ok(text),
                Some(c) => text.push(c),
            }
        }
    }

    /// A backtick escape of a double-quoted string (the backtick is consumed).
    fn escape(&mut self, pos: Pos, parts: &mut Parts) -> Result<(), LocErr> {
        let Some(c) = self.bump() else {
            return err(pos, "unterminated double-quoted string");
        };
        parts.push(match c {
            '0' => '\0',
            'a' => '\u{7}',
            'b' => '\u{8}',
            'e' => '\u{1b}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            other => other,
        });
        Ok(())
    }

    /// Whether an unescaped `$` at the cursor starts a variable or subexpression.
    fn dollar_expands(&self) -> bool {
        self.peek_at(1)
            .is_some_and(|c| is_name_char(c) || matches!(c, '{' | '(' | ':' | '?' | '^' | '$'))
    }

    /// An expansion inside a double-quoted string, at a `$` that expands.
    fn expansion(&mut self, pos: Pos, parts: &mut Parts) -> Result<(), LocErr> {
        let start = self.offset();
        self.bump();
        match self.peek() {
            Some('(') => {
                self.bump();
                let inner_start = self.offset();
                let mut depth = 1usize;
                loop {
                    match self.peek() {
                        None | Some('"') => {
                            return err(pos, "unterminated `$(` in a double-quoted string");
                        }
                        Some('(') => depth += 1,
                        Some(')') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    self.bump();
                }
                let inner = self.src[inner_start..self.offset()].to_string();
                self.bump();
                let written = self.src[start..self.offset()].to_string();
                parts.expansion(Part::Sub(inner), &written);
            }
            Some('{') => {
                self.bump();
                let mut name = String::new();
                loop {
                    match self.bump() {
                        None => return err(pos, "unterminated variable name `${`"),
                        Some('}') => break,
                        Some(c) => name.push(c),
                    }
                }
                let written = self.src[start..self.offset()].to_string();
                parts.expansion(Part::Var(strip_scope(&name).to_string()), &written);
            }
            _ => {
                let mut name = String::new();
                while let Some(c) = self.peek() {
                    if is_name_char(c) || (name.is_empty() && matches!(c, '?' | '^' | '$')) {
                        name.push(c);
                        self.bump();
                        if matches!(c, '?' | '^' | '$') {
                            break;
                        }
                    } else if c == ':'
                        && !name.is_empty()
                        && self.peek_at(1).is_some_and(is_name_char)
                    {
                        name.push(c);
                        self.bump();
                    } else {
                        break;
                    }
                }
                let written = self.src[start..self.offset()].to_string();
                parts.expansion(Part::Var(strip_scope(&name).to_string()), &written);
            }
        }
        Ok(())
    }

    fn double_quoted(&mut self, pos: Pos) -> Result<Tok, LocErr> {
        self.bump();
        let mut parts = Parts::default();
        loop {
            if self.peek() == Some('$') && self.dollar_expands() {
                self.expansion(pos, &mut parts)?;
                continue;
            }
            match self.bump() {
                None => return err(pos, "unterminated double-quoted string"),
                Some('`') => self.escape(pos, &mut parts)?,
                Some('"') if self.peek() == Some('"') => {
                    self.bump();
                    parts.push('"');
                }
                Some('"') => return Ok(parts.finish()),
                Some(c) => parts.push(c),
            }
        }
    }

    /// `@'` ... `'@` or `@"` ... `"@`: the header must end its line and the terminator must
    /// start one; the line break before the terminator is not part of the text.
    fn here_string(&mut self, pos: Pos) -> Result<Tok, LocErr> {
        self.bump();
        let quote = self.bump().unwrap_or('\'');
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.bump();
        }
        if self.bump() != Some('\n') {
            return err(
                pos,
                format!("here-string header `@{quote}` must be followed by a line break"),
            );
        }
        let mut parts = Parts::default();
        let mut line_start = true;
        loop {
            if line_start && self.peek() == Some(quote) && self.peek_at(1) == Some('@') {
                self.bump();
                self.bump();
                for s in [&mut parts.lit, &mut parts.text] {
                    if s.ends_with('\n') {
                        s.pop();
                        if s.ends_with('\r') {
                            s.pop();
                        }
                    }
                }
                return Ok(parts.finish());
            }
            if quote == '"' && self.peek() == Some('$') && self.dollar_expands() {
                self.expansion(pos, &mut parts)?;
                line_start = false;
                continue;
            }
            match self.bump() {
                None => {
                    return err(
                        pos,
                        format!("unterminated here-string: no line starting with `{quote}@`"),
                    );
                }
                Some('`') if quote == '"' => {
                    self.escape(pos, &mut parts)?;
                    line_start = false;
                }
                Some(c) => {
                    parts.push(c);
                    line_start = c == '\n';
                }
            }
        }
    }

    fn variable(&mut self, pos: Pos, start: usize) -> Result<(), LocErr> {
        self.bump();
        let mut name = String::new();
        if self.peek() == Some('{') {
            self.bump();
            loop {
                match self.bump() {
                    None => return err(pos, "unterminated variable name `${`"),
                    Some('}') => break,
                    Some(c) => name.push(c),
                }
            }
        } else {
            while let Some(c) = self.peek() {
                if is_name_char(c) || c == '?' {
                    name.push(c);
                    self.bump();
                } else if c == ':' && !name.is_empty() && self.peek_at(1).is_some_and(is_name_char)
                {
                    // A scope or drive qualifier: `$script:x`, `$env:NAME`.
                    name.push(c);
                    self.bump();
                } else {
                    break;
                }
            }
        }
        if name.is_empty() {
            // A lone `$` is literal text in argument mode.
            let mut word = String::from("$");
            word.push_str(&self.word());
            self.push(Tok::Word(word), pos, start);
            return Ok(());
        }
        let name = strip_scope(&name).to_string();
        let mut index = None;
        if self.peek() == Some('[') {
            let mut n = 1;
            let mut digits = String::new();
            while let Some(d) = self.peek_at(n).filter(char::is_ascii_digit) {
                digits.push(d);
                n += 1;
            }
            if !digits.is_empty() && self.peek_at(n) == Some(']') {
                for _ in 0..=n {
                    self.bump();
                }
                index = digits.parse().ok();
            }
        }
        let mut members = Vec::new();
        while self.peek() == Some('.')
            && self
                .peek_at(1)
                .is_some_and(|c| c.is_alphabetic() || c == '_')
        {
            self.bump();
            let mut m = String::new();
            while let Some(c) = self.peek().filter(|&c| is_name_char(c)) {
                m.push(c);
                self.bump();
            }
            members.push(m);
        }
        self.push(
            Tok::Var {
                name,
                index,
                members,
            },
            pos,
            start,
        );
        Ok(())
    }

    /// A bare word; a backtick escapes the next character.
    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek() {
            if c == '`' {
                if self.continuation_follows() {
                    break;
                }
                self.bump();
                if let Some(e) = self.bump() {
                    word.push(e);
                }
            } else if ends_word(c) {
                break;
            } else {
                word.push(c);
                self.bump();
            }
        }
        word
    }
}
