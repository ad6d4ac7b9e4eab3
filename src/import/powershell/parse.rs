//! The parser of the PowerShell reader.
//!
//! Consumes: [`Token`]s. Produces: a [`Block`] of statements: pipelines of commands (with
//! their parameters and arguments), assignments, `if`/`elseif`/`else`, `foreach`, `for`,
//! `while`, `do`, `try`/`catch`/`finally`, `switch`, `function` definitions with their
//! `param` blocks, and the control statements. Expressions cover what rule scripts use:
//! literals, expandable strings, variables, arrays, hashtables, script blocks, casts, member
//! access, method calls, indexing and the arithmetic, comparison, logical, `-f`, `-join`,
//! `-split` and `-replace` operators. Anything else becomes [`StmtKind::Unsupported`] or
//! [`ExprKind::Opaque`] with its text, for the evaluator to report; parsing itself never
//! fails except on operator chains nested too deeply.

use super::lex::{Part, Tok, Token};
use super::{LocErr, Pos};
use std::rc::Rc;

/// How deeply prefix operators may be chained (brackets are limited by the tokenizer).
const MAX_UNARY: usize = 256;

#[derive(Debug, Clone, Default)]
pub(super) struct Block {
    pub stmts: Vec<Stmt>,
}

/// Where a node is: its position and its text in the script (or in an expandable string).
#[derive(Debug, Clone)]
pub(super) struct Loc {
    pub pos: Pos,
    src: Rc<str>,
    start: usize,
    end: usize,
}

impl Loc {
    pub fn text(&self) -> &str {
        self.src.get(self.start..self.end).unwrap_or("").trim()
    }
}

#[derive(Debug, Clone)]
pub(super) struct Stmt {
    pub kind: StmtKind,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub(super) enum StmtKind {
    /// `cmd ... | cmd ...`, possibly fed by an expression: `$r | Add-ADSyncRule`; a bare
    /// expression is a pipeline without commands.
    Pipeline {
        input: Option<Expr>,
        commands: Vec<Command>,
    },
    /// `target op value` with op `=`, `+=`, `-=`, `*=`, `/=`.
    Assign {
        target: Expr,
        op: &'static str,
        value: Box<Stmt>,
    },
    /// `$x++`, `$x--`.
    Step {
        target: Expr,
        delta: i64,
    },
    If {
        clauses: Vec<(Stmt, Block)>,
        otherwise: Option<Block>,
    },
    Foreach {
        var: String,
        collection: Box<Stmt>,
        body: Block,
    },
    For {
        init: Option<Box<Stmt>>,
        cond: Option<Box<Stmt>>,
        step: Option<Box<Stmt>>,
        body: Block,
    },
    /// `while (cond) {}`; `do {} while (cond)` (`post`); `do {} until (cond)` (`until`).
    While {
        cond: Box<Stmt>,
        body: Block,
        post: bool,
        until: bool,
    },
    Try {
        body: Block,
        catches: Vec<Block>,
        finally: Option<Block>,
    },
    Switch {
        subject: Box<Stmt>,
        /// `None` labels the `default` clause.
        clauses: Vec<(Option<Expr>, Block)>,
        wildcard: bool,
    },
    Function(Rc<Function>),
    /// A `param(...)` block.
    Params(Vec<ParamDecl>),
    /// `begin {}`, `process {}`, `end {}` of a function, read in order.
    Block(Block),
    Return(Option<Box<Stmt>>),
    Break,
    Continue,
    Exit,
    Throw(Option<Box<Stmt>>),
    /// Anything else; `what` names the construct.
    Unsupported {
        what: String,
    },
}

#[derive(Debug)]
pub(super) struct Function {
    pub name: String,
    pub params: Vec<ParamDecl>,
    pub body: Block,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub(super) struct ParamDecl {
    pub name: String,
    /// The declared type (`int`, `string`, ...), lower case.
    pub ty: Option<String>,
    pub default: Option<Expr>,
}

impl ParamDecl {
    pub fn is_switch(&self) -> bool {
        self.ty.as_deref() == Some("switch")
    }
}

#[derive(Debug, Clone)]
pub(super) struct Command {
    pub name: String,
    pub elems: Vec<Elem>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub(super) enum Elem {
    Param {
        name: String,
        pos: Pos,
        value: Option<Expr>,
    },
    Arg(Expr),
    Splat(String, Pos),
}

#[derive(Debug, Clone)]
pub(super) struct Expr {
    pub kind: ExprKind,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub(super) enum ExprKind {
    Str(String),
    /// An expandable string's pieces.
    Interp(Vec<Part>),
    Num(i64),
    /// A bare word (a string in argument mode).
    Word(String),
    Var(String),
    /// `a, b, c`
    List(Vec<Expr>),
    /// `@( ... )`
    ArraySub(Block),
    /// `$( ... )` and `( ... )`
    Sub(Block),
    /// `@{ key = value; ... }`
    Hash(Vec<(Expr, Stmt)>),
    /// `{ ... }`
    ScriptBlock(Rc<Block>),
    /// `[type]`
    Type(String),
    Cast(String, Box<Expr>),
    Member(Box<Expr>, String),
    /// `[type]::Member`
    Static(String, String),
    Method(Box<Expr>, String, Vec<Expr>),
    Index(Box<Expr>, Box<Expr>),
    /// `!`/`-not`, `-` (negation), `+`, `-join`, `-split`.
    Unary(&'static str, Box<Expr>),
    /// Operators by name: `+ - * / %`, `f`, `..`, and the dash operators in lower case
    /// (`eq`, `ilike`, `and`, ...).
    Binary(String, Box<Expr>, Box<Expr>),
    /// Not evaluated: the text is in `loc`.
    Opaque,
}

pub(super) fn parse(src: &str, toks: &[Token]) -> Result<Block, LocErr> {
    let mut p = Parser {
        src: Rc::from(src),
        toks,
        i: 0,
        depth: 0,
        no_comma: false,
    };
    let block = p.block()?;
    Ok(block)
}

struct Parser<'a> {
    src: Rc<str>,
    toks: &'a [Token],
    i: usize,
    depth: usize,
    /// Inside method arguments and `param` defaults, a comma separates, it does not build
    /// an array.
    no_comma: bool,
}

/// Comparison and other dash operators, by precedence level (higher binds tighter).
fn dash_operator(name: &str) -> Option<u8> {
    let n = name.to_ascii_lowercase();
    let base = n
        .strip_prefix('c')
        .or_else(|| n.strip_prefix('i'))
        .filter(|b| {
            matches!(
                *b,
                "eq" | "ne"
                    | "gt"
                    | "ge"
                    | "lt"
                    | "le"
                    | "like"
                    | "notlike"
                    | "match"
                    | "notmatch"
                    | "contains"
                    | "notcontains"
                    | "in"
                    | "notin"
                    | "replace"
                    | "split"
            )
        })
        .unwrap_or(&n);
    match base {
        "and" | "or" | "xor" => Some(1),
        "band" | "bor" | "bxor" | "shl" | "shr" => Some(2),
        "eq" | "ne" | "gt" | "ge" | "lt" | "le" | "like" | "notlike" | "match" | "notmatch"
        | "contains" | "notcontains" | "in" | "notin" | "replace" | "split" | "join" | "is"
        | "isnot" | "as" => Some(3),
        "f" => Some(6),
        _ => None,
    }
}

fn is_number_word(w: &str) -> Option<i64> {
    w.parse::<i64>().ok()
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.i + n).map(|t| &t.tok)
    }

    fn pos(&self) -> Pos {
        self.toks
            .get(self.i)
            .or_else(|| self.toks.last())
            .map_or(Pos { line: 1, col: 1 }, |t| t.pos)
    }

    fn offset(&self, i: usize) -> usize {
        self.toks
            .get(i)
            .map_or(self.src.len(), |t| t.start)
            .min(self.src.len())
    }

    /// The location of tokens `from..self.i`.
    fn loc(&self, from: usize) -> Loc {
        let start = self.offset(from);
        let end = if self.i > from {
            self.toks[self.i - 1].end
        } else {
            start
        };
        Loc {
            pos: self.toks.get(from).map_or_else(|| self.pos(), |t| t.pos),
            src: self.src.clone(),
            start,
            end: end.max(start),
        }
    }

    fn at_end_of_statement(&self) -> bool {
        matches!(
            self.peek(),
            None | Some(Tok::Newline | Tok::Semi | Tok::RParen | Tok::RBrace | Tok::RBracket)
        )
    }

    fn skip_newlines(&mut self) {
        while matches!(self.peek(), Some(Tok::Newline)) {
            self.i += 1;
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
                Tok::RParen | Tok::RBrace | Tok::RBracket => {
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                }
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

    /// Consumes a closing bracket if it is next.
    fn close(&mut self, tok: Tok) {
        if self.peek() == Some(&tok) {
            self.i += 1;
        }
    }

    /// The keyword at the cursor (a word), in lower case.
    fn keyword(&self) -> Option<String> {
        match self.peek() {
            Some(Tok::Word(w)) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }

    /// Statements up to a closing bracket (not consumed) or the end.
    fn block(&mut self) -> Result<Block, LocErr> {
        let mut stmts = Vec::new();
        loop {
            while matches!(self.peek(), Some(Tok::Newline | Tok::Semi)) {
                self.i += 1;
            }
            match self.peek() {
                None | Some(Tok::RParen | Tok::RBrace | Tok::RBracket) => break,
                _ => stmts.push(self.statement()?),
            }
        }
        Ok(Block { stmts })
    }

    /// `{ ... }` at the cursor (after newlines); an empty block when there is none.
    fn braced(&mut self) -> Result<Block, LocErr> {
        self.skip_newlines();
        if self.peek() != Some(&Tok::LBrace) {
            return Ok(Block::default());
        }
        self.i += 1;
        let b = self.block()?;
        self.close(Tok::RBrace);
        Ok(b)
    }

    /// `( statement )` at the cursor (after newlines).
    fn parenthesized(&mut self) -> Result<Stmt, LocErr> {
        self.skip_newlines();
        let start = self.i;
        if self.peek() != Some(&Tok::LParen) {
            return Ok(self.unsupported(start, "a missing `(...)` condition"));
        }
        self.i += 1;
        self.skip_newlines();
        let s = if self.peek() == Some(&Tok::RParen) {
            Stmt {
                kind: StmtKind::Pipeline {
                    input: None,
                    commands: Vec::new(),
                },
                loc: self.loc(self.i),
            }
        } else {
            self.statement()?
        };
        while !matches!(self.peek(), None | Some(Tok::RParen)) {
            self.skip_balanced();
        }
        self.close(Tok::RParen);
        Ok(s)
    }

    fn unsupported(&mut self, start: usize, what: &str) -> Stmt {
        Stmt {
            kind: StmtKind::Unsupported {
                what: what.to_string(),
            },
            loc: self.loc(start),
        }
    }

    fn statement(&mut self) -> Result<Stmt, LocErr> {
        let start = self.i;
        let stmt = match self.keyword().as_deref() {
            Some("function" | "filter") => self.function()?,
            Some("if") => self.if_statement()?,
            Some("foreach")
                if matches!(self.toks.get(self.i + 1).map(|t| &t.tok), Some(Tok::LParen)) =>
            {
                self.foreach()?
            }
            Some("for") if matches!(self.peek_at(1), Some(Tok::LParen)) => self.for_loop()?,
            Some("while") if matches!(self.peek_at(1), Some(Tok::LParen)) => {
                self.i += 1;
                let cond = self.parenthesized()?;
                let body = self.braced()?;
                Stmt {
                    kind: StmtKind::While {
                        cond: Box::new(cond),
                        body,
                        post: false,
                        until: false,
                    },
                    loc: self.loc(start),
                }
            }
            Some("do") if matches!(self.peek_at(1), Some(Tok::LBrace)) => {
                self.i += 1;
                let body = self.braced()?;
                self.skip_newlines();
                let until = match self.keyword().as_deref() {
                    Some("while") => false,
                    Some("until") => true,
                    _ => {
                        self.skip_statement();
                        return Ok(
                            self.unsupported(start, "a `do` loop without `while` or `until`")
                        );
                    }
                };
                self.i += 1;
                let cond = self.parenthesized()?;
                Stmt {
                    kind: StmtKind::While {
                        cond: Box::new(cond),
                        body,
                        post: true,
                        until,
                    },
                    loc: self.loc(start),
                }
            }
            Some("try") if matches!(self.peek_past_newlines_at(1), Some(Tok::LBrace)) => {
                self.try_statement()?
            }
            Some("switch") => self.switch()?,
            Some(k @ ("return" | "throw" | "exit")) => {
                let k = k.to_string();
                self.i += 1;
                let value = if self.at_end_of_statement() {
                    None
                } else {
                    Some(Box::new(self.statement()?))
                };
                let kind = match k.as_str() {
                    "return" => StmtKind::Return(value),
                    "throw" => StmtKind::Throw(value),
                    _ => StmtKind::Exit,
                };
                Stmt {
                    kind,
                    loc: self.loc(start),
                }
            }
            Some(k @ ("break" | "continue")) => {
                let brk = k == "break";
                self.i += 1;
                if matches!(self.peek(), Some(Tok::Word(_))) {
                    self.i += 1;
                }
                Stmt {
                    kind: if brk {
                        StmtKind::Break
                    } else {
                        StmtKind::Continue
                    },
                    loc: self.loc(start),
                }
            }
            Some("param") if matches!(self.peek_past_newlines_at(1), Some(Tok::LParen)) => {
                self.i += 1;
                self.skip_newlines();
                let params = self.param_list()?;
                Stmt {
                    kind: StmtKind::Params(params),
                    loc: self.loc(start),
                }
            }
            Some("begin" | "process" | "end")
                if matches!(self.peek_past_newlines_at(1), Some(Tok::LBrace)) =>
            {
                self.i += 1;
                let b = self.braced()?;
                Stmt {
                    kind: StmtKind::Block(b),
                    loc: self.loc(start),
                }
            }
            Some(
                k @ ("trap" | "class" | "enum" | "using" | "data" | "workflow" | "configuration"
                | "dynamicparam"),
            ) => {
                let what = format!("`{k}` statement");
                self.skip_statement();
                return Ok(self.unsupported(start, &what));
            }
            _ => self.assignment_or_pipeline()?,
        };
        if !self.at_end_of_statement() {
            self.skip_statement();
            return Ok(self.unsupported(start, "statement"));
        }
        Ok(stmt)
    }

    fn peek_past_newlines_at(&self, n: usize) -> Option<&Tok> {
        let mut k = n;
        while matches!(self.peek_at(k), Some(Tok::Newline)) {
            k += 1;
        }
        self.peek_at(k)
    }

    fn function(&mut self) -> Result<Stmt, LocErr> {
        let start = self.i;
        self.i += 1;
        let name = match self.peek() {
            Some(Tok::Word(w)) => {
                let n = w.clone();
                self.i += 1;
                super::lex::strip_scope(&n).to_string()
            }
            _ => {
                self.skip_statement();
                return Ok(self.unsupported(start, "function without a name"));
            }
        };
        let mut params = Vec::new();
        if self.peek() == Some(&Tok::LParen) {
            params = self.param_list()?;
        }
        let mut body = self.braced()?;
        // A `param(...)` block at the start of the body, possibly after attributes such as
        // `[CmdletBinding()]`.
        if let Some(at) = body.stmts.iter().position(|s| {
            !matches!(
                &s.kind,
                StmtKind::Pipeline { input: Some(Expr { kind: ExprKind::Type(_), .. }), commands } if commands.is_empty()
            )
        }) && let StmtKind::Params(p) = &body.stmts[at].kind
        {
            params.extend(p.iter().cloned());
            body.stmts.remove(at);
        }
        let pos = self.loc(start).pos;
        Ok(Stmt {
            kind: StmtKind::Function(Rc::new(Function {
                name,
                params,
                body,
                pos,
            })),
            loc: self.loc(start),
        })
    }

    /// `( [attr][type]$name = default, ... )` at the cursor.
    fn param_list(&mut self) -> Result<Vec<ParamDecl>, LocErr> {
        let mut out = Vec::new();
        if self.peek() != Some(&Tok::LParen) {
            return Ok(out);
        }
        self.i += 1;
        loop {
            while matches!(self.peek(), Some(Tok::Newline | Tok::Comma | Tok::Semi)) {
                self.i += 1;
            }
            let mut ty = None;
            while self.peek() == Some(&Tok::LBracket) {
                let from = self.i;
                self.skip_balanced();
                let text = self.loc(from).text().to_string();
                let inner = text
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .trim()
                    .to_ascii_lowercase();
                if !inner.contains('(') {
                    ty = Some(inner);
                }
                self.skip_newlines();
            }
            match self.peek() {
                Some(Tok::Var { name, .. }) => {
                    let name = name.clone();
                    self.i += 1;
                    let mut default = None;
                    if self.peek() == Some(&Tok::Assign) {
                        self.i += 1;
                        self.skip_newlines();
                        let saved = std::mem::replace(&mut self.no_comma, true);
                        default = Some(self.expression()?);
                        self.no_comma = saved;
                    }
                    out.push(ParamDecl { name, ty, default });
                }
                None | Some(Tok::RParen) => break,
                _ => self.skip_balanced(),
            }
        }
        self.close(Tok::RParen);
        Ok(out)
    }

    fn if_statement(&mut self) -> Result<Stmt, LocErr> {
        let start = self.i;
        self.i += 1;
        let mut clauses = Vec::new();
        let cond = self.parenthesized()?;
        let body = self.braced()?;
        clauses.push((cond, body));
        let mut otherwise = None;
        loop {
            let save = self.i;
            self.skip_newlines();
            match self.keyword().as_deref() {
                Some("elseif") => {
                    self.i += 1;
                    let cond = self.parenthesized()?;
                    let body = self.braced()?;
                    clauses.push((cond, body));
                }
                Some("else") => {
                    self.i += 1;
                    otherwise = Some(self.braced()?);
                    break;
                }
                _ => {
                    self.i = save;
                    break;
                }
            }
        }
        Ok(Stmt {
            kind: StmtKind::If { clauses, otherwise },
            loc: self.loc(start),
        })
    }

    fn foreach(&mut self) -> Result<Stmt, LocErr> {
        let start = self.i;
        self.i += 2;
        self.skip_newlines();
        let var = match self.peek() {
            Some(Tok::Var { name, .. }) => name.clone(),
            _ => {
                self.skip_balanced_to_paren();
                self.braced()?;
                return Ok(self.unsupported(start, "`foreach` statement"));
            }
        };
        self.i += 1;
        self.skip_newlines();
        if self.keyword().is_none_or(|k| k != "in") {
            self.skip_balanced_to_paren();
            self.braced()?;
            return Ok(self.unsupported(start, "`foreach` statement"));
        }
        self.i += 1;
        self.skip_newlines();
        let collection = self.statement()?;
        self.skip_balanced_to_paren();
        let body = self.braced()?;
        Ok(Stmt {
            kind: StmtKind::Foreach {
                var,
                collection: Box::new(collection),
                body,
            },
            loc: self.loc(start),
        })
    }

    /// Skips to and past the `)` closing the current parenthesis.
    fn skip_balanced_to_paren(&mut self) {
        while !matches!(self.peek(), None | Some(Tok::RParen)) {
            self.skip_balanced();
        }
        self.close(Tok::RParen);
    }

    fn for_loop(&mut self) -> Result<Stmt, LocErr> {
        let start = self.i;
        self.i += 2;
        let mut parts: Vec<Option<Box<Stmt>>> = Vec::new();
        for _ in 0..3 {
            self.skip_newlines();
            if matches!(self.peek(), Some(Tok::Semi | Tok::RParen) | None) {
                parts.push(None);
            } else {
                parts.push(Some(Box::new(self.statement()?)));
            }
            self.skip_newlines();
            if self.peek() == Some(&Tok::Semi) {
                self.i += 1;
            }
        }
        self.skip_balanced_to_paren();
        let body = self.braced()?;
        let mut parts = parts.into_iter();
        Ok(Stmt {
            kind: StmtKind::For {
                init: parts.next().flatten(),
                cond: parts.next().flatten(),
                step: parts.next().flatten(),
                body,
            },
            loc: self.loc(start),
        })
    }

    fn try_statement(&mut self) -> Result<Stmt, LocErr> {
        let start = self.i;
        self.i += 1;
        let body = self.braced()?;
        let mut catches = Vec::new();
        let mut finally = None;
        loop {
            let save = self.i;
            self.skip_newlines();
            match self.keyword().as_deref() {
                Some("catch") => {
                    self.i += 1;
                    // Exception types: `catch [A], [B] {`.
                    loop {
                        self.skip_newlines();
                        match self.peek() {
                            Some(Tok::LBracket) => self.skip_balanced(),
                            Some(Tok::Comma) => self.i += 1,
                            _ => break,
                        }
                    }
                    catches.push(self.braced()?);
                }
                Some("finally") => {
                    self.i += 1;
                    finally = Some(self.braced()?);
                    break;
                }
                _ => {
                    self.i = save;
                    break;
                }
            }
        }
        Ok(Stmt {
            kind: StmtKind::Try {
                body,
                catches,
                finally,
            },
            loc: self.loc(start),
        })
    }

    fn switch(&mut self) -> Result<Stmt, LocErr> {
        let start = self.i;
        self.i += 1;
        let mut wildcard = false;
        while let Some(Tok::Param { name, .. }) = self.peek() {
            match name.to_ascii_lowercase().as_str() {
                "wildcard" => wildcard = true,
                "exact" => {}
                _ => {
                    self.skip_statement();
                    self.braced()?;
                    return Ok(self.unsupported(start, "`switch` statement with options"));
                }
            }
            self.i += 1;
        }
        let subject = self.parenthesized()?;
        self.skip_newlines();
        let mut clauses = Vec::new();
        if self.peek() == Some(&Tok::LBrace) {
            self.i += 1;
            loop {
                while matches!(self.peek(), Some(Tok::Newline | Tok::Semi)) {
                    self.i += 1;
                }
                match self.peek() {
                    None | Some(Tok::RBrace) => break,
                    Some(Tok::Word(w)) if w.eq_ignore_ascii_case("default") => {
                        self.i += 1;
                        clauses.push((None, self.braced()?));
                    }
                    _ => {
                        let label = self.primary()?;
                        clauses.push((Some(label), self.braced()?));
                    }
                }
            }
            self.close(Tok::RBrace);
        }
        Ok(Stmt {
            kind: StmtKind::Switch {
                subject: Box::new(subject),
                clauses,
                wildcard,
            },
            loc: self.loc(start),
        })
    }

    /// An assignment (`=`, `+=`, ...), a step (`++`, `--`), or a pipeline.
    fn assignment_or_pipeline(&mut self) -> Result<Stmt, LocErr> {
        let start = self.i;
        if let Some(Tok::Word(w)) = self.peek()
            && is_number_word(w).is_none()
            && !w.starts_with("..")
        {
            return self.pipeline(None, start);
        }
        if matches!(self.peek(), Some(Tok::Op(o)) if o == "&" || o == "%")
            || matches!(self.peek(), Some(Tok::Word(w)) if w == ".")
        {
            return self.pipeline(None, start);
        }
        // `++$x`, `--$x`
        if let Some(delta) = self.prefix_step() {
            let target = self.postfix_expr()?;
            return Ok(Stmt {
                kind: StmtKind::Step { target, delta },
                loc: self.loc(start),
            });
        }
        let e = self.expression()?;
        if let Some(op) = self.assign_op() {
            self.skip_newlines();
            let value = if self.at_end_of_statement() {
                self.unsupported(self.i, "an assignment without a value")
            } else {
                self.statement_value()?
            };
            return Ok(Stmt {
                kind: StmtKind::Assign {
                    target: e,
                    op,
                    value: Box::new(value),
                },
                loc: self.loc(start),
            });
        }
        if let Some(delta) = self.postfix_step() {
            return Ok(Stmt {
                kind: StmtKind::Step { target: e, delta },
                loc: self.loc(start),
            });
        }
        self.redirections();
        if self.peek() == Some(&Tok::Pipe) {
            return self.pipeline(Some(e), start);
        }
        Ok(Stmt {
            kind: StmtKind::Pipeline {
                input: Some(e),
                commands: Vec::new(),
            },
            loc: self.loc(start),
        })
    }

    /// The value of an assignment: a statement (`if`, `switch`, ... yield their output) or a
    /// pipeline.
    fn statement_value(&mut self) -> Result<Stmt, LocErr> {
        let start = self.i;
        let s = self.statement_inner()?;
        if !self.at_end_of_statement() {
            self.skip_statement();
            return Ok(self.unsupported(start, "statement"));
        }
        Ok(s)
    }

    fn statement_inner(&mut self) -> Result<Stmt, LocErr> {
        match self.keyword().as_deref() {
            Some("if" | "switch" | "foreach" | "for" | "while" | "do" | "try") => {
                // `statement` checks the end itself; re-check is harmless.
                self.statement()
            }
            _ => self.assignment_or_pipeline(),
        }
    }

    fn prefix_step(&mut self) -> Option<i64> {
        match (self.peek(), self.peek_at(1)) {
            (Some(Tok::Op(a)), Some(Tok::Op(b))) if a == "+" && b == "+" => {
                self.i += 2;
                Some(1)
            }
            (Some(Tok::Word(w)), _) if w == "--" => {
                self.i += 1;
                Some(-1)
            }
            _ => None,
        }
    }

    fn postfix_step(&mut self) -> Option<i64> {
        match (self.peek(), self.peek_at(1)) {
            (Some(Tok::Op(a)), Some(Tok::Op(b))) if a == "+" && b == "+" => {
                self.i += 2;
                Some(1)
            }
            (Some(Tok::Word(w)), _) if w == "--" => {
                self.i += 1;
                Some(-1)
            }
            _ => None,
        }
    }

    fn assign_op(&mut self) -> Option<&'static str> {
        let (op, n) = match (self.peek(), self.peek_at(1)) {
            (Some(Tok::Assign), _) => ("=", 1),
            (Some(Tok::Op(o)), Some(Tok::Assign)) if o == "+" => ("+=", 2),
            (Some(Tok::Op(o)), Some(Tok::Assign)) if o == "*" => ("*=", 2),
            (Some(Tok::Op(o)), Some(Tok::Assign)) if o == "%" => ("%=", 2),
            (Some(Tok::Word(w)), _) if w == "-=" => ("-=", 1),
            (Some(Tok::Word(w)), _) if w == "/=" => ("/=", 1),
            _ => return None,
        };
        self.i += n;
        Some(op)
    }

    /// Redirections (`> $null`, `2>&1`, `*> file`) are skipped: output is not configuration.
    fn redirections(&mut self) -> bool {
        let mut any = false;
        loop {
            let joined =
                |p: &Self| p.toks.get(p.i + 1).map(|t| t.start) == p.toks.get(p.i).map(|t| t.end);
            let n = match (self.peek(), self.peek_at(1)) {
                (Some(Tok::Op(o)), _) if o == ">" => 1,
                (Some(Tok::Num(_)), Some(Tok::Op(o))) if o == ">" && joined(self) => 2,
                (Some(Tok::Op(s)), Some(Tok::Op(o))) if s == "*" && o == ">" && joined(self) => 2,
                _ => return any,
            };
            self.i += n;
            if matches!(self.peek(), Some(Tok::Op(o)) if o == ">") {
                self.i += 1;
            }
            match self.peek() {
                Some(Tok::Op(o)) if o == "&" => {
                    self.i += 1;
                    if matches!(self.peek(), Some(Tok::Num(_))) {
                        self.i += 1;
                    }
                }
                Some(Tok::Var { .. } | Tok::Word(_) | Tok::Str { .. } | Tok::Num(_)) => self.i += 1,
                _ => {}
            }
            any = true;
        }
    }

    fn pipeline(&mut self, input: Option<Expr>, start: usize) -> Result<Stmt, LocErr> {
        let mut commands = Vec::new();
        if input.is_none() {
            commands.push(self.command());
        }
        loop {
            self.redirections();
            if self.peek() != Some(&Tok::Pipe) {
                break;
            }
            self.i += 1;
            self.skip_newlines();
            match self.peek() {
                Some(Tok::Word(_)) => commands.push(self.command()),
                Some(Tok::Op(o)) if o == "%" || o == "&" => commands.push(self.command()),
                _ => {
                    self.skip_statement();
                    return Ok(self.unsupported(start, "pipeline"));
                }
            }
        }
        Ok(Stmt {
            kind: StmtKind::Pipeline { input, commands },
            loc: self.loc(start),
        })
    }

    /// A command: its name (the current token) and its parameters and arguments.
    fn command(&mut self) -> Command {
        let start = self.i;
        let name = match self.peek() {
            Some(Tok::Word(w)) => w.clone(),
            Some(Tok::Op(o)) => o.clone(),
            _ => String::new(),
        };
        self.i += 1;
        let mut elems = Vec::new();
        loop {
            if self.redirections() {
                continue;
            }
            match self.peek() {
                None
                | Some(
                    Tok::Newline
                    | Tok::Semi
                    | Tok::Pipe
                    | Tok::RParen
                    | Tok::RBrace
                    | Tok::RBracket,
                ) => break,
                Some(Tok::Param { name, colon }) => {
                    let (name, colon, pos) = (name.clone(), *colon, self.toks[self.i].pos);
                    self.i += 1;
                    let value = if colon && !self.at_end_of_statement() {
                        Some(self.argument())
                    } else {
                        None
                    };
                    elems.push(Elem::Param { name, pos, value });
                }
                Some(Tok::Splat(n)) => {
                    let (n, pos) = (n.clone(), self.toks[self.i].pos);
                    self.i += 1;
                    elems.push(Elem::Splat(n, pos));
                }
                Some(_) => elems.push(Elem::Arg(self.argument())),
            }
        }
        Command {
            name,
            elems,
            loc: self.loc(start),
        }
    }

    /// An argument in argument mode: a value or a comma list of values.
    fn argument(&mut self) -> Expr {
        let start = self.i;
        let first = self.arg_primary();
        if self.peek() != Some(&Tok::Comma) {
            return first;
        }
        let mut items = vec![first];
        while self.peek() == Some(&Tok::Comma) {
            self.i += 1;
            self.skip_newlines();
            if self.at_end_of_statement() || self.peek() == Some(&Tok::Pipe) {
                break;
            }
            items.push(self.arg_primary());
        }
        Expr {
            kind: ExprKind::List(items),
            loc: self.loc(start),
        }
    }

    /// One argument-mode value; adjacent pieces (`Rule$i`, `"a"$b`) concatenate.
    fn arg_primary(&mut self) -> Expr {
        let start = self.i;
        let first = match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.i += 1;
                let kind = match is_number_word(&w) {
                    Some(n) => ExprKind::Num(n),
                    None => ExprKind::Word(w),
                };
                Expr {
                    kind,
                    loc: self.loc(start),
                }
            }
            Some(Tok::Op(o)) if o != "!" => {
                let o = o.clone();
                self.i += 1;
                Expr {
                    kind: ExprKind::Word(o),
                    loc: self.loc(start),
                }
            }
            _ => match self.postfix_expr() {
                Ok(e) => e,
                Err(_) => {
                    self.skip_balanced();
                    Expr {
                        kind: ExprKind::Opaque,
                        loc: self.loc(start),
                    }
                }
            },
        };
        if !(self.adjacent()
            && matches!(
                self.peek(),
                Some(Tok::Word(_) | Tok::Str { .. } | Tok::Var { .. } | Tok::Num(_))
            ))
        {
            return first;
        }
        let mut parts = Vec::new();
        let add = |e: &Expr, parts: &mut Vec<Part>| match &e.kind {
            ExprKind::Word(w) | ExprKind::Str(w) => parts.push(Part::Lit(w.clone())),
            ExprKind::Num(n) => parts.push(Part::Lit(n.to_string())),
            ExprKind::Interp(p) => parts.extend(p.iter().cloned()),
            ExprKind::Var(v) => parts.push(Part::Var(v.clone())),
            _ => parts.push(Part::Sub(e.loc.text().to_string())),
        };
        add(&first, &mut parts);
        while self.adjacent()
            && matches!(
                self.peek(),
                Some(Tok::Word(_) | Tok::Str { .. } | Tok::Var { .. } | Tok::Num(_))
            )
        {
            let from = self.i;
            let e = match self.peek() {
                Some(Tok::Word(w)) | Some(Tok::Num(w)) => {
                    let w = w.clone();
                    self.i += 1;
                    Expr {
                        kind: ExprKind::Word(w),
                        loc: self.loc(from),
                    }
                }
                _ => match self.postfix_expr() {
                    Ok(e) => e,
                    Err(_) => break,
                },
            };
            add(&e, &mut parts);
        }
        Expr {
            kind: ExprKind::Interp(parts),
            loc: self.loc(start),
        }
    }

    /// An expression with binary operators.
    fn expression(&mut self) -> Result<Expr, LocErr> {
        self.binary(1)
    }

    fn binary_op(&self) -> Option<(u8, String)> {
        match self.peek()? {
            Tok::Param { name, colon: false } => {
                dash_operator(name).map(|p| (p, name.to_ascii_lowercase()))
            }
            Tok::Op(o)
                if o == "+" && !matches!(self.peek_at(1), Some(Tok::Assign | Tok::Op(_))) =>
            {
                Some((4, "+".into()))
            }
            Tok::Word(w) if w == "-" => Some((4, "-".into())),
            Tok::Op(o) if o == "*" && self.peek_at(1) != Some(&Tok::Assign) => {
                Some((5, "*".into()))
            }
            Tok::Op(o) if o == "%" && self.peek_at(1) != Some(&Tok::Assign) => {
                Some((5, "%".into()))
            }
            Tok::Word(w) if w == "/" => Some((5, "/".into())),
            Tok::Word(w) if w == ".." => Some((7, "..".into())),
            _ => None,
        }
    }

    fn binary(&mut self, min: u8) -> Result<Expr, LocErr> {
        let start = self.i;
        let mut lhs = self.comma_list()?;
        while let Some((prec, op)) = self.binary_op() {
            if prec < min {
                break;
            }
            self.i += 1;
            self.skip_newlines();
            let rhs = self.binary(prec + 1)?;
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                loc: self.loc(start),
            };
        }
        Ok(lhs)
    }

    fn comma_list(&mut self) -> Result<Expr, LocErr> {
        let start = self.i;
        let first = self.unary()?;
        if self.no_comma || self.peek() != Some(&Tok::Comma) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.peek() == Some(&Tok::Comma) {
            self.i += 1;
            self.skip_newlines();
            if self.at_end_of_statement() {
                break;
            }
            items.push(self.unary()?);
        }
        Ok(Expr {
            kind: ExprKind::List(items),
            loc: self.loc(start),
        })
    }

    fn unary(&mut self) -> Result<Expr, LocErr> {
        let start = self.i;
        let op: Option<&'static str> = match self.peek() {
            Some(Tok::Op(o)) if o == "!" => Some("not"),
            Some(Tok::Param { name, colon: false }) => match name.to_ascii_lowercase().as_str() {
                "not" => Some("not"),
                "join" => Some("join"),
                "split" => Some("split"),
                "bnot" => Some("bnot"),
                _ => None,
            },
            Some(Tok::Word(w)) if w == "-" => Some("neg"),
            Some(Tok::Op(o)) if o == "+" => Some("plus"),
            _ => None,
        };
        let Some(op) = op else {
            return self.postfix_expr();
        };
        self.depth += 1;
        if self.depth > MAX_UNARY {
            return Err(LocErr {
                pos: self.pos(),
                msg: format!("E0215: operators nested too deeply (at most {MAX_UNARY} levels)"),
            });
        }
        self.i += 1;
        self.skip_newlines();
        let operand = self.unary();
        self.depth -= 1;
        Ok(Expr {
            kind: ExprKind::Unary(op, Box::new(operand?)),
            loc: self.loc(start),
        })
    }

    /// A primary with its member accesses, method calls and indexes.
    fn postfix_expr(&mut self) -> Result<Expr, LocErr> {
        let start = self.i;
        let mut e = self.primary()?;
        loop {
            if !self.adjacent() {
                break;
            }
            match self.peek() {
                Some(Tok::LBracket) => {
                    self.i += 1;
                    self.skip_newlines();
                    let saved = std::mem::replace(&mut self.no_comma, false);
                    let index = self.expression();
                    self.no_comma = saved;
                    let index = index?;
                    while !matches!(self.peek(), None | Some(Tok::RBracket)) {
                        self.skip_balanced();
                    }
                    self.close(Tok::RBracket);
                    e = Expr {
                        kind: ExprKind::Index(Box::new(e), Box::new(index)),
                        loc: self.loc(start),
                    };
                }
                Some(Tok::Word(w)) if w.starts_with("::") || w.starts_with('.') => {
                    let w = w.clone();
                    self.i += 1;
                    let is_static = w.starts_with("::");
                    let names: Vec<String> = w
                        .trim_start_matches(':')
                        .split('.')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    if names.is_empty() {
                        break;
                    }
                    let last = names.len() - 1;
                    for (k, m) in names.into_iter().enumerate() {
                        e = self.member(e, m, k == last, is_static && k == 0, start)?;
                    }
                }
                _ => break,
            }
        }
        Ok(e)
    }

    /// `e.name`, or `e.name(args)` when `(` follows directly.
    fn member(
        &mut self,
        e: Expr,
        name: String,
        last: bool,
        is_static: bool,
        start: usize,
    ) -> Result<Expr, LocErr> {
        if last && self.adjacent() && self.peek() == Some(&Tok::LParen) {
            self.i += 1;
            let mut args = Vec::new();
            let saved = std::mem::replace(&mut self.no_comma, true);
            loop {
                self.skip_newlines();
                match self.peek() {
                    None | Some(Tok::RParen) => break,
                    Some(Tok::Comma) => self.i += 1,
                    _ => match self.expression() {
                        Ok(a) => args.push(a),
                        Err(err) => {
                            self.no_comma = saved;
                            return Err(err);
                        }
                    },
                }
                if !matches!(
                    self.peek(),
                    None | Some(Tok::RParen | Tok::Comma | Tok::Newline)
                ) {
                    self.skip_balanced();
                }
            }
            self.no_comma = saved;
            self.close(Tok::RParen);
            return Ok(Expr {
                kind: ExprKind::Method(Box::new(e), name, args),
                loc: self.loc(start),
            });
        }
        let kind = match (&e.kind, is_static) {
            (ExprKind::Type(t), true) => ExprKind::Static(t.clone(), name),
            _ => ExprKind::Member(Box::new(e), name),
        };
        Ok(Expr {
            kind,
            loc: self.loc(start),
        })
    }

    fn primary(&mut self) -> Result<Expr, LocErr> {
        let start = self.i;
        let Some(t) = self.toks.get(self.i) else {
            return Ok(Expr {
                kind: ExprKind::Opaque,
                loc: self.loc(start),
            });
        };
        let kind = match &t.tok {
            Tok::Str { text, parts } => {
                self.i += 1;
                if parts.is_empty() {
                    ExprKind::Str(text.clone())
                } else {
                    ExprKind::Interp(parts.clone())
                }
            }
            Tok::Num(n) => {
                self.i += 1;
                match is_number_word(n) {
                    Some(n) => ExprKind::Num(n),
                    None => ExprKind::Word(n.clone()),
                }
            }
            Tok::Word(w) => {
                self.i += 1;
                match is_number_word(w) {
                    Some(n) => ExprKind::Num(n),
                    None => match w.split_once("..") {
                        Some((a, b))
                            if is_number_word(a).is_some() && is_number_word(b).is_some() =>
                        {
                            let num = |n: i64| Expr {
                                kind: ExprKind::Num(n),
                                loc: self.loc(start),
                            };
                            ExprKind::Binary(
                                "..".into(),
                                Box::new(num(is_number_word(a).unwrap_or(0))),
                                Box::new(num(is_number_word(b).unwrap_or(0))),
                            )
                        }
                        _ => ExprKind::Word(w.clone()),
                    },
                }
            }
            Tok::Var {
                name,
                index,
                members,
            } => {
                let (name, index, members) = (name.clone(), *index, members.clone());
                self.i += 1;
                let mut e = Expr {
                    kind: ExprKind::Var(name),
                    loc: self.loc(start),
                };
                if let Some(n) = index {
                    e = Expr {
                        kind: ExprKind::Index(
                            Box::new(e),
                            Box::new(Expr {
                                kind: ExprKind::Num(n as i64),
                                loc: self.loc(start),
                            }),
                        ),
                        loc: self.loc(start),
                    };
                }
                let last = members.len().saturating_sub(1);
                for (k, m) in members.into_iter().enumerate() {
                    e = self.member(e, m, k == last, false, start)?;
                }
                return Ok(e);
            }
            Tok::Splat(n) => {
                self.i += 1;
                ExprKind::Var(n.clone())
            }
            Tok::ArrayOpen => {
                self.i += 1;
                let b = self.block()?;
                self.close(Tok::RParen);
                ExprKind::ArraySub(b)
            }
            Tok::SubOpen => {
                self.i += 1;
                let b = self.block()?;
                self.close(Tok::RParen);
                ExprKind::Sub(b)
            }
            Tok::LParen => {
                self.i += 1;
                let saved = std::mem::replace(&mut self.no_comma, false);
                let b = self.block();
                self.no_comma = saved;
                let b = b?;
                self.close(Tok::RParen);
                if b.stmts.is_empty() {
                    ExprKind::List(Vec::new())
                } else {
                    ExprKind::Sub(b)
                }
            }
            Tok::HashOpen => {
                self.i += 1;
                ExprKind::Hash(self.hash_entries()?)
            }
            Tok::LBrace => {
                self.i += 1;
                let b = self.block()?;
                self.close(Tok::RBrace);
                ExprKind::ScriptBlock(Rc::new(b))
            }
            Tok::LBracket => {
                self.skip_balanced();
                let text = self.loc(start).text().to_string();
                let ty = text
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .trim()
                    .to_string();
                let casts = matches!(
                    self.peek(),
                    Some(
                        Tok::Var { .. }
                            | Tok::Str { .. }
                            | Tok::Num(_)
                            | Tok::LParen
                            | Tok::SubOpen
                            | Tok::ArrayOpen
                            | Tok::HashOpen
                            | Tok::LBracket
                    )
                ) || matches!(self.peek(), Some(Tok::Word(w)) if w == "-" || is_number_word(w).is_some());
                if casts && !(self.adjacent() && matches!(self.peek(), Some(Tok::LBracket))) {
                    let operand = self.unary()?;
                    ExprKind::Cast(ty, Box::new(operand))
                } else {
                    ExprKind::Type(ty)
                }
            }
            _ => {
                self.skip_balanced();
                ExprKind::Opaque
            }
        };
        Ok(Expr {
            kind,
            loc: self.loc(start),
        })
    }

    /// The entries of `@{ ... }` (after `@{`), up to and including `}`.
    fn hash_entries(&mut self) -> Result<Vec<(Expr, Stmt)>, LocErr> {
        let mut out = Vec::new();
        loop {
            while matches!(self.peek(), Some(Tok::Newline | Tok::Semi)) {
                self.i += 1;
            }
            match self.peek() {
                None => break,
                Some(Tok::RBrace) => {
                    self.i += 1;
                    break;
                }
                _ => {}
            }
            let key = self.primary()?;
            if self.peek() != Some(&Tok::Assign) {
                // Not `key = value`: skip to the next entry.
                while !matches!(
                    self.peek(),
                    None | Some(Tok::Newline | Tok::Semi | Tok::RBrace)
                ) {
                    self.skip_balanced();
                }
                continue;
            }
            self.i += 1;
            self.skip_newlines();
            let value = self.statement_value()?;
            out.push((key, value));
        }
        Ok(out)
    }
}

impl Block {
    /// Calls `f` on every command anywhere in the block: nested blocks, function bodies,
    /// script blocks, subexpressions and arguments.
    pub fn visit_commands(&self, f: &mut dyn FnMut(&Command)) {
        for s in &self.stmts {
            s.visit_commands(f);
        }
    }
}

impl Stmt {
    fn visit_commands(&self, f: &mut dyn FnMut(&Command)) {
        match &self.kind {
            StmtKind::Pipeline { input, commands } => {
                if let Some(e) = input {
                    e.visit_commands(f);
                }
                for c in commands {
                    f(c);
                    for e in &c.elems {
                        match e {
                            Elem::Param { value: Some(v), .. } | Elem::Arg(v) => {
                                v.visit_commands(f)
                            }
                            _ => {}
                        }
                    }
                }
            }
            StmtKind::Assign { target, value, .. } => {
                target.visit_commands(f);
                value.visit_commands(f);
            }
            StmtKind::Step { target, .. } => target.visit_commands(f),
            StmtKind::If { clauses, otherwise } => {
                for (c, b) in clauses {
                    c.visit_commands(f);
                    b.visit_commands(f);
                }
                if let Some(b) = otherwise {
                    b.visit_commands(f);
                }
            }
            StmtKind::Foreach {
                collection, body, ..
            } => {
                collection.visit_commands(f);
                body.visit_commands(f);
            }
            StmtKind::For {
                init,
                cond,
                step,
                body,
            } => {
                for s in [init, cond, step].into_iter().flatten() {
                    s.visit_commands(f);
                }
                body.visit_commands(f);
            }
            StmtKind::While { cond, body, .. } => {
                cond.visit_commands(f);
                body.visit_commands(f);
            }
            StmtKind::Try {
                body,
                catches,
                finally,
            } => {
                body.visit_commands(f);
                for c in catches {
                    c.visit_commands(f);
                }
                if let Some(b) = finally {
                    b.visit_commands(f);
                }
            }
            StmtKind::Switch {
                subject, clauses, ..
            } => {
                subject.visit_commands(f);
                for (l, b) in clauses {
                    if let Some(l) = l {
                        l.visit_commands(f);
                    }
                    b.visit_commands(f);
                }
            }
            StmtKind::Function(func) => func.body.visit_commands(f),
            StmtKind::Params(ps) => {
                for p in ps {
                    if let Some(d) = &p.default {
                        d.visit_commands(f);
                    }
                }
            }
            StmtKind::Block(b) => b.visit_commands(f),
            StmtKind::Return(Some(s)) | StmtKind::Throw(Some(s)) => s.visit_commands(f),
            _ => {}
        }
    }
}

impl Expr {
    fn visit_commands(&self, f: &mut dyn FnMut(&Command)) {
        match &self.kind {
            ExprKind::List(xs) => xs.iter().for_each(|x| x.visit_commands(f)),
            ExprKind::ArraySub(b) | ExprKind::Sub(b) => b.visit_commands(f),
            ExprKind::ScriptBlock(b) => b.visit_commands(f),
            ExprKind::Hash(entries) => {
                for (k, v) in entries {
                    k.visit_commands(f);
                    v.visit_commands(f);
                }
            }
            ExprKind::Cast(_, x) | ExprKind::Member(x, _) | ExprKind::Unary(_, x) => {
                x.visit_commands(f)
            }
            ExprKind::Method(x, _, args) => {
                x.visit_commands(f);
                args.iter().for_each(|a| a.visit_commands(f));
            }
            ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => {
                a.visit_commands(f);
                b.visit_commands(f);
            }
            _ => {}
        }
    }
}
