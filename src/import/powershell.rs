//! Reads a Synchronization Rules Editor PowerShell export into a [`Config`].
//!
//! Consumes: the script text (`New-ADSyncRule`, `New-Object` scope and join conditions,
//! `Add-ADSyncScopeConditionGroup`, `Add-ADSyncJoinConditionGroup`,
//! `Add-ADSyncAttributeFlowMapping`, `Add-ADSyncRule`). Produces: [`Config`] holding the rules
//! (no connectors, no metaverse: a script does not define them); every command or parameter
//! that is not understood is listed in `Config::unmapped`, never dropped silently.
//!
//! The script is read in three steps: a hand-written tokenizer for the PowerShell subset the
//! editor writes (`lex`), a statement parser (`parse`) and an interpreter that replays the
//! commands against a model of the rule objects (`Interp`). Nothing is executed.
//!
//! Recognised but ignored (they do not change the configuration):
//! - bare value statements such as `'Connector: contoso.com'` (the editor's header line),
//!   `#` and `<# ... #>` comments;
//! - `Get-ADSyncRule` (the editor's read-back after `Add-ADSyncRule`), `Write-Host`, and
//!   `Out-Null` (also as the last stage of a pipeline, `... | Out-Null`);
//! - `Remove-ADSyncRule` (by `-Identifier`, `-SynchronizationRule`, or as
//!   `Get-ADSyncRule -Identifier X | Remove-ADSyncRule`) when the script adds a rule with that
//!   identifier afterwards, i.e. it replaces the rule; any other removal is unmapped;
//! - the common parameters `-Verbose`, `-Debug`, `-ErrorAction`, `-WarningAction`,
//!   `-InformationAction` (and their `*Variable` forms) on every command;
//! - `-PrecedenceAfter`/`-PrecedenceBefore` when they are the empty GUID and
//!   `-SoftDeleteExpiryInterval` when it is zero (other values are unmapped);
//! - `-Source` of Expression flows (it only lists the attributes the expression reads);
//! - `-Confirm` of `Remove-ADSyncRule`; the arguments of ignored commands (not evaluated).

use super::model::{Config, Direction, Flow, FlowKind, JoinCondition, Rule, ScopeClause, Unmapped};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Reads a script. `path` is used for error locations and as the rules' source.
///
/// Errors (`"path:line:col: message"`): unterminated strings or comments, unbalanced
/// brackets, brackets nested more than 256 levels (`E0215: ...`), a variable used before it is assigned, an index other than `[0]`, a parameter
/// given twice to one command.
pub fn read(path: &Path, text: &str) -> Result<Config, String> {
    let render = |e: LocErr| format!("{}:{}:{}: {}", path.display(), e.pos.line, e.pos.col, e.msg);
    // Line endings are a property of the file, not of the strings in it.
    let text = text.replace("\r\n", "\n");
    let tokens = lex(&text).map_err(render)?;
    let statements = parse(&text, &tokens);
    Interp::new(path).run(&statements).map_err(render)
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    line: usize,
    col: usize,
}

#[derive(Debug)]
struct LocErr {
    pos: Pos,
    msg: String,
}

fn err<T>(pos: Pos, msg: impl Into<String>) -> Result<T, LocErr> {
    Err(LocErr {
        pos,
        msg: msg.into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare word: a command name or an unquoted argument.
    Word(String),
    /// `-Name`; `colon` for the `-Name:value` form.
    Param {
        name: String,
        colon: bool,
    },
    /// A string; `interp` when a double-quoted string contains `$` (not expanded here).
    Str {
        text: String,
        interp: bool,
    },
    Num(String),
    /// `$name`, `$name[0]`, `$name[0].Member`.
    Var {
        name: String,
        index: Option<u64>,
        members: Vec<String>,
    },
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
    /// Any other operator character (`&`, `>`, `!`, `+`, ...).
    Op(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: Pos,
    /// Byte offsets of the token in the script.
    start: usize,
    end: usize,
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
const MAX_NESTING: usize = crate::syntax::MAX_NESTING;

/// Characters that end a bare word.
fn ends_word(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '(' | ')' | '{' | '}' | '[' | ']' | ',' | ';' | '|' | '\'' | '"'
        )
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn lex(src: &str) -> Result<Vec<Token>, LocErr> {
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

    /// After a backtick: is the rest of the line blank (a line continuation)?
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
                            interp: false,
                        },
                        pos,
                        start,
                    );
                }
                '"' => {
                    let (text, interp) = self.double_quoted(pos)?;
                    self.push(Tok::Str { text, interp }, pos, start);
                }
                '@' if matches!(self.peek_at(1), Some('\'' | '"')) => {
                    let (text, interp) = self.here_string(pos)?;
                    self.push(Tok::Str { text, interp }, pos, start);
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
    fn escape(&mut self, pos: Pos, text: &mut String) -> Result<(), LocErr> {
        let Some(c) = self.bump() else {
            return err(pos, "unterminated double-quoted string");
        };
        text.push(match c {
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

    fn double_quoted(&mut self, pos: Pos) -> Result<(String, bool), LocErr> {
        self.bump();
        let mut text = String::new();
        let mut interp = false;
        loop {
            if self.peek() == Some('$') && self.dollar_expands() {
                interp = true;
            }
            match self.bump() {
                None => return err(pos, "unterminated double-quoted string"),
                Some('`') => self.escape(pos, &mut text)?,
                Some('"') if self.peek() == Some('"') => {
                    self.bump();
                    text.push('"');
                }
                Some('"') => return Ok((text, interp)),
                Some(c) => text.push(c),
            }
        }
    }

    /// `@'` ... `'@` or `@"` ... `"@`: the header must end its line and the terminator must
    /// start one; the line break before the terminator is not part of the text.
    fn here_string(&mut self, pos: Pos) -> Result<(String, bool), LocErr> {
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
        let mut text = String::new();
        let mut interp = false;
        let mut line_start = true;
        loop {
            if line_start && self.peek() == Some(quote) && self.peek_at(1) == Some('@') {
                self.bump();
                self.bump();
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                return Ok((text, interp));
            }
            if quote == '"' && self.peek() == Some('$') && self.dollar_expands() {
                interp = true;
            }
            match self.bump() {
                None => {
                    return err(
                        pos,
                        format!("unterminated here-string: no line starting with `{quote}@`"),
                    );
                }
                Some('`') if quote == '"' => {
                    self.escape(pos, &mut text)?;
                    line_start = false;
                }
                Some(c) => {
                    text.push(c);
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

// ---------------------------------------------------------------------------------------------
// Parser

/// An argument value.
#[derive(Debug, Clone)]
enum Value {
    Str {
        text: String,
        interp: bool,
        pos: Pos,
    },
    Num {
        text: String,
        pos: Pos,
    },
    Word {
        text: String,
        pos: Pos,
    },
    Var {
        name: String,
        index: Option<u64>,
        members: Vec<String>,
        pos: Pos,
    },
    /// `@(...)` or a comma list.
    Array {
        items: Vec<Value>,
        pos: Pos,
    },
    /// Anything not evaluated (subexpressions, casts, script blocks, ...), as written.
    Opaque {
        text: String,
        pos: Pos,
    },
}

impl Value {
    fn pos(&self) -> Pos {
        match self {
            Value::Str { pos, .. }
            | Value::Num { pos, .. }
            | Value::Word { pos, .. }
            | Value::Var { pos, .. }
            | Value::Array { pos, .. }
            | Value::Opaque { pos, .. } => *pos,
        }
    }
}

#[derive(Debug)]
enum Elem {
    Param {
        name: String,
        pos: Pos,
        value: Option<Value>,
    },
    Arg(Value),
}

#[derive(Debug)]
struct Command {
    name: String,
    pos: Pos,
    elems: Vec<Elem>,
}

#[derive(Debug)]
enum Stmt {
    /// `cmd ... | cmd ...`, possibly fed by a value: `$syncRule[0] | Add-ADSyncRule`.
    Pipeline {
        input: Option<Value>,
        commands: Vec<Command>,
    },
    /// A bare value: `'Connector: contoso.com'`.
    Expr(Value),
    /// `$x = ...`
    Assign { name: String, pos: Pos },
    /// Anything else, as written.
    Unsupported { text: String, pos: Pos },
}

struct Parser<'a> {
    src: &'a str,
    toks: &'a [Token],
    i: usize,
}

fn parse(src: &str, toks: &[Token]) -> Vec<Stmt> {
    let mut p = Parser { src, toks, i: 0 };
    let mut out = Vec::new();
    while let Some(s) = p.statement() {
        out.push(s);
    }
    out
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }

    fn at_end_of_statement(&self) -> bool {
        matches!(self.peek(), None | Some(Tok::Newline | Tok::Semi))
    }

    fn skip_newlines(&mut self) {
        while matches!(self.peek(), Some(Tok::Newline)) {
            self.i += 1;
        }
    }

    fn text(&self, from: usize, to: usize) -> String {
        let start = self.toks[from].start;
        let end = self.toks[to.max(from + 1) - 1].end;
        self.src[start..end].trim().to_string()
    }

    /// Skips one token and, when it opens a bracket, everything up to its match.
    fn skip_balanced(&mut self) {
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            match t {
                Tok::LParen
                | Tok::ArrayOpen
                | Tok::SubOpen
                | Tok::HashOpen
                | Tok::LBrace
                | Tok::LBracket => {
                    depth += 1;
                }
                Tok::RParen | Tok::RBrace | Tok::RBracket => depth = depth.saturating_sub(1),
                _ => {}
            }
            self.i += 1;
            if depth == 0 {
                return;
            }
        }
    }

    fn skip_statement(&mut self) {
        while !self.at_end_of_statement() {
            self.skip_balanced();
        }
    }

    fn statement(&mut self) -> Option<Stmt> {
        while matches!(self.peek(), Some(Tok::Newline | Tok::Semi)) {
            self.i += 1;
        }
        let first = self.toks.get(self.i)?;
        let (start, pos) = (self.i, first.pos);
        match &first.tok {
            Tok::Word(_) => Some(self.pipeline(None)),
            Tok::Str { .. }
            | Tok::Num(_)
            | Tok::Var { .. }
            | Tok::ArrayOpen
            | Tok::SubOpen
            | Tok::HashOpen
            | Tok::LParen
            | Tok::LBracket => {
                let value = self.value();
                match (self.peek(), &value) {
                    (Some(Tok::Assign), Value::Var { name, .. }) => {
                        let name = name.clone();
                        self.skip_statement();
                        Some(Stmt::Assign { name, pos })
                    }
                    (Some(Tok::Pipe), _) => {
                        self.i += 1;
                        self.skip_newlines();
                        if matches!(self.peek(), Some(Tok::Word(_))) {
                            Some(self.pipeline(Some(value)))
                        } else {
                            self.skip_statement();
                            Some(Stmt::Unsupported {
                                text: self.text(start, self.i),
                                pos,
                            })
                        }
                    }
                    _ if self.at_end_of_statement() => Some(Stmt::Expr(value)),
                    _ => {
                        self.skip_statement();
                        Some(Stmt::Unsupported {
                            text: self.text(start, self.i),
                            pos,
                        })
                    }
                }
            }
            _ => {
                self.skip_statement();
                Some(Stmt::Unsupported {
                    text: self.text(start, self.i),
                    pos,
                })
            }
        }
    }

    fn pipeline(&mut self, input: Option<Value>) -> Stmt {
        let start = self.i;
        let pos = self.toks[start].pos;
        let mut commands = vec![self.command()];
        while matches!(self.peek(), Some(Tok::Pipe)) {
            self.i += 1;
            self.skip_newlines();
            if matches!(self.peek(), Some(Tok::Word(_))) {
                commands.push(self.command());
            } else {
                self.skip_statement();
                return Stmt::Unsupported {
                    text: self.text(start, self.i),
                    pos,
                };
            }
        }
        Stmt::Pipeline { input, commands }
    }

    /// A command: its name (the current token, a word) and its parameters and arguments.
    fn command(&mut self) -> Command {
        let t = &self.toks[self.i];
        let (name, pos) = match &t.tok {
            Tok::Word(w) => (w.clone(), t.pos),
            _ => (String::new(), t.pos),
        };
        self.i += 1;
        let mut elems = Vec::new();
        loop {
            match self.peek() {
                None | Some(Tok::Newline | Tok::Semi | Tok::Pipe) => break,
                Some(Tok::RParen | Tok::RBrace | Tok::RBracket) => break,
                Some(Tok::Param { name, colon }) => {
                    let (name, colon, pos) = (name.clone(), *colon, self.toks[self.i].pos);
                    self.i += 1;
                    let value = if colon && !self.at_end_of_statement() {
                        Some(self.value())
                    } else {
                        None
                    };
                    elems.push(Elem::Param { name, pos, value });
                }
                Some(_) => elems.push(Elem::Arg(self.value())),
            }
        }
        Command { name, pos, elems }
    }

    /// A value, or a comma list of values (an array).
    fn value(&mut self) -> Value {
        let first = self.primary();
        if !matches!(self.peek(), Some(Tok::Comma)) {
            return first;
        }
        let pos = first.pos();
        let mut items = vec![first];
        while matches!(self.peek(), Some(Tok::Comma)) {
            self.i += 1;
            self.skip_newlines();
            if matches!(
                self.peek(),
                None | Some(Tok::Semi | Tok::Pipe | Tok::RParen | Tok::RBrace | Tok::RBracket)
            ) {
                break;
            }
            items.push(self.primary());
        }
        Value::Array { items, pos }
    }

    fn primary(&mut self) -> Value {
        let start = self.i;
        let Some(t) = self.toks.get(self.i) else {
            return Value::Opaque {
                text: String::new(),
                pos: Pos { line: 0, col: 0 },
            };
        };
        let pos = t.pos;
        let value = match &t.tok {
            Tok::Str { text, interp } => {
                self.i += 1;
                Value::Str {
                    text: text.clone(),
                    interp: *interp,
                    pos,
                }
            }
            Tok::Num(text) => {
                self.i += 1;
                Value::Num {
                    text: text.clone(),
                    pos,
                }
            }
            Tok::Word(text) => {
                self.i += 1;
                Value::Word {
                    text: text.clone(),
                    pos,
                }
            }
            Tok::Var {
                name,
                index,
                members,
            } => {
                self.i += 1;
                Value::Var {
                    name: name.clone(),
                    index: *index,
                    members: members.clone(),
                    pos,
                }
            }
            Tok::ArrayOpen => self.array(),
            Tok::LBracket => {
                // A cast or type literal: `[string]$x`, `[guid]'...'`.
                self.skip_balanced();
                if self.adjacent()
                    && matches!(
                        self.peek(),
                        Some(Tok::Str { .. } | Tok::Var { .. } | Tok::LParen | Tok::SubOpen)
                    )
                {
                    self.primary();
                }
                Value::Opaque {
                    text: self.text(start, self.i),
                    pos,
                }
            }
            _ => {
                self.skip_balanced();
                Value::Opaque {
                    text: self.text(start, self.i),
                    pos,
                }
            }
        };
        // Postfix member access or indexing makes the whole an unevaluated expression.
        let mut postfix = false;
        while self.adjacent() {
            match self.peek() {
                Some(Tok::LBracket | Tok::LParen) => self.skip_balanced(),
                Some(Tok::Word(w)) if w.starts_with('.') => self.i += 1,
                _ => break,
            }
            postfix = true;
        }
        if postfix {
            Value::Opaque {
                text: self.text(start, self.i),
                pos,
            }
        } else {
            value
        }
    }

    /// Whether the current token directly follows the previous one (no space between).
    fn adjacent(&self) -> bool {
        self.i > 0
            && self
                .toks
                .get(self.i)
                .is_some_and(|t| t.start == self.toks[self.i - 1].end)
    }

    /// `@( ... )` of literal values and variables; anything else makes it opaque.
    fn array(&mut self) -> Value {
        let start = self.i;
        let pos = self.toks[start].pos;
        self.i += 1;
        let mut items = Vec::new();
        loop {
            while matches!(self.peek(), Some(Tok::Newline | Tok::Semi)) {
                self.i += 1;
            }
            match self.peek() {
                Some(Tok::RParen) => {
                    self.i += 1;
                    return Value::Array { items, pos };
                }
                Some(Tok::Str { .. } | Tok::Num(_) | Tok::Var { .. } | Tok::ArrayOpen) => {
                    match self.value() {
                        Value::Array { items: inner, .. } => items.extend(inner),
                        v => items.push(v),
                    }
                }
                _ => {
                    // Not a literal array: skip to the matching `)`.
                    self.i = start;
                    self.skip_balanced();
                    return Value::Opaque {
                        text: self.text(start, self.i),
                        pos,
                    };
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Interpreter

const SCOPE_CONDITION: &str = "Microsoft.IdentityManagement.PowerShell.ObjectModel.ScopeCondition";
const JOIN_CONDITION: &str = "Microsoft.IdentityManagement.PowerShell.ObjectModel.JoinCondition";
const EMPTY_GUID: &str = "{00000000-0000-0000-0000-000000000000}";

/// Common parameters accepted (and ignored) on every command; `true` when it takes a value.
const COMMON: &[(&str, bool)] = &[
    ("Verbose", false),
    ("Debug", false),
    ("ErrorAction", true),
    ("WarningAction", true),
    ("InformationAction", true),
    ("ErrorVariable", true),
    ("WarningVariable", true),
    ("InformationVariable", true),
];

/// PowerShell keywords: statements of this kind are not supported.
const KEYWORDS: &[&str] = &[
    "if", "else", "elseif", "foreach", "for", "while", "do", "until", "switch", "function",
    "filter", "param", "try", "catch", "finally", "trap", "throw", "return", "break", "continue",
    "exit", "begin", "process", "end", "using", "class", "enum",
];

/// What a variable holds.
#[derive(Debug, Clone)]
enum Binding {
    /// A rule under construction (index into `Interp::rules`).
    Rule(usize),
    Scope(ScopeClause),
    Join(JoinCondition),
    /// A value the importer could not build (already reported).
    Invalid,
    /// Assigned by a statement that is not evaluated (already reported).
    Opaque,
}

impl Binding {
    fn kind(&self) -> &'static str {
        match self {
            Binding::Rule(_) => "a synchronization rule",
            Binding::Scope(_) => "a scope condition",
            Binding::Join(_) => "a join condition",
            Binding::Invalid => "an unreadable object",
            Binding::Opaque => "set by an unsupported statement",
        }
    }
}

/// A rule between `New-ADSyncRule` and `Add-ADSyncRule`.
#[derive(Debug, Clone)]
struct Pending {
    pos: Pos,
    name: Option<String>,
    id: String,
    description: String,
    immutable_tag: Option<String>,
    direction: Option<Direction>,
    disabled: bool,
    connector: Option<String>,
    source_type: Option<String>,
    target_type: Option<String>,
    link_type: String,
    precedence: i64,
    password_sync: bool,
    scope: Vec<Vec<ScopeClause>>,
    joins: Vec<Vec<JoinCondition>>,
    flows: Vec<Flow>,
    /// Changed since the last `Add-ADSyncRule`.
    dirty: bool,
    /// Where `Add-ADSyncRule` was last called for it.
    added_at: Option<Pos>,
    /// Index of its snapshot in the output.
    out: Option<usize>,
}

impl Pending {
    fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("unnamed rule (line {})", self.pos.line),
        }
    }
}

/// A `Remove-ADSyncRule` to be matched with a later `Add-ADSyncRule` of the same rule.
struct Removal {
    target: RemovalTarget,
    order: usize,
    pos: Pos,
    context: String,
}

enum RemovalTarget {
    Id(String),
    Pending(usize),
}

/// The parameters of one command, bound by name.
struct Bound {
    cmd: &'static str,
    /// Documented name → (where, value; `None` for a switch without value).
    params: HashMap<&'static str, (Pos, Option<Value>)>,
    /// Unmapped findings (unknown parameters, stray arguments), reported under the rule's name.
    problems: Vec<String>,
}

impl Bound {
    fn get(&self, name: &str) -> Option<&Value> {
        self.params.get(name).and_then(|(_, v)| v.as_ref())
    }

    fn has(&self, name: &str) -> bool {
        self.params.contains_key(name)
    }
}

struct Interp {
    path: PathBuf,
    vars: HashMap<String, Binding>,
    rules: Vec<Pending>,
    /// The rule started last and not yet added: the context of unrelated findings.
    current: Option<usize>,
    out: Vec<Rule>,
    /// `(rule, order)` of every `Add-ADSyncRule`.
    adds: Vec<(usize, usize)>,
    removals: Vec<Removal>,
    order: usize,
    unmapped: Vec<Unmapped>,
}

/// `{lower-case}` form of a GUID, as in the XML export.
fn normalize_guid(id: &str) -> String {
    let inner = id.trim().trim_start_matches('{').trim_end_matches('}');
    format!("{{{}}}", inner.to_ascii_lowercase())
}

fn describe(v: &Value) -> String {
    match v {
        Value::Str { text, .. } => format!("'{text}'"),
        Value::Num { text, .. } | Value::Word { text, .. } | Value::Opaque { text, .. } => {
            text.clone()
        }
        Value::Var {
            name,
            index,
            members,
            ..
        } => {
            let mut s = format!("${name}");
            if let Some(i) = index {
                s.push_str(&format!("[{i}]"));
            }
            for m in members {
                s.push('.');
                s.push_str(m);
            }
            s
        }
        Value::Array { items, .. } => {
            format!(
                "@({})",
                items.iter().map(describe).collect::<Vec<_>>().join(",")
            )
        }
    }
}

impl Interp {
    fn new(path: &Path) -> Self {
        Interp {
            path: path.to_path_buf(),
            vars: HashMap::new(),
            rules: Vec::new(),
            current: None,
            out: Vec::new(),
            adds: Vec::new(),
            removals: Vec::new(),
            order: 0,
            unmapped: Vec::new(),
        }
    }

    fn locate(&self, pos: Pos, msg: impl Into<String>) -> LocErr {
        LocErr {
            pos,
            msg: msg.into(),
        }
    }

    fn unmapped(&mut self, context: &str, what: impl Into<String>) {
        self.unmapped.push(Unmapped {
            source: self.path.clone(),
            context: context.to_string(),
            what: what.into(),
        });
    }

    fn context(&self, rule: Option<usize>) -> String {
        match rule.or(self.current) {
            Some(r) => self.rules[r].label(),
            None => "script".to_string(),
        }
    }

    fn run(mut self, statements: &[Stmt]) -> Result<Config, LocErr> {
        for s in statements {
            self.order += 1;
            match s {
                Stmt::Expr(Value::Opaque { text, pos }) => {
                    let ctx = self.context(None);
                    self.unmapped(
                        &ctx,
                        format!(
                            "unsupported statement at line {}: `{}`",
                            pos.line,
                            first_line(text)
                        ),
                    );
                }
                Stmt::Expr(_) => {}
                Stmt::Assign { name, pos } => {
                    let ctx = self.context(None);
                    self.unmapped(
                        &ctx,
                        format!(
                            "unsupported statement at line {}: assignment to `${name}`",
                            pos.line
                        ),
                    );
                    self.vars.insert(name.to_ascii_lowercase(), Binding::Opaque);
                }
                Stmt::Unsupported { text, pos } => {
                    let ctx = self.context(None);
                    self.unmapped(
                        &ctx,
                        format!(
                            "unsupported statement at line {}: `{}`",
                            pos.line,
                            first_line(text)
                        ),
                    );
                }
                Stmt::Pipeline { input, commands } => self.pipeline(input.as_ref(), commands)?,
            }
        }
        self.finish()
    }

    fn finish(mut self) -> Result<Config, LocErr> {
        for i in 0..self.rules.len() {
            let r = &self.rules[i];
            let label = r.label();
            match r.added_at {
                None => {
                    let what = format!(
                        "rule started by New-ADSyncRule at line {} is never added with Add-ADSyncRule; not imported",
                        r.pos.line
                    );
                    self.unmapped(&label, what);
                }
                Some(at) if r.dirty => {
                    let what = format!(
                        "changes made after Add-ADSyncRule at line {} are never added; imported as of that line",
                        at.line
                    );
                    self.unmapped(&label, what);
                }
                Some(_) => {}
            }
        }
        let removals = std::mem::take(&mut self.removals);
        for r in removals {
            let replaced = self.adds.iter().any(|&(rule, order)| {
                order > r.order
                    && match &r.target {
                        RemovalTarget::Pending(p) => *p == rule,
                        RemovalTarget::Id(id) => self.rules[rule].id == *id,
                    }
            });
            if !replaced {
                let what = match &r.target {
                    RemovalTarget::Id(id) => format!(
                        "Remove-ADSyncRule of rule `{id}` at line {} is not carried over: no later Add-ADSyncRule in this script replaces it",
                        r.pos.line
                    ),
                    RemovalTarget::Pending(_) => format!(
                        "Remove-ADSyncRule at line {} removes a rule of this script that is not added again afterwards; not carried over",
                        r.pos.line
                    ),
                };
                self.unmapped(&r.context, what);
            }
        }
        Ok(Config {
            rules: self.out,
            unmapped: self.unmapped,
            ..Config::default()
        })
    }

    fn pipeline(&mut self, input: Option<&Value>, commands: &[Command]) -> Result<(), LocErr> {
        let first = &commands[0];
        let first_name = first.name.to_ascii_lowercase();
        let mut rest = &commands[1..];
        // Trailing `| Out-Null` stages discard output.
        while let Some((last, init)) = rest.split_last() {
            if last.name.eq_ignore_ascii_case("Out-Null") {
                rest = init;
            } else {
                break;
            }
        }
        match (input, rest) {
            (None, []) => self.command(first, None),
            (Some(v), [])
                if matches!(
                    first_name.as_str(),
                    "add-adsyncrule" | "remove-adsyncrule" | "out-null"
                ) =>
            {
                self.command(first, Some(v))
            }
            (None, [next])
                if first_name == "get-adsyncrule"
                    && next.name.eq_ignore_ascii_case("Remove-ADSyncRule") =>
            {
                let b = self.bind(first, "Get-ADSyncRule", &[], &["Identifier"], &[])?;
                let ctx = self.context(None);
                self.report(&ctx, b.problems.clone());
                match b.get("Identifier") {
                    Some(v) => {
                        let v = v.clone();
                        self.command(next, Some(&v))
                    }
                    None => {
                        self.unmapped(&ctx, "unsupported pipeline `Get-ADSyncRule | Remove-ADSyncRule` without -Identifier");
                        Ok(())
                    }
                }
            }
            _ => {
                let ctx = self.context(None);
                let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
                let mut text = names.join(" | ");
                if input.is_some() {
                    text = format!("... | {text}");
                }
                self.unmapped(&ctx, format!("unsupported pipeline `{text}`"));
                Ok(())
            }
        }
    }

    fn report(&mut self, ctx: &str, problems: Vec<String>) {
        for p in problems {
            self.unmapped(ctx, p);
        }
    }

    fn command(&mut self, cmd: &Command, input: Option<&Value>) -> Result<(), LocErr> {
        let lower = cmd.name.to_ascii_lowercase();
        match lower.as_str() {
            "new-adsyncrule" => self.new_rule(cmd),
            "add-adsyncattributeflowmapping" => self.add_flow(cmd),
            "new-object" => self.new_object(cmd),
            "add-adsyncscopeconditiongroup" => self.add_group(cmd, false),
            "add-adsyncjoinconditiongroup" => self.add_group(cmd, true),
            "add-adsyncrule" => self.add_rule(cmd, input),
            "remove-adsyncrule" => self.remove_rule(cmd, input),
            "get-adsyncrule" | "write-host" | "out-null" => Ok(()),
            k if KEYWORDS.contains(&k) => {
                let ctx = self.context(None);
                self.unmapped(&ctx, format!("unsupported `{}` statement", cmd.name));
                Ok(())
            }
            _ => {
                let ctx = self.context(None);
                self.unmapped(&ctx, format!("unknown command `{}`", cmd.name));
                Ok(())
            }
        }
    }

    /// Binds parameters by name (case-insensitive). `switches` take no value (but accept
    /// `-Switch:$false`), `valued` take the next argument, `positional` names the parameters
    /// bare arguments fill, in order. Names are spelled as documented.
    fn bind(
        &mut self,
        cmd: &Command,
        display: &'static str,
        switches: &[&'static str],
        valued: &[&'static str],
        positional: &[&'static str],
    ) -> Result<Bound, LocErr> {
        let mut b = Bound {
            cmd: display,
            params: HashMap::new(),
            problems: Vec::new(),
        };
        let mut positional = positional.iter();
        let mut i = 0;
        while i < cmd.elems.len() {
            match &cmd.elems[i] {
                Elem::Param { name, pos, value } => {
                    let next_arg = |i: usize| match cmd.elems.get(i + 1) {
                        Some(Elem::Arg(v)) => Some(v.clone()),
                        _ => None,
                    };
                    if let Some(&canon) = switches.iter().find(|s| s.eq_ignore_ascii_case(name)) {
                        if b.params.insert(canon, (*pos, value.clone())).is_some() {
                            return Err(self.locate(
                                *pos,
                                format!("parameter `-{name}` of {display} is given more than once"),
                            ));
                        }
                    } else if let Some(&canon) =
                        valued.iter().find(|s| s.eq_ignore_ascii_case(name))
                    {
                        let v = match value {
                            Some(v) => Some(v.clone()),
                            None => {
                                let v = next_arg(i);
                                if v.is_some() {
                                    i += 1;
                                }
                                v
                            }
                        };
                        match v {
                            Some(v) => {
                                if b.params.insert(canon, (*pos, Some(v))).is_some() {
                                    return Err(self.locate(*pos, format!("parameter `-{name}` of {display} is given more than once")));
                                }
                            }
                            None => b
                                .problems
                                .push(format!("parameter `-{name}` of {display} has no value")),
                        }
                    } else if let Some(&(_, takes)) =
                        COMMON.iter().find(|(c, _)| c.eq_ignore_ascii_case(name))
                    {
                        if takes && value.is_none() && next_arg(i).is_some() {
                            i += 1;
                        }
                    } else {
                        if value.is_none() && next_arg(i).is_some() {
                            i += 1;
                        }
                        b.problems
                            .push(format!("unknown parameter `-{name}` of {display}"));
                    }
                }
                Elem::Arg(v) => match positional.next() {
                    Some(&canon) => {
                        b.params.insert(canon, (v.pos(), Some(v.clone())));
                    }
                    None => b.problems.push(format!(
                        "unexpected argument `{}` of {display}",
                        describe(v)
                    )),
                },
            }
            i += 1;
        }
        Ok(b)
    }

    // --- value conversions ---------------------------------------------------------------

    /// Looks a variable up; `Err` when it was never assigned.
    fn lookup(&self, name: &str, pos: Pos) -> Result<Binding, LocErr> {
        self.vars
            .get(&name.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| {
                self.locate(
                    pos,
                    format!("variable `${name}` is used before it is assigned"),
                )
            })
    }

    /// The single object a variable reference denotes (`$x` or `$x[0]`).
    fn object(&self, v: &Value) -> Result<Option<Binding>, LocErr> {
        let Value::Var {
            name,
            index,
            members,
            pos,
        } = v
        else {
            return Ok(None);
        };
        if matches!(
            name.to_ascii_lowercase().as_str(),
            "true" | "false" | "null"
        ) {
            return Ok(None);
        }
        let binding = self.lookup(name, *pos)?;
        if let Some(i) = index
            && *i != 0
            && !matches!(binding, Binding::Opaque)
        {
            return Err(self.locate(
                *pos,
                format!("index `[{i}]` is out of range: `${name}` holds one object"),
            ));
        }
        if !members.is_empty() {
            return Ok(Some(Binding::Opaque));
        }
        Ok(Some(binding))
    }

    /// A string parameter's value; `None` (after reporting why) when it cannot be read.
    fn string(&mut self, b: &Bound, param: &str, ctx: &str) -> Result<Option<String>, LocErr> {
        match b.get(param) {
            Some(v) => {
                let v = v.clone();
                self.string_of(&v, b.cmd, param, ctx)
            }
            None => Ok(None),
        }
    }

    fn string_of(
        &mut self,
        v: &Value,
        cmd: &str,
        param: &str,
        ctx: &str,
    ) -> Result<Option<String>, LocErr> {
        match v {
            Value::Str { text, interp, .. } => {
                if *interp {
                    self.unmapped(
                        ctx,
                        format!("`-{param}` of {cmd}: \"{text}\" refers to variables, which are not expanded; taken literally"),
                    );
                }
                Ok(Some(text.clone()))
            }
            Value::Num { text, .. } | Value::Word { text, .. } => Ok(Some(text.clone())),
            Value::Var { name, members, .. } if members.is_empty() => {
                match name.to_ascii_lowercase().as_str() {
                    "true" => Ok(Some("True".into())),
                    "false" => Ok(Some("False".into())),
                    "null" => Ok(None),
                    _ => {
                        let binding = self.object(v)?;
                        if !matches!(binding, Some(Binding::Invalid)) {
                            let kind = binding.map_or("a value", |b| b.kind());
                            self.unmapped(
                            ctx,
                            format!("`-{param}` of {cmd} comes from `{}` ({kind}), which is not evaluated", describe(v)),
                        );
                        }
                        Ok(None)
                    }
                }
            }
            Value::Array { items, .. } if items.len() == 1 => {
                self.string_of(&items[0], cmd, param, ctx)
            }
            Value::Array { items, .. } => {
                self.unmapped(
                    ctx,
                    format!(
                        "`-{param}` of {cmd} expects one value, got {}: `{}`",
                        items.len(),
                        describe(v)
                    ),
                );
                Ok(None)
            }
            Value::Var { .. } | Value::Opaque { .. } => {
                self.object(v)?;
                self.unmapped(
                    ctx,
                    format!("`-{param}` of {cmd}: `{}` is not evaluated", describe(v)),
                );
                Ok(None)
            }
        }
    }

    /// A list parameter's values (a single value is a list of one).
    fn strings_of(
        &mut self,
        v: &Value,
        cmd: &str,
        param: &str,
        ctx: &str,
    ) -> Result<Option<Vec<String>>, LocErr> {
        let items = match v {
            Value::Array { items, .. } => items.clone(),
            other => vec![other.clone()],
        };
        let mut out = Vec::new();
        for item in &items {
            match item {
                Value::Var { name, .. } if name.eq_ignore_ascii_case("null") => {}
                _ => match self.string_of(item, cmd, param, ctx)? {
                    Some(s) => out.push(s),
                    None => return Ok(None),
                },
            }
        }
        Ok(Some(out))
    }

    fn bool_of(
        &mut self,
        v: &Value,
        cmd: &str,
        param: &str,
        ctx: &str,
    ) -> Result<Option<bool>, LocErr> {
        let text = match v {
            Value::Var { name, members, .. } if members.is_empty() => {
                match name.to_ascii_lowercase().as_str() {
                    "true" => return Ok(Some(true)),
                    "false" => return Ok(Some(false)),
                    _ => self.string_of(v, cmd, param, ctx)?,
                }
            }
            _ => self.string_of(v, cmd, param, ctx)?,
        };
        let Some(text) = text else { return Ok(None) };
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => {
                self.unmapped(
                    ctx,
                    format!("`-{param}` of {cmd}: `{text}` is not a boolean"),
                );
                Ok(None)
            }
        }
    }

    /// A switch: present → true, `-Switch:$false` → false.
    fn switch(&mut self, b: &Bound, param: &str, ctx: &str) -> Result<bool, LocErr> {
        match b.params.get(param) {
            None => Ok(false),
            Some((_, None)) => Ok(true),
            Some((_, Some(v))) => {
                let v = v.clone();
                Ok(self.bool_of(&v, b.cmd, param, ctx)?.unwrap_or(true))
            }
        }
    }

    /// The rule `-SynchronizationRule` (or the pipeline input) denotes.
    fn rule_of(&mut self, v: Option<&Value>, cmd: &str) -> Result<Option<usize>, LocErr> {
        let ctx = self.context(None);
        let Some(v) = v else {
            self.unmapped(&ctx, format!("{cmd} without -SynchronizationRule"));
            return Ok(None);
        };
        match self.object(v)? {
            Some(Binding::Rule(r)) => Ok(Some(r)),
            Some(Binding::Invalid) => Ok(None),
            Some(b) => {
                self.unmapped(&ctx, format!("-SynchronizationRule of {cmd} is `{}`, {}, not a rule built by this script", describe(v), b.kind()));
                Ok(None)
            }
            None => {
                self.unmapped(
                    &ctx,
                    format!(
                        "-SynchronizationRule of {cmd} is `{}`, not a rule built by this script",
                        describe(v)
                    ),
                );
                Ok(None)
            }
        }
    }

    /// The rule a command's `-SynchronizationRule` denotes, with its context, after reporting
    /// the command's binding problems and binding its `-OutVariable` to that rule. `None` (the
    /// problems reported without a rule) when it denotes none.
    fn rule_argument(&mut self, b: &Bound, cmd: &str) -> Result<Option<(usize, String)>, LocErr> {
        let rule = self.rule_of(b.get("SynchronizationRule"), cmd)?;
        let ctx = self.context(rule);
        self.report(&ctx, b.problems.clone());
        let Some(rule) = rule else {
            return Ok(None);
        };
        self.out_variable(b, Binding::Rule(rule), &ctx)?;
        Ok(Some((rule, ctx)))
    }

    /// Binds `-OutVariable` to `binding`.
    fn out_variable(&mut self, b: &Bound, binding: Binding, ctx: &str) -> Result<(), LocErr> {
        let Some(name) = self.string(b, "OutVariable", ctx)? else {
            return Ok(());
        };
        if let Some(appended) = name.strip_prefix('+') {
            self.unmapped(
                ctx,
                format!("-OutVariable `{name}` (appending) is not supported"),
            );
            self.vars
                .insert(appended.to_ascii_lowercase(), Binding::Invalid);
            return Ok(());
        }
        self.vars.insert(name.to_ascii_lowercase(), binding);
        Ok(())
    }

    // --- commands ---------------------------------------------------------------------------

    fn new_rule(&mut self, cmd: &Command) -> Result<(), LocErr> {
        let b = self.bind(
            cmd,
            "New-ADSyncRule",
            &["EnablePasswordSync", "Disabled"],
            &[
                "Name",
                "Identifier",
                "Description",
                "Direction",
                "Precedence",
                "PrecedenceAfter",
                "PrecedenceBefore",
                "SourceObjectType",
                "TargetObjectType",
                "Connector",
                "LinkType",
                "SoftDeleteExpiryInterval",
                "ImmutableTag",
                "OutVariable",
            ],
            &[],
        )?;
        let idx = self.rules.len();
        let fallback = format!("unnamed rule (line {})", cmd.pos.line);
        let name = self.string(&b, "Name", &fallback)?;
        let ctx = name.clone().unwrap_or(fallback);
        let mut r = Pending {
            pos: cmd.pos,
            name,
            id: String::new(),
            description: String::new(),
            immutable_tag: None,
            direction: None,
            disabled: false,
            connector: None,
            source_type: None,
            target_type: None,
            link_type: "Join".into(),
            precedence: 0,
            password_sync: false,
            scope: Vec::new(),
            joins: Vec::new(),
            flows: Vec::new(),
            dirty: true,
            added_at: None,
            out: None,
        };
        self.report(&ctx, b.problems.clone());
        if let Some(id) = self.string(&b, "Identifier", &ctx)? {
            r.id = normalize_guid(&id);
        }
        r.description = self.string(&b, "Description", &ctx)?.unwrap_or_default();
        if let Some(d) = self.string(&b, "Direction", &ctx)? {
            match d.to_ascii_lowercase().as_str() {
                "inbound" => r.direction = Some(Direction::Inbound),
                "outbound" => r.direction = Some(Direction::Outbound),
                _ => self.unmapped(&ctx, format!("unknown direction `{d}` of New-ADSyncRule")),
            }
        }
        if let Some(p) = self.string(&b, "Precedence", &ctx)? {
            match p.trim().parse::<i64>() {
                Ok(n) => r.precedence = n,
                Err(_) => self.unmapped(
                    &ctx,
                    format!("precedence `{p}` of New-ADSyncRule is not a number"),
                ),
            }
        }
        for param in ["PrecedenceAfter", "PrecedenceBefore"] {
            if let Some(g) = self.string(&b, param, &ctx)?
                && !g.is_empty()
                && normalize_guid(&g) != EMPTY_GUID
            {
                self.unmapped(&ctx, format!("-{param} `{g}` of New-ADSyncRule is not carried over (the precedence number is)"));
            }
        }
        r.source_type = self.string(&b, "SourceObjectType", &ctx)?;
        r.target_type = self.string(&b, "TargetObjectType", &ctx)?;
        r.connector = self
            .string(&b, "Connector", &ctx)?
            .map(|c| normalize_guid(&c));
        if let Some(l) = self.string(&b, "LinkType", &ctx)? {
            r.link_type = match l.to_ascii_lowercase().as_str() {
                "join" => "Join".into(),
                "stickyjoin" => "StickyJoin".into(),
                "provision" => "Provision".into(),
                _ => {
                    self.unmapped(
                        &ctx,
                        format!("unknown link type `{l}` of New-ADSyncRule; kept as written"),
                    );
                    l
                }
            };
        }
        if let Some(s) = self.string(&b, "SoftDeleteExpiryInterval", &ctx)?
            && !s.trim().trim_start_matches(['0', ':', '.']).is_empty()
        {
            self.unmapped(
                &ctx,
                format!("-SoftDeleteExpiryInterval `{s}` of New-ADSyncRule is not carried over"),
            );
        }
        r.immutable_tag = self
            .string(&b, "ImmutableTag", &ctx)?
            .filter(|t| !t.is_empty());
        r.password_sync = self.switch(&b, "EnablePasswordSync", &ctx)?;
        r.disabled = self.switch(&b, "Disabled", &ctx)?;
        self.rules.push(r);
        self.current = Some(idx);
        self.out_variable(&b, Binding::Rule(idx), &ctx)
    }

    fn add_flow(&mut self, cmd: &Command) -> Result<(), LocErr> {
        const CMD: &str = "Add-ADSyncAttributeFlowMapping";
        let b = self.bind(
            cmd,
            CMD,
            &["ExecuteOnce"],
            &[
                "SynchronizationRule",
                "Source",
                "Destination",
                "FlowType",
                "ValueMergeType",
                "Expression",
                "OutVariable",
            ],
            &[],
        )?;
        let Some((rule, ctx)) = self.rule_argument(&b, CMD)? else {
            return Ok(());
        };
        let Some(target) = self.string(&b, "Destination", &ctx)? else {
            self.unmapped(
                &ctx,
                format!("{CMD} without -Destination; flow not imported"),
            );
            return Ok(());
        };
        let sources = match b.get("Source") {
            Some(v) => {
                let v = v.clone();
                match self.strings_of(&v, CMD, "Source", &ctx)? {
                    Some(s) => Some(s),
                    None => return Ok(()),
                }
            }
            None => None,
        };
        let expression = self.string(&b, "Expression", &ctx)?;
        let kind = match self.string(&b, "FlowType", &ctx)? {
            Some(t) => {
                match t.to_ascii_lowercase().as_str() {
                    "direct" => FlowKind::Direct,
                    "constant" => FlowKind::Constant,
                    "expression" => FlowKind::Expression,
                    _ => {
                        self.unmapped(&ctx, format!("unknown flow type `{t}` of the flow to `{target}`; flow not imported"));
                        return Ok(());
                    }
                }
            }
            None if expression.is_some() => FlowKind::Expression,
            None => FlowKind::Direct,
        };
        let sources = sources.unwrap_or_default();
        let source = match kind {
            FlowKind::Direct => {
                if expression.is_some() {
                    self.unmapped(
                        &ctx,
                        format!("-Expression of the Direct flow to `{target}` is not carried over"),
                    );
                }
                if sources.len() != 1 {
                    self.unmapped(
                        &ctx,
                        format!("Direct flow to `{target}` needs exactly one -Source attribute, got {}; flow not imported", sources.len()),
                    );
                    return Ok(());
                }
                sources[0].clone()
            }
            FlowKind::Constant => {
                match (sources.as_slice(), &expression) {
                    ([s], e) => {
                        if let Some(e) = e
                            && e != s
                        {
                            self.unmapped(
                            &ctx,
                            format!("Constant flow to `{target}` has -Source `{s}` and -Expression `{e}`; the -Source is used"),
                        );
                        }
                        s.clone()
                    }
                    ([], Some(e)) => e.clone(),
                    ([], None) => {
                        self.unmapped(&ctx, format!("Constant flow to `{target}` has no value (-Source or -Expression); flow not imported"));
                        return Ok(());
                    }
                    (many, _) => {
                        self.unmapped(
                        &ctx,
                        format!("Constant flow to `{target}` has {} -Source values; flow not imported", many.len()),
                    );
                        return Ok(());
                    }
                }
            }
            FlowKind::Expression => {
                match expression {
                    Some(e) => e,
                    None => {
                        self.unmapped(&ctx, format!("Expression flow to `{target}` has no -Expression; flow not imported"));
                        return Ok(());
                    }
                }
            }
        };
        let merge = self
            .string(&b, "ValueMergeType", &ctx)?
            .unwrap_or_else(|| "Update".into());
        let execute_once = self.switch(&b, "ExecuteOnce", &ctx)?;
        let r = &mut self.rules[rule];
        r.flows.push(Flow {
            target,
            kind,
            source,
            merge,
            execute_once,
        });
        r.dirty = true;
        Ok(())
    }

    fn new_object(&mut self, cmd: &Command) -> Result<(), LocErr> {
        const CMD: &str = "New-Object";
        let b = self.bind(
            cmd,
            CMD,
            &[],
            &["TypeName", "ArgumentList", "OutVariable"],
            &["TypeName", "ArgumentList"],
        )?;
        let ctx = self.context(None);
        self.report(&ctx, b.problems.clone());
        let type_name = self.string(&b, "TypeName", &ctx)?.unwrap_or_default();
        let is_scope = type_name.eq_ignore_ascii_case(SCOPE_CONDITION);
        let is_join = type_name.eq_ignore_ascii_case(JOIN_CONDITION);
        if !b.has("OutVariable") {
            self.unmapped(
                &ctx,
                format!("New-Object `{type_name}` without -OutVariable: the object is not kept"),
            );
            return Ok(());
        }
        let binding = if !is_scope && !is_join {
            self.unmapped(&ctx, format!("New-Object of unknown type `{type_name}`"));
            Binding::Invalid
        } else {
            let args = match b.get("ArgumentList") {
                Some(v) => match v {
                    Value::Array { items, .. } => items.clone(),
                    other => vec![other.clone()],
                },
                None => Vec::new(),
            };
            let short = if is_scope {
                "ScopeCondition"
            } else {
                "JoinCondition"
            };
            if args.len() != 3 {
                let shape = if is_scope {
                    "attribute, value, operator"
                } else {
                    "csAttribute, mvAttribute, caseSensitive"
                };
                self.unmapped(
                    &ctx,
                    format!("{short} needs 3 arguments ({shape}), got {}", args.len()),
                );
                Binding::Invalid
            } else if is_scope {
                let attribute = self.string_of(&args[0], short, "ArgumentList", &ctx)?;
                let value = self.string_of(&args[1], short, "ArgumentList", &ctx)?;
                let operator = self.string_of(&args[2], short, "ArgumentList", &ctx)?;
                match (attribute, operator) {
                    (Some(attribute), Some(operator)) => Binding::Scope(ScopeClause {
                        attribute,
                        operator,
                        value: value.filter(|v| !v.is_empty()),
                    }),
                    _ => Binding::Invalid,
                }
            } else {
                let cs = self.string_of(&args[0], short, "ArgumentList", &ctx)?;
                let mv = self.string_of(&args[1], short, "ArgumentList", &ctx)?;
                let case = self.bool_of(&args[2], short, "ArgumentList", &ctx)?;
                match (cs, mv, case) {
                    (Some(cs_attribute), Some(mv_attribute), Some(case_sensitive)) => {
                        Binding::Join(JoinCondition {
                            cs_attribute,
                            mv_attribute,
                            case_sensitive,
                        })
                    }
                    _ => Binding::Invalid,
                }
            }
        };
        self.out_variable(&b, binding, &ctx)
    }

    fn add_group(&mut self, cmd: &Command, join: bool) -> Result<(), LocErr> {
        let (display, list): (&'static str, &'static str) = if join {
            ("Add-ADSyncJoinConditionGroup", "JoinConditions")
        } else {
            ("Add-ADSyncScopeConditionGroup", "ScopeConditions")
        };
        let b = self.bind(
            cmd,
            display,
            &[],
            &["SynchronizationRule", list, "OutVariable"],
            &[],
        )?;
        let Some((rule, ctx)) = self.rule_argument(&b, display)? else {
            return Ok(());
        };
        let items = match b.get(list) {
            Some(Value::Array { items, .. }) => items.clone(),
            Some(v) => vec![v.clone()],
            None => Vec::new(),
        };
        let kind = if join { "join" } else { "scope" };
        if items.is_empty() {
            self.unmapped(
                &ctx,
                format!("{display} without conditions; group not imported"),
            );
            return Ok(());
        }
        let mut scope = Vec::new();
        let mut joins = Vec::new();
        let mut ok = true;
        for item in &items {
            match (self.object(item)?, join) {
                (Some(Binding::Scope(c)), false) => scope.push(c),
                (Some(Binding::Join(c)), true) => joins.push(c),
                (found, _) => {
                    let what = found.map_or("not a condition", |f| f.kind());
                    self.unmapped(
                        &ctx,
                        format!(
                            "{kind} condition `{}` of {display} is {what}; group not imported",
                            describe(item)
                        ),
                    );
                    ok = false;
                }
            }
        }
        if ok {
            let r = &mut self.rules[rule];
            if join {
                r.joins.push(joins);
            } else {
                r.scope.push(scope);
            }
            r.dirty = true;
        }
        Ok(())
    }

    fn add_rule(&mut self, cmd: &Command, input: Option<&Value>) -> Result<(), LocErr> {
        const CMD: &str = "Add-ADSyncRule";
        let b = self.bind(
            cmd,
            CMD,
            &[],
            &["SynchronizationRule"],
            &["SynchronizationRule"],
        )?;
        let target = b.get("SynchronizationRule").or(input).cloned();
        let Some(idx) = self.rule_of(target.as_ref(), CMD)? else {
            let ctx = self.context(None);
            self.report(&ctx, b.problems);
            return Ok(());
        };
        let ctx = self.context(Some(idx));
        self.report(&ctx, b.problems);
        self.adds.push((idx, self.order));
        if self.current == Some(idx) {
            self.current = None;
        }
        let r = &mut self.rules[idx];
        r.added_at = Some(cmd.pos);
        r.dirty = false;
        let r = r.clone();
        let mut missing = Vec::new();
        if r.name.is_none() {
            missing.push("-Name");
        }
        if r.direction.is_none() {
            missing.push("-Direction");
        }
        if r.connector.is_none() {
            missing.push("-Connector");
        }
        if r.source_type.is_none() {
            missing.push("-SourceObjectType");
        }
        if r.target_type.is_none() {
            missing.push("-TargetObjectType");
        }
        let (
            Some(name),
            Some(direction),
            Some(connector),
            Some(source_type),
            Some(target_type),
            true,
        ) = (
            r.name,
            r.direction,
            r.connector,
            r.source_type,
            r.target_type,
            missing.is_empty(),
        )
        else {
            self.unmapped(
                &ctx,
                format!("rule has no usable {}; not imported", missing.join(", ")),
            );
            return Ok(());
        };
        let rule = Rule {
            id: r.id,
            name,
            description: r.description,
            immutable_tag: r.immutable_tag,
            direction,
            disabled: r.disabled,
            connector,
            source_type,
            target_type,
            link_type: r.link_type,
            precedence: r.precedence,
            password_sync: r.password_sync,
            scope: r.scope,
            joins: r.joins,
            flows: r.flows,
            source: self.path.clone(),
        };
        match r.out {
            Some(o) => self.out[o] = rule,
            None => {
                self.rules[idx].out = Some(self.out.len());
                self.out.push(rule);
            }
        }
        Ok(())
    }

    fn remove_rule(&mut self, cmd: &Command, input: Option<&Value>) -> Result<(), LocErr> {
        const CMD: &str = "Remove-ADSyncRule";
        let b = self.bind(
            cmd,
            CMD,
            &["Confirm"],
            &["Identifier", "SynchronizationRule"],
            &[],
        )?;
        let ctx = self.context(None);
        self.report(&ctx, b.problems.clone());
        let by_rule = b.get("SynchronizationRule").cloned();
        let by_id = b
            .get("Identifier")
            .cloned()
            .or_else(|| input.filter(|v| !matches!(v, Value::Var { .. })).cloned());
        let by_var = by_rule.or_else(|| input.filter(|v| matches!(v, Value::Var { .. })).cloned());
        let target = if let Some(v) = by_id {
            match self.string_of(&v, CMD, "Identifier", &ctx)? {
                Some(id) => RemovalTarget::Id(normalize_guid(&id)),
                None => return Ok(()),
            }
        } else if let Some(v) = by_var {
            match self.rule_of(Some(&v), CMD)? {
                Some(r) => RemovalTarget::Pending(r),
                None => return Ok(()),
            }
        } else {
            self.unmapped(
                &ctx,
                format!("{CMD} without -Identifier or -SynchronizationRule"),
            );
            return Ok(());
        };
        self.removals.push(Removal {
            target,
            order: self.order,
            pos: cmd.pos,
            context: ctx,
        });
        Ok(())
    }
}

fn first_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim_end();
    if lines.next().is_some() {
        format!("{first} ...")
    } else {
        first.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn lex_err(src: &str) -> (usize, usize, String) {
        let e = lex(src).unwrap_err();
        (e.pos.line, e.pos.col, e.msg)
    }

    fn s(text: &str) -> Tok {
        Tok::Str {
            text: text.into(),
            interp: false,
        }
    }

    fn read_ok(src: &str) -> Config {
        read(Path::new("t.ps1"), src).unwrap()
    }

    fn whats(c: &Config) -> Vec<String> {
        c.unmapped
            .iter()
            .map(|u| format!("{}: {}", u.context, u.what))
            .collect()
    }

    const RULE: &str = "New-ADSyncRule -Name 'R' -Identifier 'AB-CD' -Direction 'Outbound' -Precedence 5 \
        -SourceObjectType 'person' -TargetObjectType 'user' -Connector 'EF-01' -LinkType 'provision' -OutVariable syncRule\n";

    #[test]
    fn single_quoted_strings_double_the_quote_and_span_lines() {
        assert_eq!(toks("'it''s'"), vec![s("it's")]);
        assert_eq!(toks("''"), vec![s("")]);
        assert_eq!(toks("'a\n  b'"), vec![s("a\n  b")]);
        assert_eq!(
            toks(r#"'"\\0ACNF:" `n $x'"#),
            vec![s(r#""\\0ACNF:" `n $x"#)]
        );
    }

    #[test]
    fn double_quoted_strings_take_backtick_escapes() {
        assert_eq!(toks(r#""a`"b``c`$d`ne""#), vec![s("a\"b`c$d\ne")]);
        assert_eq!(toks(r#""say ""hi""""#), vec![s("say \"hi\"")]);
        assert_eq!(
            toks(r#""x $y""#),
            vec![Tok::Str {
                text: "x $y".into(),
                interp: true
            }]
        );
        assert_eq!(toks(r#""cost: 5$""#), vec![s("cost: 5$")]);
    }

    #[test]
    fn here_strings() {
        assert_eq!(
            toks("@'\nIn 'quoted'\nline 2\n'@"),
            vec![s("In 'quoted'\nline 2")]
        );
        assert_eq!(toks("@'\r\nx\r\n'@"), vec![s("x")]);
        assert_eq!(toks("@\"\na`tb\n\"@"), vec![s("a\tb")]);
        assert_eq!(
            lex_err("@'x'@").2,
            "here-string header `@'` must be followed by a line break"
        );
        assert_eq!(lex_err("x\n@'\nabc\n").0, 2);
    }

    #[test]
    fn continuations_comments_and_newlines() {
        let t = toks("Cmd `\n  -A 1 `  \r\n-B # note\n<# block\n 'not a string #>x");
        assert_eq!(
            t,
            vec![
                Tok::Word("Cmd".into()),
                Tok::Param {
                    name: "A".into(),
                    colon: false
                },
                Tok::Num("1".into()),
                Tok::Param {
                    name: "B".into(),
                    colon: false
                },
                Tok::Newline,
                Tok::Word("x".into()),
            ]
        );
    }

    #[test]
    fn variables_arrays_and_lists() {
        let t = toks(
            "@($condition0[0],$condition1[0]) $true $syncRule[0].Identifier 'a','b' -X:$false",
        );
        assert_eq!(
            t,
            vec![
                Tok::ArrayOpen,
                Tok::Var {
                    name: "condition0".into(),
                    index: Some(0),
                    members: vec![]
                },
                Tok::Comma,
                Tok::Var {
                    name: "condition1".into(),
                    index: Some(0),
                    members: vec![]
                },
                Tok::RParen,
                Tok::Var {
                    name: "true".into(),
                    index: None,
                    members: vec![]
                },
                Tok::Var {
                    name: "syncRule".into(),
                    index: Some(0),
                    members: vec!["Identifier".into()]
                },
                s("a"),
                Tok::Comma,
                s("b"),
                Tok::Param {
                    name: "X".into(),
                    colon: true
                },
                Tok::Var {
                    name: "false".into(),
                    index: None,
                    members: vec![]
                },
            ]
        );
        assert_eq!(
            toks("-5 12 x-1"),
            vec![
                Tok::Num("-5".into()),
                Tok::Num("12".into()),
                Tok::Word("x-1".into())
            ]
        );
    }

    #[test]
    fn lexical_errors_are_located() {
        assert_eq!(
            lex_err("X -A 'abc\n\n"),
            (1, 6, "unterminated single-quoted string".into())
        );
        assert_eq!(
            lex_err("\n  \"abc"),
            (2, 3, "unterminated double-quoted string".into())
        );
        assert_eq!(
            lex_err("X @('a'"),
            (1, 3, "unbalanced `(`: no matching `)`".into())
        );
        assert_eq!(
            lex_err("X 'a')"),
            (1, 6, "unbalanced `)`: nothing is open".into())
        );
        assert_eq!(
            lex_err("X @('a'}"),
            (
                1,
                8,
                "`}` does not match the bracket opened at 1:3 (expected `)`)".into()
            )
        );
        assert_eq!(lex_err("<# never closed").0, 1);
    }

    #[test]
    fn parses_commands_with_switches_and_lists() {
        let src =
            "New-Object -TypeName 'T' -ArgumentList 'a', '', `\n 'c' -OutVariable c0 | Out-Null";
        let tokens = lex(src).unwrap();
        let stmts = parse(src, &tokens);
        assert_eq!(stmts.len(), 1);
        let Stmt::Pipeline {
            commands,
            input: None,
        } = &stmts[0]
        else {
            panic!("{stmts:?}")
        };
        assert_eq!(commands.len(), 2);
        assert_eq!(commands[0].elems.len(), 6);
        let Elem::Arg(Value::Array { items, .. }) = &commands[0].elems[3] else {
            panic!()
        };
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn reads_a_minimal_rule() {
        let c = read_ok(&format!(
            "{RULE}Add-ADSyncRule -SynchronizationRule $syncRule[0]\n"
        ));
        assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
        let r = &c.rules[0];
        assert_eq!(r.id, "{ab-cd}");
        assert_eq!(r.connector, "{ef-01}");
        assert_eq!(r.link_type, "Provision");
        assert_eq!(r.direction, Direction::Outbound);
        assert_eq!(r.precedence, 5);
        assert_eq!(r.source, PathBuf::from("t.ps1"));
        assert!(c.connectors.is_empty() && c.metaverse.is_empty());
    }

    #[test]
    fn constant_flows_take_source_or_expression() {
        let c = read_ok(&format!(
            "{RULE}Add-ADSyncAttributeFlowMapping -SynchronizationRule $syncRule[0] -Destination 'a' -FlowType 'Constant' -Source @('True') -OutVariable syncRule\n\
             Add-ADSyncAttributeFlowMapping -SynchronizationRule $syncRule[0] -Destination 'b' -FlowType 'Constant' -Expression 'x' -ValueMergeType 'Replace'\n\
             Add-ADSyncRule $syncRule[0]\n"
        ));
        assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
        let f = &c.rules[0].flows;
        assert_eq!(
            (f[0].kind, f[0].source.as_str(), f[0].merge.as_str()),
            (FlowKind::Constant, "True", "Update")
        );
        assert_eq!(
            (f[1].kind, f[1].source.as_str(), f[1].merge.as_str()),
            (FlowKind::Constant, "x", "Replace")
        );
    }

    #[test]
    fn pipelines_into_add_and_remove() {
        let c = read_ok(&format!(
            "Get-ADSyncRule -Identifier '{{AB-CD}}' | Remove-ADSyncRule\n{RULE}$syncRule[0] | Add-ADSyncRule | Out-Null\n"
        ));
        assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
        assert_eq!(c.rules.len(), 1);
        let c = read_ok(&format!(
            "{RULE}Add-ADSyncRule $syncRule[0]\nRemove-ADSyncRule -Identifier 'other'\n"
        ));
        assert_eq!(c.rules.len(), 1);
        assert!(
            whats(&c)[0].starts_with("script: Remove-ADSyncRule of rule `{other}` at line 3"),
            "{:?}",
            whats(&c)
        );
    }

    #[test]
    fn unsupported_statements_are_unmapped() {
        let c = read_ok(
            "$x = Get-Thing\nif ($x) {\n  Do-It\n} else { }\n[void](Foo)\nforeach ($a in $b) { }\n",
        );
        assert_eq!(
            whats(&c),
            vec![
                "script: unsupported statement at line 1: assignment to `$x`",
                "script: unsupported `if` statement",
                "script: unsupported statement at line 5: `[void](Foo)`",
                "script: unsupported `foreach` statement",
            ]
        );
    }

    #[test]
    fn opaque_variables_are_unmapped_not_errors() {
        let src = format!(
            "$connectorId = 'x'\n{}Add-ADSyncRule $syncRule[0]\n",
            RULE.replace("'EF-01'", "$connectorId")
        );
        let c = read_ok(&src);
        assert!(c.rules.is_empty());
        assert_eq!(
            whats(&c),
            vec![
                "script: unsupported statement at line 1: assignment to `$connectorId`",
                "R: `-Connector` of New-ADSyncRule comes from `$connectorId` (set by an unsupported statement), which is not evaluated",
                "R: rule has no usable -Connector; not imported",
            ]
        );
    }

    #[test]
    fn variable_errors_are_located() {
        let e = read(
            Path::new("t.ps1"),
            &format!("{RULE}Add-ADSyncRule -SynchronizationRule $rule[0]\n"),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "t.ps1:2:37: variable `$rule` is used before it is assigned"
        );
        let e = read(
            Path::new("t.ps1"),
            &format!("{RULE}Add-ADSyncRule -SynchronizationRule $syncRule[1]\n"),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "t.ps1:2:37: index `[1]` is out of range: `$syncRule` holds one object"
        );
    }

    #[test]
    fn changes_after_add_and_missing_add_are_reported() {
        let c = read_ok(&format!(
            "{RULE}Add-ADSyncRule $syncRule[0]\nAdd-ADSyncAttributeFlowMapping -SynchronizationRule $syncRule[0] -Destination 'a' -FlowType 'Direct' -Source 'b'\n{}",
            RULE.replace("'R'", "'S'")
        ));
        assert_eq!(c.rules.len(), 1);
        assert!(c.rules[0].flows.is_empty());
        assert_eq!(
            whats(&c),
            vec![
                "R: changes made after Add-ADSyncRule at line 2 are never added; imported as of that line",
                "S: rule started by New-ADSyncRule at line 4 is never added with Add-ADSyncRule; not imported",
            ]
        );
    }

    #[test]
    fn switches_take_explicit_values_and_parameters_are_case_insensitive() {
        let c = read_ok(&format!(
            "{}add-adsyncrule -synchronizationRULE $SYNCRULE[0]\n",
            RULE.replace(
                "-OutVariable",
                "-Disabled:$false -EnablePasswordSync:$true -outvariable"
            )
        ));
        assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
        assert!(!c.rules[0].disabled);
        assert!(c.rules[0].password_sync);
    }

    #[test]
    fn a_parameter_given_twice_is_an_error() {
        let e = read(
            Path::new("t.ps1"),
            &RULE.replace("-Precedence 5", "-Precedence 5 -precedence 6"),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "t.ps1:1:82: parameter `-precedence` of New-ADSyncRule is given more than once"
        );
    }

    #[test]
    fn normalizes_guids() {
        assert_eq!(normalize_guid("AE4DB4CC-B16B"), "{ae4db4cc-b16b}");
        assert_eq!(normalize_guid("{AE4DB4CC-B16B}"), "{ae4db4cc-b16b}");
    }
}
