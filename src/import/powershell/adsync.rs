//! The ADSync commands of the PowerShell reader: the model of the rule objects.
//!
//! Consumes: evaluated command arguments (`interp`). Produces: rules under construction
//! between `New-ADSyncRule` and `Add-ADSyncRule` and their snapshots at each
//! `Add-ADSyncRule` (the imported [`Rule`]s), scope and join conditions (`New-Object` and
//! `[...ScopeCondition]::new(...)`), connectors (`Get-ADSyncConnector`, narrowed by
//! `Where-Object`), removals matched with later additions, and findings for everything that
//! cannot be carried over.

use super::interp::{COMMON_PARAMS, Conn, Interp, R, Stop, V, first_line, items, text_of};
use super::parse::{Command, Elem, Expr, ExprKind};
use super::{Pos, normalize_guid};
use crate::import::model::{
    Config, ConnectorRef, Direction, Flow, FlowKind, JoinCondition, Rule, ScopeClause,
};
use std::collections::HashMap;

const SCOPE_CONDITION: &str = "Microsoft.IdentityManagement.PowerShell.ObjectModel.ScopeCondition";
const JOIN_CONDITION: &str = "Microsoft.IdentityManagement.PowerShell.ObjectModel.JoinCondition";
const EMPTY_GUID: &str = "{00000000-0000-0000-0000-000000000000}";

/// The rules of a script being read.
#[derive(Default)]
pub(super) struct Rules {
    pub pending: Vec<Pending>,
    /// The rule started last and not yet added: the context of unrelated findings.
    pub current: Option<usize>,
    pub out: Vec<Rule>,
    /// `(rule, order)` of every `Add-ADSyncRule`.
    pub adds: Vec<(usize, usize)>,
    pub removals: Vec<Removal>,
    /// Statements run so far (orders removals and additions).
    pub order: usize,
}

/// A rule between `New-ADSyncRule` and `Add-ADSyncRule`.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pos: Pos,
    pub name: Option<String>,
    pub id: String,
    description: String,
    immutable_tag: Option<String>,
    direction: Option<Direction>,
    disabled: bool,
    connector: Option<(String, ConnectorRef)>,
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
pub(super) struct Removal {
    target: RemovalTarget,
    order: usize,
    pos: Pos,
    context: String,
}

enum RemovalTarget {
    Id(String),
    Pending(usize),
}

/// An evaluated argument: where it is, its value (`None` for a switch without value) and its
/// text as written.
#[derive(Clone)]
pub(super) struct Arg {
    pos: Pos,
    value: Option<V>,
    text: String,
}

/// The parameters of one command, bound by name.
struct Bound {
    cmd: &'static str,
    /// Documented name → argument.
    params: HashMap<&'static str, Arg>,
    /// Unmapped findings (unknown parameters, stray arguments), reported under the rule's name.
    problems: Vec<String>,
}

impl Bound {
    fn get(&self, name: &str) -> Option<&Arg> {
        self.params.get(name).filter(|a| a.value.is_some())
    }

    fn has(&self, name: &str) -> bool {
        self.params.contains_key(name)
    }
}

/// Whether a text is written like a GUID (hex digits and dashes, optionally in braces).
fn looks_like_guid(t: &str) -> bool {
    let inner = t.trim().trim_start_matches('{').trim_end_matches('}');
    !inner.is_empty() && inner.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// The connector kind a text implies (`Type -eq 'AD'`, a name with "AAD").
fn kind_hint(text: &str) -> Option<&'static str> {
    let t = text.to_ascii_lowercase();
    let t = t.trim_matches('*');
    if t == "ad" {
        return Some("ad");
    }
    if [
        "extensible2",
        "aad",
        "azure",
        "entra",
        "onmicrosoft",
        "windows azure active directory",
    ]
    .iter()
    .any(|k| t.contains(k))
    {
        return Some("entra");
    }
    None
}

impl Interp<'_> {
    pub fn context(&self, rule: Option<usize>) -> String {
        match rule.or(self.rules.current) {
            Some(r) => self.rules.pending[r].label(),
            None => "script".to_string(),
        }
    }

    fn report(&mut self, ctx: &str, problems: Vec<String>) {
        for p in problems {
            self.unmapped(ctx, p);
        }
    }

    /// Runs an ADSync command; `None` when `name` is not one.
    pub fn adsync(
        &mut self,
        cmd: &Command,
        name: &str,
        input: Option<Vec<V>>,
    ) -> R<Option<Vec<V>>> {
        let input = input.filter(|i| !i.is_empty());
        let out = match name {
            "new-adsyncrule" => self.new_rule(cmd)?,
            "add-adsyncattributeflowmapping" => self.add_flow(cmd, input)?,
            "new-object" => self.new_object(cmd)?,
            "add-adsyncscopeconditiongroup" => self.add_group(cmd, false, input)?,
            "add-adsyncjoinconditiongroup" => self.add_group(cmd, true, input)?,
            "add-adsyncrule" => self.add_rule(cmd, input)?,
            "remove-adsyncrule" => self.remove_rule(cmd, input)?,
            "get-adsyncrule" => self.get_rule(cmd)?,
            "get-adsyncconnector" => self.get_connector(cmd)?,
            _ => return Ok(None),
        };
        Ok(Some(out))
    }

    /// Binds parameters by name (case-insensitive), evaluating their values. `switches` take
    /// no value (but accept `-Switch:$false`), `valued` take the next argument, `positional`
    /// names the parameters bare arguments fill, in order. Names are spelled as documented.
    fn bind(
        &mut self,
        cmd: &Command,
        display: &'static str,
        switches: &[&'static str],
        valued: &[&'static str],
        positional: &[&'static str],
    ) -> R<Bound> {
        let mut b = Bound {
            cmd: display,
            params: HashMap::new(),
            problems: Vec::new(),
        };
        let mut positional = positional.iter();
        let mut i = 0;
        let twice = |me: &Self, pos: Pos, name: &str| {
            Stop::Fatal(me.locate(
                pos,
                format!("parameter `-{name}` of {display} is given more than once"),
            ))
        };
        while i < cmd.elems.len() {
            match &cmd.elems[i] {
                Elem::Param { name, pos, value } => {
                    let next_arg = |i: usize| match cmd.elems.get(i + 1) {
                        Some(Elem::Arg(v)) => Some(v),
                        _ => None,
                    };
                    if let Some(&canon) = switches.iter().find(|s| s.eq_ignore_ascii_case(name)) {
                        let value = match value {
                            Some(x) => Some(self.eval(x)?),
                            None => None,
                        };
                        let arg = Arg {
                            pos: *pos,
                            value,
                            text: format!("-{name}"),
                        };
                        if b.params.insert(canon, arg).is_some() {
                            return Err(twice(self, *pos, name));
                        }
                    } else if let Some(&canon) =
                        valued.iter().find(|s| s.eq_ignore_ascii_case(name))
                    {
                        let x = match value {
                            Some(x) => Some(x),
                            None => {
                                let x = next_arg(i);
                                if x.is_some() {
                                    i += 1;
                                }
                                x
                            }
                        };
                        match x {
                            Some(x) => {
                                let v = self.eval(x)?;
                                let arg = Arg {
                                    pos: x.loc.pos,
                                    value: Some(v),
                                    text: x.loc.text().to_string(),
                                };
                                if b.params.insert(canon, arg).is_some() {
                                    return Err(twice(self, *pos, name));
                                }
                            }
                            None => b
                                .problems
                                .push(format!("parameter `-{name}` of {display} has no value")),
                        }
                    } else if COMMON_PARAMS.iter().any(|c| c.eq_ignore_ascii_case(name)) {
                        let takes = !["verbose", "debug", "whatif", "confirm"]
                            .contains(&name.to_ascii_lowercase().as_str());
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
                Elem::Arg(x) => match positional.next() {
                    Some(&canon) => {
                        let v = self.eval(x)?;
                        b.params.insert(
                            canon,
                            Arg {
                                pos: x.loc.pos,
                                value: Some(v),
                                text: x.loc.text().to_string(),
                            },
                        );
                    }
                    None => b.problems.push(format!(
                        "unexpected argument `{}` of {display}",
                        first_line(x.loc.text())
                    )),
                },
                Elem::Splat(name, pos) => {
                    match self.get(name) {
                        V::Hash(entries) => {
                            for (k, v) in entries {
                                let canon = switches
                                    .iter()
                                    .chain(valued)
                                    .find(|s| s.eq_ignore_ascii_case(&k))
                                    .copied();
                                match canon {
                                Some(canon) => {
                                    let arg = Arg {
                                        pos: *pos,
                                        value: Some(v),
                                        text: format!("@{name}.{k}"),
                                    };
                                    if b.params.insert(canon, arg).is_some() {
                                        return Err(twice(self, *pos, canon));
                                    }
                                }
                                None if COMMON_PARAMS.iter().any(|c| c.eq_ignore_ascii_case(&k)) => {}
                                None => b.problems.push(format!(
                                    "unknown parameter `{k}` of {display} (splatted from `@{name}`)"
                                )),
                            }
                            }
                        }
                        V::Unknown(u) => {
                            let what = format!("the parameters splatted from `@{name}`");
                            let ctx = self.context(None);
                            self.unknown_used(&u, *pos, &what, &format!("@{name}"), &ctx);
                        }
                        other => b.problems.push(format!(
                            "`@{name}` splatted into {display} is {}, not a hashtable",
                            other.kind()
                        )),
                    }
                }
            }
            i += 1;
        }
        Ok(b)
    }

    // --- value conversions ---------------------------------------------------------------

    /// A string parameter's value; `None` (after reporting why) when it cannot be read.
    fn string(&mut self, b: &Bound, param: &str, ctx: &str) -> R<Option<String>> {
        match b.get(param) {
            Some(a) => {
                let a = a.clone();
                self.string_of(&a, b.cmd, param, ctx)
            }
            None => Ok(None),
        }
    }

    fn string_of(&mut self, a: &Arg, cmd: &str, param: &str, ctx: &str) -> R<Option<String>> {
        let Some(v) = &a.value else { return Ok(None) };
        match v {
            V::Null => Ok(None),
            V::Array(items) if items.len() == 1 => {
                let inner = Arg {
                    value: Some(items[0].clone()),
                    ..a.clone()
                };
                self.string_of(&inner, cmd, param, ctx)
            }
            V::Array(items) => {
                self.unmapped(
                    ctx,
                    format!(
                        "`-{param}` of {cmd} expects one value, got {}: `{}`",
                        items.len(),
                        first_line(&a.text)
                    ),
                );
                Ok(None)
            }
            V::Unknown(u) => {
                let u = u.clone();
                self.unknown_used(&u, a.pos, &format!("`-{param}` of {cmd}"), &a.text, ctx);
                Ok(None)
            }
            other => match text_of(other) {
                Some(t) => Ok(Some(t)),
                None => {
                    self.unmapped(
                        ctx,
                        format!(
                            "`-{param}` of {cmd} is `{}`, {}, not a value",
                            first_line(&a.text),
                            other.kind()
                        ),
                    );
                    Ok(None)
                }
            },
        }
    }

    /// A list parameter's values (a single value is a list of one).
    fn strings_of(&mut self, a: &Arg, cmd: &str, param: &str, ctx: &str) -> R<Option<Vec<String>>> {
        let Some(v) = &a.value else {
            return Ok(Some(Vec::new()));
        };
        let mut out = Vec::new();
        for item in items(v.clone()) {
            let one = Arg {
                value: Some(item),
                ..a.clone()
            };
            match self.string_of(&one, cmd, param, ctx)? {
                Some(s) => out.push(s),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    fn bool_of(&mut self, a: &Arg, cmd: &str, param: &str, ctx: &str) -> R<Option<bool>> {
        if let Some(V::Bool(b)) = &a.value {
            return Ok(Some(*b));
        }
        let Some(text) = self.string_of(a, cmd, param, ctx)? else {
            return Ok(None);
        };
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
    fn switch(&mut self, b: &Bound, param: &str, ctx: &str) -> R<bool> {
        match b.params.get(param) {
            None => Ok(false),
            Some(Arg { value: None, .. }) => Ok(true),
            Some(a) => {
                let a = a.clone();
                Ok(self.bool_of(&a, b.cmd, param, ctx)?.unwrap_or(true))
            }
        }
    }

    /// The rule `-SynchronizationRule` (or the pipeline input) denotes.
    fn rule_of(&mut self, a: Option<&Arg>, cmd: &str) -> R<Option<usize>> {
        let ctx = self.context(None);
        let Some(a) = a else {
            self.unmapped(&ctx, format!("{cmd} without -SynchronizationRule"));
            return Ok(None);
        };
        let mut v = a.value.clone().unwrap_or(V::Null);
        while let V::Array(mut xs) = v {
            if xs.len() != 1 {
                self.unmapped(
                    &ctx,
                    format!(
                        "-SynchronizationRule of {cmd} is `{}`, {} values, not one rule",
                        first_line(&a.text),
                        xs.len()
                    ),
                );
                return Ok(None);
            }
            v = xs.pop().unwrap_or(V::Null);
        }
        match v {
            V::Rule(r) => Ok(Some(r)),
            V::Unknown(u) if u.unassigned => Err(Stop::Fatal(self.locate(
                a.pos,
                format!(
                    "variable `${}` is used before it is assigned",
                    u.var.as_deref().unwrap_or("")
                ),
            ))),
            V::ServerRule(_) => {
                self.unmapped(
                    &ctx,
                    format!(
                        "-SynchronizationRule of {cmd} is `{}`, a rule read from the server (Get-ADSyncRule), not a rule built by this script",
                        first_line(&a.text)
                    ),
                );
                Ok(None)
            }
            other => {
                self.unmapped(
                    &ctx,
                    format!(
                        "-SynchronizationRule of {cmd} is `{}`, {}, not a rule built by this script",
                        first_line(&a.text),
                        other.kind()
                    ),
                );
                Ok(None)
            }
        }
    }

    /// The rule a command's `-SynchronizationRule` (or its pipeline input) denotes, with its
    /// context, after reporting the command's binding problems and binding its `-OutVariable`
    /// to that rule.
    fn rule_argument(
        &mut self,
        b: &Bound,
        cmd: &str,
        input: Option<&Vec<V>>,
    ) -> R<Option<(usize, String)>> {
        let arg = match (b.get("SynchronizationRule"), input) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(i)) => Some(Arg {
                pos: Pos { line: 0, col: 0 },
                value: Some(V::Array(i.clone())),
                text: "(pipeline input)".into(),
            }),
            (None, None) => None,
        };
        let rule = self.rule_of(arg.as_ref(), cmd)?;
        let ctx = self.context(rule);
        self.report(&ctx, b.problems.clone());
        let Some(rule) = rule else {
            return Ok(None);
        };
        self.out_variable(b, V::Rule(rule), &ctx)?;
        Ok(Some((rule, ctx)))
    }

    /// Binds `-OutVariable` to a list holding `value` (`+name` appends).
    fn out_variable(&mut self, b: &Bound, value: V, ctx: &str) -> R<()> {
        let Some(name) = self.string(b, "OutVariable", ctx)? else {
            return Ok(());
        };
        if let Some(appended) = name.strip_prefix('+') {
            let mut list = match self.get(appended) {
                V::Array(a) => a,
                V::Unknown(_) | V::Null => Vec::new(),
                other => vec![other],
            };
            list.push(value);
            self.set(appended, V::Array(list));
            return Ok(());
        }
        self.set(&name, V::Array(vec![value]));
        Ok(())
    }

    fn changed(&mut self, rule: usize) {
        self.rules.pending[rule].dirty = true;
        self.changes += 1;
    }

    // --- commands ---------------------------------------------------------------------------

    fn new_rule(&mut self, cmd: &Command) -> R<Vec<V>> {
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
        let idx = self.rules.pending.len();
        let fallback = format!("unnamed rule (line {})", cmd.loc.pos.line);
        let name = self.string(&b, "Name", &fallback)?;
        let ctx = name.clone().unwrap_or(fallback);
        let mut r = Pending {
            pos: cmd.loc.pos,
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
        if let Some(id) = self.string(&b, "Identifier", &ctx)?
            && !id.trim().is_empty()
        {
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
        } else if b.get("Precedence").is_some() {
            // Reported by `string`: the rule would otherwise silently get precedence 0.
            self.unmapped(
                &ctx,
                "rule has no usable -Precedence; imported with precedence 0".to_string(),
            );
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
        if let Some(a) = b.get("Connector") {
            let a = a.clone();
            r.connector = self.connector_of(&a, &ctx)?;
        }
        if let Some(l) = self.string(&b, "LinkType", &ctx)? {
            r.link_type = match l.to_ascii_lowercase().as_str() {
                "join" => "Join".into(),
                "stickyjoin" => "StickyJoin".into(),
                "provision" => "Provision".into(),
                "joinnoflow" => "JoinNoFlow".into(),
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
        self.rules.pending.push(r);
        self.rules.current = Some(idx);
        self.changes += 1;
        self.out_variable(&b, V::Rule(idx), &ctx)?;
        Ok(vec![V::Rule(idx)])
    }

    /// The connector `-Connector` denotes: `(key, how)`.
    fn connector_of(&mut self, a: &Arg, ctx: &str) -> R<Option<(String, ConnectorRef)>> {
        let mut v = a.value.clone().unwrap_or(V::Null);
        while let V::Array(mut xs) = v {
            if xs.len() != 1 {
                self.unmapped(
                    ctx,
                    format!(
                        "`-Connector` of New-ADSyncRule expects one value, got {}: `{}`",
                        xs.len(),
                        first_line(&a.text)
                    ),
                );
                return Ok(None);
            }
            v = xs.pop().unwrap_or(V::Null);
        }
        let expression = |written: String, origin: String, kind: Option<&'static str>| {
            Some((
                written.clone(),
                ConnectorRef::Expression {
                    written,
                    origin,
                    kind: kind.map(str::to_string),
                },
            ))
        };
        let written = first_line(&a.text);
        Ok(match v {
            V::Null => None,
            V::Conn(Conn::Id(g)) => Some((g, ConnectorRef::Id)),
            V::Conn(Conn::Name(n)) => Some((n.clone(), ConnectorRef::Name(n))),
            V::Conn(Conn::Unresolved {
                written,
                line,
                kind,
            }) => expression(written, format!("line {line}"), kind),
            V::Conns { written, line } => expression(written, format!("line {line}"), None),
            V::Unknown(u) => match &u.var {
                Some(var) => expression(format!("${var}"), u.what.clone(), None),
                None => expression(written, u.what.clone(), None),
            },
            other => match text_of(&other) {
                // A GUID is an identifier; other text is taken as the connector's name.
                Some(t) if looks_like_guid(&t) => Some((normalize_guid(&t), ConnectorRef::Id)),
                Some(t) if !t.trim().is_empty() => Some((t.clone(), ConnectorRef::Name(t))),
                _ => {
                    self.unmapped(
                        ctx,
                        format!(
                            "`-Connector` of New-ADSyncRule is `{written}`, {}, not a connector",
                            other.kind()
                        ),
                    );
                    None
                }
            },
        })
    }

    fn add_flow(&mut self, cmd: &Command, input: Option<Vec<V>>) -> R<Vec<V>> {
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
        let Some((rule, ctx)) = self.rule_argument(&b, CMD, input.as_ref())? else {
            return Ok(Vec::new());
        };
        let out = vec![V::Rule(rule)];
        let Some(target) = self.string(&b, "Destination", &ctx)? else {
            self.unmapped(
                &ctx,
                format!("{CMD} without -Destination; flow not imported"),
            );
            return Ok(out);
        };
        let sources = match b.get("Source") {
            Some(a) => {
                let a = a.clone();
                match self.strings_of(&a, CMD, "Source", &ctx)? {
                    Some(s) => Some(s),
                    None => {
                        self.unmapped(
                            &ctx,
                            format!("the -Source of the flow to `{target}` is not known; flow not imported"),
                        );
                        return Ok(out);
                    }
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
                        return Ok(out);
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
                    return Ok(out);
                }
                sources[0].clone()
            }
            FlowKind::Constant => match (sources.as_slice(), &expression) {
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
                    return Ok(out);
                }
                (many, _) => {
                    self.unmapped(
                        &ctx,
                        format!(
                            "Constant flow to `{target}` has {} -Source values; flow not imported",
                            many.len()
                        ),
                    );
                    return Ok(out);
                }
            },
            FlowKind::Expression => {
                match expression {
                    Some(e) => e,
                    None => {
                        self.unmapped(
                        &ctx,
                        format!("Expression flow to `{target}` has no -Expression; flow not imported"),
                    );
                        return Ok(out);
                    }
                }
            }
        };
        let merge = self
            .string(&b, "ValueMergeType", &ctx)?
            .unwrap_or_else(|| "Update".into());
        let execute_once = self.switch(&b, "ExecuteOnce", &ctx)?;
        self.rules.pending[rule].flows.push(Flow {
            target,
            kind,
            source,
            merge,
            execute_once,
        });
        self.changed(rule);
        Ok(out)
    }

    fn new_object(&mut self, cmd: &Command) -> R<Vec<V>> {
        const CMD: &str = "New-Object";
        let b = self.bind(
            cmd,
            CMD,
            &[],
            &["TypeName", "ArgumentList", "OutVariable", "Property"],
            &["TypeName", "ArgumentList"],
        )?;
        let ctx = self.context(None);
        self.report(&ctx, b.problems.clone());
        let type_name = self.string(&b, "TypeName", &ctx)?.unwrap_or_default();
        let short = type_name
            .rsplit('.')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_scope = type_name.eq_ignore_ascii_case(SCOPE_CONDITION) || short == "scopecondition";
        let is_join = type_name.eq_ignore_ascii_case(JOIN_CONDITION) || short == "joincondition";
        let value = if !is_scope && !is_join {
            if b.has("OutVariable") {
                self.unmapped(&ctx, format!("New-Object of unknown type `{type_name}`"));
            }
            V::unknown(format!(
                "a `{type_name}` object (line {}), which is not modelled",
                cmd.loc.pos.line
            ))
        } else {
            let arg = b.get("ArgumentList").cloned();
            let (values, texts, positions) = match &arg {
                Some(a) => {
                    let vs = items(a.value.clone().unwrap_or(V::Null));
                    // The texts of a literal list's items, for messages.
                    let texts = cmd
                        .elems
                        .iter()
                        .find_map(|e| match e {
                            Elem::Arg(Expr {
                                kind: ExprKind::List(xs),
                                loc,
                            })
                            | Elem::Param {
                                value:
                                    Some(Expr {
                                        kind: ExprKind::List(xs),
                                        loc,
                                    }),
                                ..
                            } if loc.text() == a.text => Some(
                                xs.iter()
                                    .map(|x| (x.loc.text().to_string(), x.loc.pos))
                                    .collect::<Vec<_>>(),
                            ),
                            _ => None,
                        })
                        .filter(|t| t.len() == vs.len())
                        .unwrap_or_else(|| vec![(a.text.clone(), a.pos); vs.len()]);
                    let (t, p): (Vec<String>, Vec<Pos>) = texts.into_iter().unzip();
                    (vs, t, p)
                }
                None => (Vec::new(), Vec::new(), Vec::new()),
            };
            self.condition_object(is_join, values, &texts, &positions, cmd.loc.pos)?
        };
        self.out_variable(&b, value.clone(), &ctx)?;
        Ok(vec![value])
    }

    /// A scope condition (attribute, value, operator) or a join condition (csAttribute,
    /// mvAttribute, caseSensitive) from its constructor arguments.
    pub fn condition_object(
        &mut self,
        join: bool,
        args: Vec<V>,
        texts: &[String],
        positions: &[Pos],
        pos: Pos,
    ) -> R<V> {
        let ctx = self.context(None);
        let short = if join {
            "JoinCondition"
        } else {
            "ScopeCondition"
        };
        if args.len() != 3 {
            let shape = if join {
                "csAttribute, mvAttribute, caseSensitive"
            } else {
                "attribute, value, operator"
            };
            self.unmapped(
                &ctx,
                format!("{short} needs 3 arguments ({shape}), got {}", args.len()),
            );
            return Ok(V::unknown(format!(
                "an incomplete {short} (line {})",
                pos.line
            )));
        }
        let arg = |k: usize| Arg {
            pos: positions.get(k).copied().unwrap_or(pos),
            value: Some(args[k].clone()),
            text: texts.get(k).cloned().unwrap_or_default(),
        };
        let invalid = V::unknown(format!(
            "a {short} that could not be read (line {})",
            pos.line
        ));
        if join {
            let cs = self.string_of(&arg(0), short, "ArgumentList", &ctx)?;
            let mv = self.string_of(&arg(1), short, "ArgumentList", &ctx)?;
            let case = self.bool_of(&arg(2), short, "ArgumentList", &ctx)?;
            Ok(match (cs, mv, case) {
                (Some(cs_attribute), Some(mv_attribute), Some(case_sensitive)) => {
                    V::Join(JoinCondition {
                        cs_attribute,
                        mv_attribute,
                        case_sensitive,
                    })
                }
                _ => invalid,
            })
        } else {
            let attribute = self.string_of(&arg(0), short, "ArgumentList", &ctx)?;
            let value = self.string_of(&arg(1), short, "ArgumentList", &ctx)?;
            let operator = self.string_of(&arg(2), short, "ArgumentList", &ctx)?;
            Ok(match (attribute, operator) {
                (Some(attribute), Some(operator)) => V::Scope(ScopeClause {
                    attribute,
                    operator,
                    value: value.filter(|v| !v.is_empty()),
                }),
                _ => invalid,
            })
        }
    }

    fn add_group(&mut self, cmd: &Command, join: bool, input: Option<Vec<V>>) -> R<Vec<V>> {
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
        let Some((rule, ctx)) = self.rule_argument(&b, display, input.as_ref())? else {
            return Ok(Vec::new());
        };
        let out = vec![V::Rule(rule)];
        let arg = b.get(list).cloned();
        let values = arg
            .as_ref()
            .map(|a| items(a.value.clone().unwrap_or(V::Null)))
            .unwrap_or_default();
        let kind = if join { "join" } else { "scope" };
        if values.is_empty() {
            self.unmapped(
                &ctx,
                format!("{display} without conditions; group not imported"),
            );
            return Ok(out);
        }
        // The texts of the items as written, when the list is literal.
        let texts: Vec<(String, Pos)> = cmd
            .elems
            .iter()
            .find_map(|e| match e {
                Elem::Param {
                    name,
                    value: Some(x),
                    ..
                } if name.eq_ignore_ascii_case(list) => Some(x),
                _ => None,
            })
            .or_else(|| {
                let mut it = cmd.elems.iter();
                while let Some(e) = it.next() {
                    if let Elem::Param {
                        name, value: None, ..
                    } = e
                        && name.eq_ignore_ascii_case(list)
                        && let Some(Elem::Arg(x)) = it.next()
                    {
                        return Some(x);
                    }
                }
                None
            })
            .map(literal_items)
            .filter(|t| t.len() == values.len())
            .unwrap_or_else(|| {
                let a = arg.as_ref();
                vec![
                    (
                        a.map(|a| a.text.clone()).unwrap_or_default(),
                        a.map_or(cmd.loc.pos, |a| a.pos)
                    );
                    values.len()
                ]
            });
        let mut scope = Vec::new();
        let mut joins = Vec::new();
        let mut ok = true;
        for (v, (text, pos)) in values.into_iter().zip(texts) {
            match (v, join) {
                (V::Scope(c), false) => scope.push(c),
                (V::Join(c), true) => joins.push(c),
                (V::Unknown(u), _) if u.unassigned => {
                    return Err(Stop::Fatal(self.locate(
                        pos,
                        format!(
                            "variable `${}` is used before it is assigned",
                            u.var.as_deref().unwrap_or("")
                        ),
                    )));
                }
                (found, _) => {
                    let what = match &found {
                        V::Unknown(u) if u.what.starts_with("a ") => u.what.clone(),
                        V::Str(_) | V::Int(_) | V::Bool(_) | V::Null => "not a condition".into(),
                        other => other.kind().to_string(),
                    };
                    self.unmapped(
                        &ctx,
                        format!(
                            "{kind} condition `{}` of {display} is {what}; group not imported",
                            first_line(&text)
                        ),
                    );
                    ok = false;
                }
            }
        }
        if ok {
            let r = &mut self.rules.pending[rule];
            if join {
                r.joins.push(joins);
            } else {
                r.scope.push(scope);
            }
            self.changed(rule);
        }
        Ok(out)
    }

    fn add_rule(&mut self, cmd: &Command, input: Option<Vec<V>>) -> R<Vec<V>> {
        const CMD: &str = "Add-ADSyncRule";
        let b = self.bind(
            cmd,
            CMD,
            &[],
            &["SynchronizationRule"],
            &["SynchronizationRule"],
        )?;
        let target = match (b.get("SynchronizationRule"), &input) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(i)) => Some(Arg {
                pos: cmd.loc.pos,
                value: Some(V::Array(i.clone())),
                text: "(pipeline input)".into(),
            }),
            (None, None) => None,
        };
        let Some(idx) = self.rule_of(target.as_ref(), CMD)? else {
            let ctx = self.context(None);
            self.report(&ctx, b.problems);
            return Ok(Vec::new());
        };
        let ctx = self.context(Some(idx));
        self.report(&ctx, b.problems);
        self.rules.adds.push((idx, self.rules.order));
        self.changes += 1;
        if self.rules.current == Some(idx) {
            self.rules.current = None;
        }
        let r = &mut self.rules.pending[idx];
        r.added_at = Some(cmd.loc.pos);
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
            Some((connector, connector_ref)),
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
            return Ok(vec![V::Rule(idx)]);
        };
        let rule = Rule {
            id: r.id,
            name,
            description: r.description,
            immutable_tag: r.immutable_tag,
            direction,
            disabled: r.disabled,
            connector,
            connector_ref,
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
            Some(o) => self.rules.out[o] = rule,
            None => {
                self.rules.pending[idx].out = Some(self.rules.out.len());
                self.rules.out.push(rule);
            }
        }
        Ok(vec![V::Rule(idx)])
    }

    fn get_rule(&mut self, cmd: &Command) -> R<Vec<V>> {
        // Arguments are evaluated only for the identifier; the rest does not matter.
        let mut id = None;
        let mut i = 0;
        while i < cmd.elems.len() {
            if let Elem::Param { name, value, .. } = &cmd.elems[i]
                && name.eq_ignore_ascii_case("Identifier")
            {
                let x = match value {
                    Some(x) => Some(x),
                    None => match cmd.elems.get(i + 1) {
                        Some(Elem::Arg(x)) => {
                            i += 1;
                            Some(x)
                        }
                        _ => None,
                    },
                };
                if let Some(x) = x {
                    let v = self.eval(x)?;
                    id = text_of(&v)
                        .filter(|t| !t.is_empty())
                        .map(|t| normalize_guid(&t));
                }
            }
            i += 1;
        }
        Ok(vec![V::ServerRule(id)])
    }

    fn get_connector(&mut self, cmd: &Command) -> R<Vec<V>> {
        let b = self.bind(
            cmd,
            "Get-ADSyncConnector",
            &[],
            &["Name", "Identifier"],
            &["Name"],
        )?;
        let unresolved = || {
            V::Conn(Conn::Unresolved {
                written: first_line(cmd.loc.text()),
                line: cmd.loc.pos.line,
                kind: None,
            })
        };
        let value = match (b.get("Name"), b.get("Identifier")) {
            (Some(a), _) => match a.value.as_ref().and_then(text_of) {
                Some(n) => V::Conn(Conn::Name(n)),
                None => unresolved(),
            },
            (None, Some(a)) => match a.value.as_ref().and_then(text_of) {
                Some(g) => V::Conn(Conn::Id(normalize_guid(&g))),
                None => unresolved(),
            },
            (None, None) => V::Conns {
                written: first_line(cmd.loc.text()),
                line: cmd.loc.pos.line,
            },
        };
        Ok(vec![value])
    }

    /// `Get-ADSyncConnector | Where-Object { ... }`: the filter's comparisons of `$_.Name`
    /// or `$_.Identifier` with a value name the connector; comparisons of the type, subtype
    /// or a name pattern give its kind.
    pub fn connector_filter(&mut self, cmd: &Command, written: &str) -> R<Conn> {
        let mut comparisons: Vec<(String, String, Expr)> = Vec::new();
        for e in &cmd.elems {
            if let Elem::Arg(Expr {
                kind: ExprKind::ScriptBlock(b),
                ..
            })
            | Elem::Param {
                value:
                    Some(Expr {
                        kind: ExprKind::ScriptBlock(b),
                        ..
                    }),
                ..
            } = e
            {
                for s in &b.stmts {
                    if let super::parse::StmtKind::Pipeline {
                        input: Some(x),
                        commands,
                    } = &s.kind
                        && commands.is_empty()
                    {
                        collect_comparisons(x, &mut comparisons);
                    }
                }
            }
        }
        // The simplified syntax: `Where-Object Name -eq 'x'`.
        let mut prop = None;
        let mut it = cmd.elems.iter().peekable();
        while let Some(e) = it.next() {
            match e {
                Elem::Arg(Expr {
                    kind: ExprKind::Word(w) | ExprKind::Str(w),
                    ..
                }) if prop.is_none() => prop = Some(w.clone()),
                Elem::Param { name, value, .. } => {
                    let v = match value {
                        Some(v) => Some(v.clone()),
                        None => match it.peek() {
                            Some(Elem::Arg(x)) => {
                                let x = x.clone();
                                it.next();
                                Some(x)
                            }
                            _ => None,
                        },
                    };
                    if let (Some(p), Some(v)) = (&prop, v) {
                        comparisons.push((p.to_ascii_lowercase(), name.to_ascii_lowercase(), v));
                    }
                }
                _ => {}
            }
        }
        let mut kind = None;
        for (prop, op, value) in comparisons {
            let v = self.eval(&value)?;
            let Some(text) = text_of(&v) else { continue };
            let positive = matches!(
                op.as_str(),
                "eq" | "ieq" | "ceq" | "like" | "ilike" | "clike" | "match" | "imatch" | "cmatch"
            );
            let exact = matches!(op.as_str(), "eq" | "ieq" | "ceq")
                || (op.ends_with("like") && positive && !text.contains(['*', '?']));
            match prop.as_str() {
                "name" | "connectorname" if exact => return Ok(Conn::Name(text)),
                "identifier" | "id" if exact => return Ok(Conn::Id(normalize_guid(&text))),
                "name" | "type" | "connectortypename" | "subtype" | "category" => {
                    if let Some(k) = kind_hint(&text) {
                        kind = Some(match (positive, k) {
                            (true, k) => k,
                            (false, "ad") => "entra",
                            (false, _) => "ad",
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(Conn::Unresolved {
            written: format!("{written} | {}", first_line(cmd.loc.text())),
            line: cmd.loc.pos.line,
            kind,
        })
    }

    fn remove_rule(&mut self, cmd: &Command, input: Option<Vec<V>>) -> R<Vec<V>> {
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
        let target = match (b.get("Identifier"), b.get("SynchronizationRule"), input) {
            (Some(a), _, _) => {
                let a = a.clone();
                match self.string_of(&a, CMD, "Identifier", &ctx)? {
                    Some(id) => RemovalTarget::Id(normalize_guid(&id)),
                    None => return Ok(Vec::new()),
                }
            }
            (None, Some(a), _) => {
                let a = a.clone();
                match self.removal_of(&a, &ctx)? {
                    Some(t) => t,
                    None => return Ok(Vec::new()),
                }
            }
            (None, None, Some(i)) => {
                let a = Arg {
                    pos: cmd.loc.pos,
                    value: Some(V::Array(i)),
                    text: "(pipeline input)".into(),
                };
                match self.removal_of(&a, &ctx)? {
                    Some(t) => t,
                    None => return Ok(Vec::new()),
                }
            }
            (None, None, None) => {
                self.unmapped(
                    &ctx,
                    format!("{CMD} without -Identifier or -SynchronizationRule"),
                );
                return Ok(Vec::new());
            }
        };
        self.rules.removals.push(Removal {
            target,
            order: self.rules.order,
            pos: cmd.loc.pos,
            context: ctx,
        });
        Ok(Vec::new())
    }

    /// What `Remove-ADSyncRule -SynchronizationRule X` (or `X | Remove-ADSyncRule`) removes.
    fn removal_of(&mut self, a: &Arg, ctx: &str) -> R<Option<RemovalTarget>> {
        let mut v = a.value.clone().unwrap_or(V::Null);
        loop {
            match v {
                V::Array(mut xs) if xs.len() == 1 => v = xs.pop().unwrap_or(V::Null),
                other => {
                    v = other;
                    break;
                }
            }
        }
        Ok(match v {
            V::ServerRule(Some(id)) => Some(RemovalTarget::Id(id)),
            V::Str(s) => Some(RemovalTarget::Id(normalize_guid(&s))),
            V::ServerRule(None) => {
                self.unmapped(
                    ctx,
                    format!(
                        "Remove-ADSyncRule of `{}`, rules read from the server without -Identifier, is not carried over",
                        first_line(&a.text)
                    ),
                );
                None
            }
            _ => self
                .rule_of(Some(a), "Remove-ADSyncRule")?
                .map(RemovalTarget::Pending),
        })
    }

    pub fn finish(mut self) -> Result<Config, super::LocErr> {
        for i in 0..self.rules.pending.len() {
            let r = &self.rules.pending[i];
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
        let removals = std::mem::take(&mut self.rules.removals);
        for r in removals {
            let replaced = self.rules.adds.iter().any(|&(rule, order)| {
                order > r.order
                    && match &r.target {
                        RemovalTarget::Pending(p) => *p == rule,
                        RemovalTarget::Id(id) => self.rules.pending[rule].id == *id,
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
            rules: self.rules.out,
            unmapped: self.unmapped,
            notes: self.notes,
            ..Config::default()
        })
    }
}

/// The items of a literal list argument with their texts and positions.
fn literal_items(x: &Expr) -> Vec<(String, Pos)> {
    match &x.kind {
        ExprKind::List(xs) => xs
            .iter()
            .map(|x| (x.loc.text().to_string(), x.loc.pos))
            .collect(),
        ExprKind::ArraySub(b) => {
            let mut out = Vec::new();
            for s in &b.stmts {
                if let super::parse::StmtKind::Pipeline {
                    input: Some(e),
                    commands,
                } = &s.kind
                    && commands.is_empty()
                {
                    out.extend(literal_items(e));
                } else {
                    out.push((s.loc.text().to_string(), s.loc.pos));
                }
            }
            out
        }
        _ => vec![(x.loc.text().to_string(), x.loc.pos)],
    }
}

/// `$_.Prop op value` comparisons in a filter expression, joined by `-and`/`-or`.
fn collect_comparisons(x: &Expr, out: &mut Vec<(String, String, Expr)>) {
    let ExprKind::Binary(op, l, r) = &x.kind else {
        if let ExprKind::Sub(b) = &x.kind {
            for s in &b.stmts {
                if let super::parse::StmtKind::Pipeline {
                    input: Some(e),
                    commands,
                } = &s.kind
                    && commands.is_empty()
                {
                    collect_comparisons(e, out);
                }
            }
        }
        return;
    };
    if matches!(op.as_str(), "and" | "or") {
        collect_comparisons(l, out);
        collect_comparisons(r, out);
        return;
    }
    let prop = |e: &Expr| match &e.kind {
        ExprKind::Member(obj, p) => match &obj.kind {
            ExprKind::Var(v) if v == "_" || v.eq_ignore_ascii_case("PSItem") => {
                Some(p.to_ascii_lowercase())
            }
            _ => None,
        },
        _ => None,
    };
    if let Some(p) = prop(l) {
        out.push((p, op.clone(), (**r).clone()));
    } else if let Some(p) = prop(r) {
        out.push((p, op.clone(), (**l).clone()));
    }
}
