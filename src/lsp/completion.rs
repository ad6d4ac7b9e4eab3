//! Completion: what can be written at the cursor.
//!
//! Consumes: a document's text (lexed up to the cursor, so a half-written line is fine), the
//! analysis's schema and the `stdlib/` declarations. Produces: completion items for the
//! context — in an expression, the functions (with argument snippets), constants, enum
//! constants and the attributes of the rule's source object type; after `[`, those attributes;
//! after `%`, the parameters in scope; after `flow`, the attributes of the rule's target
//! object type; in a scope block, source attributes and then the scope operators; in a join
//! block, source and target attributes; after `link`, `source`, `target` and `connector`, the
//! link types, object types and connectors; elsewhere the keywords of the block.

use super::hover;
use super::index::Space;
use super::workspace::Analysis;
use crate::sema::rules::{SCOPE_OPERATORS, ScopeOp};
use crate::sema::schema::{ObjectDef, Schema};
use crate::sema::typeck::INTRINSIC_PARAMS;
use crate::source::FileId;
use crate::stdlib::Stdlib;
use crate::syntax::lexer;
use crate::syntax::token::{Tok, keyword_text};
use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionTextEdit, Documentation, InsertTextFormat,
    MarkupContent, MarkupKind, TextEdit,
};
use std::collections::BTreeMap;

/// What the client can take.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub snippets: bool,
}

/// The kind of block the cursor is in.
#[derive(Debug, Clone, PartialEq)]
enum Block {
    Rule(usize),
    Scope,
    Join,
    Metaverse,
    ConnectorDecl,
    Object,
    Test,
    /// The attribute block of a test step: the object type it sets or expects.
    TestAttrs(Option<(Space, String)>),
    Other,
}

/// A rule's settings, read from its tokens.
#[derive(Debug, Default)]
struct RuleHead {
    inbound: bool,
    connector: Option<String>,
    source: Option<String>,
    target: Option<String>,
}

const NAME_CHARS: &[u8] = b"_-.";

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || NAME_CHARS.contains(&b)
}

/// A token that can stand for a name (keywords are names where a name is expected).
fn name_of(t: &Tok) -> Option<String> {
    match t {
        Tok::Ident(n) => Some(n.clone()),
        Tok::Str(_) | Tok::Num(_) | Tok::HexNum(_) | Tok::Attr(_) | Tok::Param(_) => None,
        Tok::Var(_) | Tok::Comment => None,
        other => {
            let k = keyword_text(other);
            k.chars()
                .next()
                .filter(|c| c.is_ascii_alphabetic())
                .map(|_| k.to_string())
        }
    }
}

pub fn completion(a: &Analysis, file: FileId, offset: usize, opts: Options) -> Vec<CompletionItem> {
    let text = a.text(file);
    let offset = offset.min(text.len());
    let bytes = text.as_bytes();
    let mut start = offset;
    while start > 0 && is_name_byte(bytes[start - 1]) {
        start -= 1;
    }
    let replace = a.range(file, &(start..offset));
    let next = bytes.get(offset).copied();
    let lexed = lexer::tokenize(text);
    // Nothing to complete in a comment.
    if lexed
        .comments
        .iter()
        .any(|c| c.span.start < offset && offset <= c.span.end)
    {
        return Vec::new();
    }
    let toks: Vec<(usize, Tok, usize)> = lexed.tokens;
    let before = toks.iter().take_while(|(s, _, _)| *s < start).count();
    // A string being written (`connector "con`): the lexer's string token holds the cursor.
    let in_string = toks[..before].last().is_some_and(|(s, t, e)| {
        matches!(t, Tok::Str(_))
            && *s < offset
            && (offset < *e || *e - *s < 2 || !text[*s..*e].ends_with('"'))
    });
    let ctx = Context::read(&toks[..before], &toks);
    let schema = &a.checked.bundle.schema;
    let mut out = Items {
        replace,
        opts,
        items: Vec::new(),
    };
    let prev = start.checked_sub(1).map(|i| bytes[i]);
    if in_string {
        let (s, _, _) = &toks[before - 1];
        let before_string = toks[..before - 1].last().map(|(_, t, _)| t);
        if matches!(before_string, Some(Tok::KwConnector)) {
            let range = a.range(file, &(s + 1..offset));
            for c in schema.connectors.keys() {
                out.items.push(item(
                    c,
                    CompletionItemKind::MODULE,
                    "connector",
                    c.clone(),
                    range,
                ));
            }
        }
        return out.items;
    }
    match prev {
        Some(b'[') => {
            let close = if next == Some(b']') { "" } else { "]" };
            if let Some(obj) = ctx.source_object(schema) {
                out.attributes(obj, |n| format!("{n}{close}"));
            }
            return out.items;
        }
        Some(b'%') => {
            let close = if next == Some(b'%') { "" } else { "%" };
            out.params(schema, ctx.rule_connector(), close);
            return out.items;
        }
        Some(b'$') => return out.items,
        _ => {}
    }
    let last = toks[..before].last().map(|(_, t, _)| t);
    match ctx.block() {
        None => out.keywords(TOP_KEYWORDS),
        Some(Block::Rule(_)) => match last {
            Some(Tok::KwFlow) => {
                if let Some(obj) = ctx.target_object(schema) {
                    out.attributes(obj, |n| n.to_string());
                }
            }
            Some(Tok::KwLink) => {
                for l in ["join", "provision", "stickyjoin", "joinnoflow"] {
                    let doc = hover::link_doc(l, ctx.direction());
                    out.items.push(item(
                        l,
                        CompletionItemKind::ENUM_MEMBER,
                        doc,
                        l.into(),
                        replace,
                    ));
                }
            }
            Some(Tok::KwSource) | Some(Tok::KwTarget) => {
                let source = matches!(last, Some(Tok::KwSource));
                let head = ctx.head.as_ref();
                let metaverse = head.is_some_and(|h| h.inbound != source);
                let types: Vec<&String> = if metaverse {
                    schema.metaverse.keys().collect()
                } else {
                    head.and_then(|h| h.connector.as_ref())
                        .and_then(|c| schema.connectors.get(c))
                        .map(|c| c.objects.keys().collect())
                        .unwrap_or_default()
                };
                for t in types {
                    out.items.push(item(
                        t,
                        CompletionItemKind::CLASS,
                        "object type",
                        t.clone(),
                        replace,
                    ));
                }
            }
            Some(Tok::KwConnector) => {
                for c in schema.connectors.keys() {
                    let text = format!("\"{c}\"");
                    out.items.push(item(
                        c,
                        CompletionItemKind::MODULE,
                        "connector",
                        text,
                        replace,
                    ));
                }
            }
            Some(Tok::KwPrecedence | Tok::KwDescription | Tok::KwTag) => {}
            _ if ctx.in_flow_expression() => {
                out.expression(schema, &ctx);
                if ctx.parens == 0 && last.is_some_and(ends_operand) {
                    out.keywords(&[
                        "merge",
                        "merge-case-insensitive",
                        "replace",
                        "update",
                        "once",
                    ]);
                    out.keywords(RULE_KEYWORDS);
                }
            }
            _ => out.keywords(RULE_KEYWORDS),
        },
        Some(Block::Scope) => {
            if ctx.parens > 0 {
                out.expression(schema, &ctx);
            } else {
                let op = last.and_then(name_of).and_then(|n| ScopeOp::parse(&n));
                let after_name = last.and_then(name_of).is_some() && op.is_none();
                if after_name {
                    for (name, _) in SCOPE_OPERATORS {
                        out.items.push(item(
                            name,
                            CompletionItemKind::OPERATOR,
                            "scope operator",
                            (*name).to_string(),
                            replace,
                        ));
                    }
                } else if op.is_none_or(|o| !o.takes_value())
                    && let Some(obj) = ctx.source_object(schema)
                {
                    out.attributes(obj, |n| n.to_string());
                }
            }
        }
        Some(Block::Join) => {
            let obj = if matches!(last, Some(Tok::Eq)) {
                ctx.target_object(schema)
            } else if last.and_then(name_of).is_none() || matches!(last, Some(Tok::KwCaseSensitive))
            {
                ctx.source_object(schema)
            } else {
                None
            };
            if let Some(obj) = obj {
                out.attributes(obj, |n| n.to_string());
            } else if last.and_then(name_of).is_some() {
                out.keywords(&["case-sensitive"]);
            }
        }
        Some(Block::Metaverse) => out.keywords(&["object"]),
        Some(Block::ConnectorDecl) => out.keywords(&["param", "object"]),
        Some(Block::Object) => {
            let name = last.and_then(name_of);
            match name.as_deref() {
                Some(t) if SCHEMA_TYPES.contains(&t) => out.keywords(&["multi", "unique"]),
                Some("multi" | "unique") => out.keywords(&["multi", "unique"]),
                Some(_) => out.keywords(SCHEMA_TYPES),
                None if matches!(last, Some(Tok::RParen)) => out.keywords(&["multi", "unique"]),
                None => {}
            }
        }
        Some(Block::Test) => out.keywords(&["given", "delete", "sync", "expect"]),
        Some(Block::TestAttrs(target)) => {
            // At the start of a line of `NAME = VALUE` lines.
            let prev2 = before.checked_sub(2).map(|i| &toks[i].1);
            let at_start = matches!(last, Some(Tok::LBrace | Tok::RBracket))
                || matches!(prev2, Some(Tok::Eq))
                || matches!((prev2, last), (Some(Tok::Ident(_)), Some(Tok::Str(_))));
            let obj = target
                .as_ref()
                .and_then(|(space, name)| object_def(schema, space, name));
            if let (true, Some(obj)) = (at_start, obj) {
                out.attributes(obj, |n| n.to_string());
            }
        }
        Some(Block::Other) => {}
    }
    out.items
}

/// Whether a token can end an operand (so what follows may be an operator or the next item).
fn ends_operand(t: &Tok) -> bool {
    matches!(
        t,
        Tok::RParen
            | Tok::Str(_)
            | Tok::Num(_)
            | Tok::HexNum(_)
            | Tok::Attr(_)
            | Tok::Param(_)
            | Tok::Var(_)
            | Tok::Ident(_)
    )
}

const TOP_KEYWORDS: &[&str] = &[
    "bundle",
    "param",
    "metaverse",
    "connector",
    "inbound",
    "outbound",
    "test",
];

const RULE_KEYWORDS: &[&str] = &[
    "connector",
    "source",
    "target",
    "link",
    "precedence",
    "description",
    "tag",
    "password-sync",
    "disabled",
    "scope",
    "join",
    "flow",
];

const SCHEMA_TYPES: &[&str] = &[
    "string",
    "integer",
    "boolean",
    "binary",
    "reference",
    "datetime",
];

fn object_def<'a>(schema: &'a Schema, space: &Space, name: &str) -> Option<&'a ObjectDef> {
    match space {
        Space::Metaverse => schema.metaverse.get(name),
        Space::Connector(c) => schema.connectors.get(c)?.objects.get(name),
    }
}

fn item(
    label: &str,
    kind: CompletionItemKind,
    detail: &str,
    new_text: String,
    range: lsp_types::Range,
) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: Some(detail.to_string()),
        text_edit: Some(CompletionTextEdit::Edit(TextEdit::new(range, new_text))),
        ..Default::default()
    }
}

struct Items {
    replace: lsp_types::Range,
    opts: Options,
    items: Vec<CompletionItem>,
}

impl Items {
    fn keywords(&mut self, words: &[&str]) {
        for w in words {
            let (text, snippet) = match (*w, self.opts.snippets) {
                ("inbound" | "outbound", true) => (
                    format!(
                        "{w} rule \"${{1:name}}\" {{\n  connector \"${{2}}\"\n  source ${{3}}\n  target ${{4}}\n  link ${{5|join,provision,stickyjoin,joinnoflow|}}\n  precedence ${{6:100}}\n  $0\n}}"
                    ),
                    true,
                ),
                ("scope" | "join", true) => (format!("{w} {{\n  $0\n}}"), true),
                _ => (w.to_string(), false),
            };
            let mut it = item(
                w,
                CompletionItemKind::KEYWORD,
                "keyword",
                text,
                self.replace,
            );
            if snippet {
                it.insert_text_format = Some(InsertTextFormat::SNIPPET);
            }
            self.items.push(it);
        }
    }

    fn attributes(&mut self, obj: &ObjectDef, text: impl Fn(&str) -> String) {
        for (name, d) in &obj.attrs {
            let mut it = item(
                name,
                CompletionItemKind::FIELD,
                &hover::attr_type(d),
                text(name),
                self.replace,
            );
            it.documentation = Some(Documentation::String(format!(
                "attribute of object type `{}`",
                obj.name
            )));
            self.items.push(it);
        }
    }

    fn params(&mut self, schema: &Schema, connector: Option<&str>, close: &str) {
        let mut names: BTreeMap<String, &str> = BTreeMap::new();
        for p in schema.params.keys() {
            names.insert(p.clone(), "bundle parameter");
        }
        if let Some(c) = connector.and_then(|c| schema.connectors.get(c)) {
            for p in c.params.keys() {
                names.insert(p.clone(), "connector parameter");
            }
        }
        for p in INTRINSIC_PARAMS {
            names.insert(p.to_string(), "intrinsic parameter");
        }
        for (p, what) in names {
            self.items.push(item(
                &p,
                CompletionItemKind::VARIABLE,
                what,
                format!("{p}{close}"),
                self.replace,
            ));
        }
    }

    /// Functions, constants, enum constants and the source object type's attributes.
    fn expression(&mut self, schema: &Schema, ctx: &Context) {
        let lib = Stdlib::get();
        for f in &lib.functions {
            let Some(sig) = f.signatures.first() else {
                continue;
            };
            let text = if self.opts.snippets {
                let args: Vec<String> = sig
                    .params
                    .iter()
                    .enumerate()
                    .map(|(i, (_, name))| format!("${{{}:{name}}}", i + 1))
                    .collect();
                format!("{}({})", f.name, args.join(", "))
            } else {
                format!("{}(", f.name)
            };
            let mut it = item(
                &f.name,
                CompletionItemKind::FUNCTION,
                &sig.text,
                text,
                self.replace,
            );
            if self.opts.snippets {
                it.insert_text_format = Some(InsertTextFormat::SNIPPET);
            }
            it.documentation = hover::function(&f.name).map(|value| {
                Documentation::MarkupContent(MarkupContent {
                    kind: MarkupKind::Markdown,
                    value,
                })
            });
            self.items.push(it);
        }
        for c in [
            "True",
            "False",
            "NULL",
            "AuthoritativeNull",
            "IgnoreThisFlow",
            "CRLF",
        ] {
            self.items.push(item(
                c,
                CompletionItemKind::CONSTANT,
                "constant",
                c.into(),
                self.replace,
            ));
        }
        for e in &lib.enums {
            for v in &e.values {
                let detail = format!("{} constant", e.name);
                self.items.push(item(
                    v,
                    CompletionItemKind::ENUM_MEMBER,
                    &detail,
                    v.clone(),
                    self.replace,
                ));
            }
        }
        if let Some(obj) = ctx.source_object(schema) {
            self.attributes(obj, |n| format!("[{n}]"));
        }
    }
}

/// Where the cursor is, read from the tokens before it.
struct Context {
    stack: Vec<Block>,
    /// Open parentheses since the innermost block.
    parens: usize,
    head: Option<RuleHead>,
    /// Since the last rule-level keyword: `flow NAME <-` was seen.
    flow_arrow: bool,
}

impl Context {
    fn read(before: &[(usize, Tok, usize)], all: &[(usize, Tok, usize)]) -> Context {
        let mut stack: Vec<Block> = Vec::new();
        let mut parens = 0usize;
        let mut item_start = 0usize;
        let mut flow_arrow = false;
        for (i, (_, t, _)) in before.iter().enumerate() {
            match t {
                Tok::LBrace => {
                    let block = classify(&before[item_start..i], stack.last());
                    let block = match block {
                        Block::Rule(_) => Block::Rule(i),
                        b => b,
                    };
                    stack.push(block);
                    parens = 0;
                    item_start = i + 1;
                    flow_arrow = false;
                }
                Tok::RBrace => {
                    stack.pop();
                    parens = 0;
                    item_start = i + 1;
                    flow_arrow = false;
                }
                Tok::LParen => parens += 1,
                Tok::RParen => parens = parens.saturating_sub(1),
                Tok::Arrow => flow_arrow = true,
                t if parens == 0 && is_item_keyword(t, stack.last()) => {
                    item_start = i;
                    flow_arrow = false;
                }
                _ => {}
            }
        }
        let head = stack.iter().rev().find_map(|b| match b {
            Block::Rule(at) => Some(rule_head(all, *at)),
            _ => None,
        });
        Context {
            stack,
            parens,
            head,
            flow_arrow,
        }
    }

    fn block(&self) -> Option<Block> {
        self.stack.last().cloned()
    }

    fn in_flow_expression(&self) -> bool {
        self.flow_arrow
    }

    fn direction(&self) -> crate::syntax::ast::Direction {
        match &self.head {
            Some(h) if !h.inbound => crate::syntax::ast::Direction::Outbound,
            _ => crate::syntax::ast::Direction::Inbound,
        }
    }

    fn rule_connector(&self) -> Option<&str> {
        self.head.as_ref()?.connector.as_deref()
    }

    fn space(&self, source: bool) -> Option<Space> {
        let h = self.head.as_ref()?;
        if h.inbound == source {
            Some(Space::Connector(h.connector.clone()?))
        } else {
            Some(Space::Metaverse)
        }
    }

    fn source_object<'a>(&self, schema: &'a Schema) -> Option<&'a ObjectDef> {
        let name = self.head.as_ref()?.source.as_ref()?;
        object_def(schema, &self.space(true)?, name)
    }

    fn target_object<'a>(&self, schema: &'a Schema) -> Option<&'a ObjectDef> {
        let name = self.head.as_ref()?.target.as_ref()?;
        object_def(schema, &self.space(false)?, name)
    }
}

/// Tokens that start an item of the innermost block.
fn is_item_keyword(t: &Tok, block: Option<&Block>) -> bool {
    match block {
        Some(Block::Rule(_)) => matches!(
            t,
            Tok::KwConnector
                | Tok::KwSource
                | Tok::KwTarget
                | Tok::KwLink
                | Tok::KwPrecedence
                | Tok::KwDescription
                | Tok::KwTag
                | Tok::KwPasswordSync
                | Tok::KwDisabled
                | Tok::KwScope
                | Tok::KwJoin
                | Tok::KwFlow
        ),
        None => matches!(
            t,
            Tok::KwBundle
                | Tok::KwParam
                | Tok::KwMetaverse
                | Tok::KwConnector
                | Tok::KwInbound
                | Tok::KwOutbound
                | Tok::KwTest
        ),
        Some(Block::Test) => matches!(
            t,
            Tok::KwGiven | Tok::KwDelete | Tok::KwSync | Tok::KwExpect
        ),
        Some(Block::Metaverse | Block::ConnectorDecl) => matches!(t, Tok::KwObject | Tok::KwParam),
        _ => false,
    }
}

/// The kind of block a `{` opens, from the tokens of its item.
fn classify(toks: &[(usize, Tok, usize)], outer: Option<&Block>) -> Block {
    let first = toks.first().map(|(_, t, _)| t);
    match (outer, first) {
        (None, Some(Tok::KwInbound | Tok::KwOutbound)) => Block::Rule(0),
        (None, Some(Tok::KwMetaverse)) => Block::Metaverse,
        (None, Some(Tok::KwConnector)) => Block::ConnectorDecl,
        (None, Some(Tok::KwTest)) => Block::Test,
        (Some(Block::Rule(_)), Some(Tok::KwScope)) => Block::Scope,
        (Some(Block::Rule(_)), Some(Tok::KwJoin)) => Block::Join,
        (Some(Block::Metaverse | Block::ConnectorDecl), Some(Tok::KwObject)) => Block::Object,
        (Some(Block::Test), Some(Tok::KwGiven)) => {
            // given "connector" TYPE "DN" {
            let conn = toks.iter().find_map(|(_, t, _)| match t {
                Tok::Str(s) => Some(s.clone()),
                _ => None,
            });
            let ty = toks.get(2).and_then(|(_, t, _)| name_of(t));
            Block::TestAttrs(conn.zip(ty).map(|(c, t)| (Space::Connector(c), t)))
        }
        (Some(Block::Test), Some(Tok::KwExpect)) => {
            match toks.get(1).map(|(_, t, _)| t) {
                // expect metaverse TYPE where ... {
                Some(Tok::KwMetaverse) => Block::TestAttrs(
                    toks.get(2)
                        .and_then(|(_, t, _)| name_of(t))
                        .map(|t| (Space::Metaverse, t)),
                ),
                // expect export "connector" OP TYPE ["DN"] {
                Some(Tok::KwExport) => {
                    let conn = match toks.get(2).map(|(_, t, _)| t) {
                        Some(Tok::Str(s)) => Some(s.clone()),
                        _ => None,
                    };
                    let ty = toks.get(4).and_then(|(_, t, _)| name_of(t));
                    Block::TestAttrs(conn.zip(ty).map(|(c, t)| (Space::Connector(c), t)))
                }
                _ => Block::Other,
            }
        }
        _ => Block::Other,
    }
}

/// The settings of the rule whose `{` is token `open`, read from all its tokens (before and
/// after the cursor).
fn rule_head(all: &[(usize, Tok, usize)], open: usize) -> RuleHead {
    let mut head = RuleHead {
        inbound: all[..open]
            .iter()
            .rev()
            .find_map(|(_, t, _)| match t {
                Tok::KwInbound => Some(true),
                Tok::KwOutbound => Some(false),
                _ => None,
            })
            .unwrap_or(true),
        ..RuleHead::default()
    };
    let mut depth = 0usize;
    let mut i = open + 1;
    while i < all.len() {
        let t = &all[i].1;
        match t {
            Tok::LBrace => depth += 1,
            Tok::RBrace if depth == 0 => break,
            Tok::RBrace => depth -= 1,
            _ if depth == 0 => {
                let next = all.get(i + 1).map(|(_, t, _)| t);
                match (t, next) {
                    (Tok::KwConnector, Some(Tok::Str(s))) => head.connector = Some(s.clone()),
                    (Tok::KwSource, Some(n)) => head.source = name_of(n),
                    (Tok::KwTarget, Some(Tok::Star)) => head.target = Some("*".into()),
                    (Tok::KwTarget, Some(n)) => head.target = name_of(n),
                    _ => {}
                }
            }
            _ => {}
        }
        i += 1;
    }
    head
}
