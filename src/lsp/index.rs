//! The symbol index of one analysis: every name in every file, what it stands for and how it
//! is used.
//!
//! Consumes: the parsed files of a bundle and its resolved schema. Produces: [`Index`], the
//! list of [`Occurrence`]s (declarations of object types, attributes, connectors, parameters
//! and rules; attributes read and written by rules and tests; function calls; constants) and a
//! [`RuleInfo`] per rule. Hover, go to definition, find references and rename all start from
//! "which occurrence is under the cursor".

use crate::sema::schema::{AttrDef, Schema};
use crate::source::{FileId, Span};
use crate::syntax::Parsed;
use crate::syntax::ast::{self, Direction, Expr, ExprKind};

/// Where an object type lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Space {
    Metaverse,
    Connector(String),
}

impl Space {
    pub fn describe(&self) -> String {
        match self {
            Space::Metaverse => "the metaverse".into(),
            Space::Connector(c) => format!("connector \"{c}\""),
        }
    }
}

/// What a name stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Symbol {
    Attr {
        space: Space,
        object: String,
        name: String,
    },
    Object {
        space: Space,
        name: String,
    },
    Connector(String),
    /// A parameter declared by a connector (`Some`) or by the bundle (`None`).
    Param {
        connector: Option<String>,
        name: String,
    },
    Function(String),
    /// A built-in or enum constant (`True`, `UTF8`).
    Constant(String),
    /// A rule, by name; also the `link` and `precedence` settings of the rule.
    Rule(String),
}

/// How a name is used where it occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Declaration,
    /// An attribute read by a scope, join or flow expression.
    Read,
    /// An attribute written by a flow.
    Write,
    /// Any other mention (a rule's object types, a test's attributes, a call, a setting).
    Use,
}

#[derive(Debug, Clone)]
pub struct Occurrence {
    pub file: FileId,
    /// The name itself (inside brackets, percent signs and quotes).
    pub span: Span,
    pub symbol: Symbol,
    pub role: Role,
    /// The rule this occurrence is in (an index into [`Index::rules`]).
    pub rule: Option<usize>,
}

/// A rule's settings as written (whether or not they resolve).
#[derive(Debug, Clone)]
pub struct RuleInfo {
    pub name: String,
    pub direction: Direction,
    pub connector: Option<String>,
    pub source: Option<String>,
    /// `*` for `target *`.
    pub target: Option<String>,
    pub link: Option<String>,
    pub precedence: Option<i64>,
    pub disabled: bool,
    /// The name inside its quotes.
    pub name_span: Span,
}

impl RuleInfo {
    /// Where the rule's sources and targets live.
    pub fn spaces(&self) -> (Option<Space>, Option<Space>) {
        let cs = self.connector.clone().map(Space::Connector);
        match self.direction {
            Direction::Inbound => (cs, Some(Space::Metaverse)),
            Direction::Outbound => (Some(Space::Metaverse), cs),
        }
    }
}

#[derive(Debug, Default)]
pub struct Index {
    pub occurrences: Vec<Occurrence>,
    pub rules: Vec<RuleInfo>,
    /// Per file, the indexes of its occurrences in span order.
    by_file: Vec<Vec<usize>>,
}

/// The span inside one delimiter on each side (`[x]`, `%x%`, `"x"`).
pub fn inner(span: &Span) -> Span {
    if span.end >= span.start + 2 {
        span.start + 1..span.end - 1
    } else {
        span.clone()
    }
}

impl Index {
    pub fn build(parsed: &[Parsed], files: &[FileId], schema: &Schema) -> Index {
        let mut b = Builder {
            schema,
            out: Index::default(),
        };
        for (p, &file) in parsed.iter().zip(files) {
            for item in &p.file.items {
                b.item(file, item);
            }
        }
        let mut index = b.out;
        index.by_file = vec![Vec::new(); files.len()];
        for (i, o) in index.occurrences.iter().enumerate() {
            if let Some(v) = index.by_file.get_mut(o.file.0 as usize) {
                v.push(i);
            }
        }
        for v in &mut index.by_file {
            v.sort_by_key(|&i| {
                let s = &index.occurrences[i].span;
                (s.start, s.end)
            });
        }
        index
    }

    /// The innermost occurrence whose name contains `offset` (its end included, so a cursor
    /// just after a name finds it).
    pub fn at(&self, file: FileId, offset: usize) -> Option<&Occurrence> {
        self.in_file(file)
            .filter(|o| o.span.start <= offset && offset <= o.span.end)
            .min_by_key(|o| o.span.end - o.span.start)
    }

    /// The occurrences in one file, in position order.
    pub fn in_file(&self, file: FileId) -> impl Iterator<Item = &Occurrence> {
        self.by_file
            .get(file.0 as usize)
            .into_iter()
            .flatten()
            .map(|&i| &self.occurrences[i])
    }

    /// Every occurrence of `symbol`, in file and position order.
    pub fn find<'a>(&'a self, symbol: &'a Symbol) -> impl Iterator<Item = &'a Occurrence> + 'a {
        self.by_file
            .iter()
            .flatten()
            .map(|&i| &self.occurrences[i])
            .filter(move |o| &o.symbol == symbol)
    }

    pub fn declaration<'a>(&'a self, symbol: &'a Symbol) -> Option<&'a Occurrence> {
        self.find(symbol).find(|o| o.role == Role::Declaration)
    }
}

/// The schema declaration of an attribute (the implicit `dn` of connector object types
/// included).
pub fn attr_def<'a>(
    schema: &'a Schema,
    space: &Space,
    object: &str,
    name: &str,
) -> Option<&'a AttrDef> {
    let objects = match space {
        Space::Metaverse => &schema.metaverse,
        Space::Connector(c) => &schema.connectors.get(c)?.objects,
    };
    objects.get(object)?.attr(name)
}

struct Builder<'a> {
    schema: &'a Schema,
    out: Index,
}

/// What a rule's expressions can name.
struct RuleCtx {
    rule: usize,
    file: FileId,
    source: Option<(Space, String)>,
    target: Option<(Space, String)>,
    connector: Option<String>,
}

impl Builder<'_> {
    fn push(&mut self, file: FileId, span: Span, symbol: Symbol, role: Role, rule: Option<usize>) {
        self.out.occurrences.push(Occurrence {
            file,
            span,
            symbol,
            role,
            rule,
        });
    }

    fn item(&mut self, file: FileId, item: &ast::Item) {
        match item {
            ast::Item::Bundle(..) => {}
            ast::Item::Param(p) => self.push(
                file,
                p.name.span.clone(),
                Symbol::Param {
                    connector: None,
                    name: p.name.name.clone(),
                },
                Role::Declaration,
                None,
            ),
            ast::Item::Metaverse(m) => {
                for o in &m.objects {
                    self.object_type(file, &Space::Metaverse, o);
                }
            }
            ast::Item::Connector(c) => {
                let name = c.name.value.clone();
                self.push(
                    file,
                    inner(&c.name.span),
                    Symbol::Connector(name.clone()),
                    Role::Declaration,
                    None,
                );
                let space = Space::Connector(name.clone());
                for m in &c.members {
                    match m {
                        ast::ConnectorMember::Param(p) => self.push(
                            file,
                            p.name.span.clone(),
                            Symbol::Param {
                                connector: Some(name.clone()),
                                name: p.name.name.clone(),
                            },
                            Role::Declaration,
                            None,
                        ),
                        ast::ConnectorMember::Object(o) => self.object_type(file, &space, o),
                    }
                }
            }
            ast::Item::Rule(r) => self.rule(file, r),
            ast::Item::Test(t) => self.test(file, t),
        }
    }

    fn object_type(&mut self, file: FileId, space: &Space, o: &ast::ObjectType) {
        self.push(
            file,
            o.name.span.clone(),
            Symbol::Object {
                space: space.clone(),
                name: o.name.name.clone(),
            },
            Role::Declaration,
            None,
        );
        let attr = |name: &str| Symbol::Attr {
            space: space.clone(),
            object: o.name.name.clone(),
            name: name.to_string(),
        };
        if let Some(a) = &o.anchor {
            self.push(file, a.span.clone(), attr(&a.name), Role::Use, None);
        }
        for a in &o.attrs {
            self.push(
                file,
                a.name.span.clone(),
                attr(&a.name.name),
                Role::Declaration,
                None,
            );
            if let Some(t) = &a.ref_target {
                self.push(
                    file,
                    t.span.clone(),
                    Symbol::Object {
                        space: space.clone(),
                        name: t.name.clone(),
                    },
                    Role::Use,
                    None,
                );
            }
        }
    }

    fn rule(&mut self, file: FileId, r: &ast::Rule) {
        let mut info = RuleInfo {
            name: r.name.value.clone(),
            direction: r.direction,
            connector: None,
            source: None,
            target: None,
            link: None,
            precedence: None,
            disabled: false,
            name_span: inner(&r.name.span),
        };
        for it in &r.body {
            match it {
                ast::RuleItem::Connector(c, _) => info.connector = Some(c.value.clone()),
                ast::RuleItem::Source(n, _) => info.source = Some(n.name.clone()),
                ast::RuleItem::Target(ast::TargetType::Named(n), _) => {
                    info.target = Some(n.name.clone())
                }
                ast::RuleItem::Target(ast::TargetType::Any(_), _) => info.target = Some("*".into()),
                ast::RuleItem::Link(n, _) => info.link = Some(n.name.clone()),
                ast::RuleItem::Precedence(p, _) => info.precedence = Some(*p),
                ast::RuleItem::Disabled(_) => info.disabled = true,
                _ => {}
            }
        }
        let (src_space, tgt_space) = info.spaces();
        let ctx = RuleCtx {
            rule: self.out.rules.len(),
            file,
            source: src_space.zip(info.source.clone()),
            target: tgt_space.zip(info.target.clone()),
            connector: info.connector.clone(),
        };
        let rule_symbol = Symbol::Rule(info.name.clone());
        let rule = Some(ctx.rule);
        self.push(
            file,
            info.name_span.clone(),
            rule_symbol.clone(),
            Role::Declaration,
            rule,
        );
        self.out.rules.push(info);
        for it in &r.body {
            match it {
                ast::RuleItem::Connector(c, _) => self.push(
                    file,
                    inner(&c.span),
                    Symbol::Connector(c.value.clone()),
                    Role::Use,
                    rule,
                ),
                ast::RuleItem::Source(n, _) => {
                    if let Some((space, _)) = &ctx.source {
                        let symbol = Symbol::Object {
                            space: space.clone(),
                            name: n.name.clone(),
                        };
                        self.push(file, n.span.clone(), symbol, Role::Use, rule);
                    }
                }
                ast::RuleItem::Target(ast::TargetType::Named(n), _) => {
                    if let Some((space, _)) = &ctx.target {
                        let symbol = Symbol::Object {
                            space: space.clone(),
                            name: n.name.clone(),
                        };
                        self.push(file, n.span.clone(), symbol, Role::Use, rule);
                    }
                }
                ast::RuleItem::Link(n, _) => {
                    self.push(file, n.span.clone(), rule_symbol.clone(), Role::Use, rule)
                }
                ast::RuleItem::Precedence(_, span) => {
                    self.push(file, span.clone(), rule_symbol.clone(), Role::Use, rule)
                }
                ast::RuleItem::Scope(g) => {
                    for c in &g.clauses {
                        match c {
                            ast::ScopeClause::Compare { attr, .. } => {
                                self.source_attr(&ctx, &attr.name, attr.span.clone())
                            }
                            ast::ScopeClause::Expr(e, _) => self.expr(&ctx, e),
                        }
                    }
                }
                ast::RuleItem::Join(g) => {
                    for c in &g.conditions {
                        self.source_attr(&ctx, &c.source.name, c.source.span.clone());
                        self.target_attr(&ctx, &c.target.name, c.target.span.clone(), Role::Read);
                    }
                }
                ast::RuleItem::Flow(f) => {
                    self.target_attr(&ctx, &f.target.name, f.target.span.clone(), Role::Write);
                    self.expr(&ctx, &f.expr);
                }
                _ => {}
            }
        }
    }

    fn source_attr(&mut self, ctx: &RuleCtx, name: &str, span: Span) {
        if let Some((space, object)) = &ctx.source {
            let symbol = Symbol::Attr {
                space: space.clone(),
                object: object.clone(),
                name: name.to_string(),
            };
            self.push(ctx.file, span, symbol, Role::Read, Some(ctx.rule));
        }
    }

    fn target_attr(&mut self, ctx: &RuleCtx, name: &str, span: Span, role: Role) {
        let Some((space, object)) = &ctx.target else {
            return;
        };
        let object = if object == "*" {
            // `target *`: the metaverse object type that declares the attribute.
            match self
                .schema
                .metaverse
                .values()
                .find(|o| o.attr(name).is_some())
            {
                Some(o) => o.name.clone(),
                None => return,
            }
        } else {
            object.clone()
        };
        let symbol = Symbol::Attr {
            space: space.clone(),
            object,
            name: name.to_string(),
        };
        self.push(ctx.file, span, symbol, role, Some(ctx.rule));
    }

    fn expr(&mut self, ctx: &RuleCtx, e: &Expr) {
        let rule = Some(ctx.rule);
        match &e.kind {
            ExprKind::Attr(a) => self.source_attr(ctx, a, inner(&e.span)),
            ExprKind::Param(p) => {
                let declared_by_connector = ctx.connector.as_ref().filter(|c| {
                    self.schema
                        .connectors
                        .get(*c)
                        .is_some_and(|d| d.params.contains_key(p))
                });
                // A parameter the connector does not declare is the bundle's (or intrinsic).
                let symbol = Symbol::Param {
                    connector: declared_by_connector.cloned(),
                    name: p.clone(),
                };
                self.push(ctx.file, inner(&e.span), symbol, Role::Use, rule);
            }
            ExprKind::Name(n) => self.push(
                ctx.file,
                e.span.clone(),
                Symbol::Constant(n.clone()),
                Role::Use,
                rule,
            ),
            ExprKind::Const(c) => self.push(
                ctx.file,
                e.span.clone(),
                Symbol::Constant(c.as_str().to_string()),
                Role::Use,
                rule,
            ),
            ExprKind::Call { name, args } => {
                self.push(
                    ctx.file,
                    name.span.clone(),
                    Symbol::Function(name.name.clone()),
                    Role::Use,
                    rule,
                );
                let quoted = name.name == "ImportedValue" || name.name == "ValueCount";
                for a in args {
                    match &a.kind {
                        ExprKind::Str { value, .. } if quoted => {
                            self.source_attr(ctx, value, inner(&a.span))
                        }
                        _ => self.expr(ctx, a),
                    }
                }
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                self.expr(ctx, lhs);
                self.expr(ctx, rhs);
            }
            ExprKind::Neg(x) | ExprKind::Paren(x) => self.expr(ctx, x),
            ExprKind::Str { .. } | ExprKind::Num { .. } | ExprKind::Var(_) => {}
        }
    }

    fn test(&mut self, file: FileId, t: &ast::Test) {
        for step in &t.steps {
            match step {
                ast::TestStep::Given {
                    connector,
                    object_type,
                    attrs,
                    ..
                }
                | ast::TestStep::ExpectExport {
                    connector,
                    object_type,
                    attrs,
                    ..
                } => {
                    let space = Space::Connector(connector.value.clone());
                    self.test_object(file, connector, &space, object_type);
                    for a in attrs {
                        self.test_attr(file, &space, object_type, &a.name);
                    }
                }
                ast::TestStep::Delete {
                    connector,
                    object_type,
                    ..
                } => {
                    let space = Space::Connector(connector.value.clone());
                    self.test_object(file, connector, &space, object_type);
                }
                ast::TestStep::ExpectNoExport { connector, .. } => self.push(
                    file,
                    inner(&connector.span),
                    Symbol::Connector(connector.value.clone()),
                    Role::Use,
                    None,
                ),
                ast::TestStep::ExpectMetaverse {
                    object_type,
                    key,
                    attrs,
                    ..
                } => {
                    let space = Space::Metaverse;
                    self.type_use(file, &space, object_type);
                    for a in std::iter::once(key.as_ref()).chain(attrs) {
                        self.test_attr(file, &space, object_type, &a.name);
                    }
                }
                ast::TestStep::Sync(_) | ast::TestStep::ExpectError { .. } => {}
            }
        }
    }

    fn test_object(
        &mut self,
        file: FileId,
        connector: &ast::StrLit,
        space: &Space,
        object_type: &ast::Ident,
    ) {
        self.push(
            file,
            inner(&connector.span),
            Symbol::Connector(connector.value.clone()),
            Role::Use,
            None,
        );
        self.type_use(file, space, object_type);
    }

    /// A use of an object type's name in a test.
    fn type_use(&mut self, file: FileId, space: &Space, object_type: &ast::Ident) {
        self.push(
            file,
            object_type.span.clone(),
            Symbol::Object {
                space: space.clone(),
                name: object_type.name.clone(),
            },
            Role::Use,
            None,
        );
    }

    fn test_attr(&mut self, file: FileId, space: &Space, object: &ast::Ident, name: &ast::Ident) {
        let symbol = Symbol::Attr {
            space: space.clone(),
            object: object.name.clone(),
            name: name.name.clone(),
        };
        self.push(file, name.span.clone(), symbol, Role::Use, None);
    }
}
