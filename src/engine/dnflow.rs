//! Validation of the DNs that `dn` flows produce.
//!
//! Consumes: a `dn` flow's lowered expression (when the plan is built) and, at sync time, the
//! DN it produced with the object and evaluation context it was computed from. Produces:
//! [`DnTemplate`] — the `&` chains of the expression (the expression itself, or value branches
//! of `IIF` and `Switch`) with the operands that sit in an RDN *value* position, as in
//! `"CN=" & [displayName] & ",OU=Users," & %Domain.LDAP%` — and [`check`]'s verdict: the DN
//! parses, and no value-position operand brings an unescaped DN special (`,` `+` `;` ...) that
//! would change the DN's structure (a `displayName` of `Eve,OU=Admins` must not provision
//! under `OU=Admins`). Operands at the start of an RDN (`EscapeDNComponent("CN=" & [x])`,
//! `%Domain.LDAP%`) are trusted to be whole RDNs.
//!
//! The check reads the operands' values itself: attributes, parameters and constants
//! directly, other operands with the reference interpreter, so it is the same whichever engine
//! evaluated the flow. A chain inside `IIF`/`Switch` is checked when its concatenated operands
//! equal the produced DN (it is the branch that produced it).

use crate::dn::{Dn, value_piece_problem};
use crate::eval::Ctx;
use crate::eval::interp::{self, Object};
use crate::ir::BinOp;
use crate::ir::{Expr, Node};
use crate::value::Value;
use std::sync::Arc;

/// The `&` chains of a `dn` flow that have operands in RDN value positions.
#[derive(Debug, Clone)]
pub struct DnTemplate {
    chains: Vec<Chain>,
}

#[derive(Debug, Clone)]
struct Chain {
    /// The chain is the whole expression (it produced the DN); otherwise it is a branch.
    top: bool,
    operands: Vec<(Expr, Role)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A string constant: part of the DN's skeleton.
    Literal,
    /// An operand inside an RDN value. `at_start`: it begins the value; `quoted`: inside a
    /// quoted value.
    Value { at_start: bool, quoted: bool },
    /// An operand at the start of an RDN: whole RDNs, trusted.
    Rdns,
}

/// Where the skeleton scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    RdnStart,
    Type,
    Value { started: bool },
    Quoted,
}

/// The template of a `dn` flow's expression; None when nothing in it can be checked beyond
/// the DN parsing.
pub fn template(e: &Expr) -> Option<DnTemplate> {
    let mut chains = Vec::new();
    collect(e, true, &mut chains);
    (!chains.is_empty()).then_some(DnTemplate { chains })
}

fn collect(e: &Expr, top: bool, out: &mut Vec<Chain>) {
    match &e.node {
        Node::Binary(BinOp::Concat, _) => {
            let mut parts = Vec::new();
            flatten(e, &mut parts);
            if let Some(c) = chain(&parts, top) {
                out.push(c);
            }
        }
        Node::Iif(parts) => {
            collect(&parts[1], false, out);
            collect(&parts[2], false, out);
        }
        Node::Switch(items) => {
            for v in items.iter().skip(1).step_by(2) {
                collect(v, false, out);
            }
        }
        _ => {}
    }
}

fn flatten<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &e.node {
        Node::Binary(BinOp::Concat, sides) => {
            flatten(&sides[0], out);
            flatten(&sides[1], out);
        }
        _ => out.push(e),
    }
}

/// Classifies the operands of a chain by scanning its string constants as DN text; None when
/// the chain has no value-position operand or cannot be followed (an operand inside an
/// attribute type, an escape split across operands).
fn chain(parts: &[&Expr], top: bool) -> Option<Chain> {
    let mut at = At::RdnStart;
    let mut operands = Vec::with_capacity(parts.len());
    for p in parts {
        let role = match &p.node {
            Node::Const(Value::Str(s)) => {
                at = scan(s, at)?;
                Role::Literal
            }
            _ => {
                let role = match at {
                    At::RdnStart => Role::Rdns,
                    At::Type => return None,
                    At::Value { started } => Role::Value {
                        at_start: !started,
                        quoted: false,
                    },
                    At::Quoted => Role::Value {
                        at_start: false,
                        quoted: true,
                    },
                };
                if at != At::Quoted {
                    at = At::Value { started: true };
                }
                role
            }
        };
        operands.push(((*p).clone(), role));
    }
    operands
        .iter()
        .any(|(_, r)| matches!(r, Role::Value { .. }))
        .then_some(Chain { top, operands })
}

/// Follows DN text from state `at`; None when an escape does not complete in the text.
fn scan(s: &str, mut at: At) -> Option<At> {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        at = match (at, c) {
            (At::Value { .. } | At::Quoted, '\\') => {
                let e = chars.next()?;
                if e.is_ascii_hexdigit() && chars.peek().is_some_and(char::is_ascii_hexdigit) {
                    chars.next();
                }
                if at == At::Quoted {
                    At::Quoted
                } else {
                    At::Value { started: true }
                }
            }
            (At::Quoted, '"') => At::Value { started: true },
            (At::Quoted, _) => At::Quoted,
            (_, ',' | ';' | '+') => At::RdnStart,
            (At::RdnStart, ' ') => At::RdnStart,
            (At::RdnStart | At::Type, '=') => At::Value { started: false },
            (At::RdnStart | At::Type, _) => At::Type,
            (At::Value { started: false }, ' ') => At::Value { started: false },
            (At::Value { started: false }, '"') => At::Quoted,
            (At::Value { .. }, _) => At::Value { started: true },
        };
    }
    Some(at)
}

/// Checks a DN a `dn` flow produced from `obj`: it must parse, and the operands of the
/// template in RDN value positions must not change its structure. `names` are the attribute
/// names of the flow's source object type by slot (for messages). The error is the message.
pub fn check(
    template: Option<&DnTemplate>,
    produced: &str,
    ctx: &mut Ctx,
    obj: Object<'_>,
    names: &[Arc<str>],
) -> Result<(), String> {
    if let Some(t) = template {
        check_template(t, produced, ctx, obj, names)?;
    }
    match Dn::parse(produced) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{produced:?} is not a valid DN: {e}")),
    }
}

/// The operands of the chain that produced the DN, in RDN value positions, must not bring DN
/// specials (checked first: its message names the operand).
fn check_template(
    t: &DnTemplate,
    produced: &str,
    ctx: &mut Ctx,
    obj: Object<'_>,
    names: &[Arc<str>],
) -> Result<(), String> {
    for c in &t.chains {
        let mut values = Vec::with_capacity(c.operands.len());
        let mut readable = true;
        for (e, _) in &c.operands {
            match operand(e, ctx, obj) {
                Some(v) => values.push(v),
                None => {
                    readable = false;
                    break;
                }
            }
        }
        if !readable {
            continue;
        }
        if !c.top {
            // A branch: it is the one that produced the DN when its operands give the DN.
            let mut text = String::with_capacity(produced.len());
            let mut single = true;
            for v in &values {
                match v {
                    Value::Null => {}
                    v if v.values().len() > 1 => single = false,
                    v => match v.values().first().and_then(render) {
                        Some(s) => text.push_str(&s),
                        None => single = false,
                    },
                }
            }
            if !single || text != produced {
                continue;
            }
        }
        for ((e, role), v) in c.operands.iter().zip(&values) {
            let Role::Value { at_start, quoted } = *role else {
                continue;
            };
            for x in v.values() {
                let Some(piece) = render(x) else { continue };
                if let Some((offset, problem)) = value_piece_problem(&piece, at_start, quoted) {
                    return Err(format!(
                        "the value {piece:?} of {} has {problem} at byte {offset} and would \
                         change the structure of the DN {produced:?}; build the RDN with \
                         EscapeDNComponent (e.g. EscapeDNComponent(\"CN=\" & {}))",
                        describe(e, names),
                        describe(e, names)
                    ));
                }
            }
        }
        return Ok(());
    }
    Ok(())
}

/// An operand's value: attributes, parameters and constants read directly, anything else
/// evaluated by the interpreter (None when it cannot be evaluated on its own).
fn operand(e: &Expr, ctx: &mut Ctx, obj: Object<'_>) -> Option<Value> {
    match &e.node {
        Node::Const(v) => Some(v.clone()),
        Node::Attr(slot) => Some(
            obj.attrs
                .get(*slot as usize)
                .cloned()
                .unwrap_or(Value::Null),
        ),
        Node::Param(name) => Some(ctx.param(name).cloned().unwrap_or(Value::Null)),
        _ => interp::eval(ctx, e, obj).ok(),
    }
}

/// The text of a scalar as `&` writes it (the interpreter's own rendering).
fn render(v: &Value) -> Option<String> {
    match v {
        Value::Str(_)
        | Value::Ref(_)
        | Value::Num(_)
        | Value::Bool(_)
        | Value::Dt(_)
        | Value::Bin(_) => Some(interp::render_scalar(v)),
        _ => None,
    }
}

/// How an operand is named in messages.
fn describe(e: &Expr, names: &[Arc<str>]) -> String {
    match &e.node {
        Node::Attr(slot) => match names.get(*slot as usize) {
            Some(n) => format!("[{n}]"),
            None => "an attribute".into(),
        },
        Node::Param(name) => format!("%{name}%"),
        Node::Call { name, .. } => format!("{name}(...)"),
        _ => "an operand".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::adhoc;

    /// Evaluates a `dn` flow expression on `name` and checks what it produced: Ok, or the
    /// error message.
    fn run(expr: &str, name: &str) -> Result<String, String> {
        let attrs = [
            ("displayName".to_string(), Value::str(name)),
            ("id".to_string(), Value::str("7")),
        ];
        let params = [("Domain.LDAP".to_string(), Value::str("DC=contoso,DC=com"))];
        let p = adhoc::prepare("t.idf", expr, &attrs, &params)
            .unwrap_or_else(|(_, d)| panic!("{expr}: {d:?}"));
        let mut ctx = Ctx::fixed();
        ctx.params = params.to_vec();
        let produced = p.eval(&mut ctx).unwrap_or_else(|e| panic!("{expr}: {e:?}"));
        let produced = produced.as_str().unwrap_or_default().to_string();
        let names: [Arc<str>; 2] = ["displayName".into(), "id".into()];
        let obj = Object {
            attrs: &p.values,
            imported: &p.values,
        };
        check(template(&p.expr).as_ref(), &produced, &mut ctx, obj, &names).map(|()| produced)
    }

    /// (expression, displayName, Ok(produced DN) or Err(parts of the message))
    #[allow(clippy::type_complexity)]
    const CASES: &[(&str, &str, Result<&str, &[&str]>)] = &[
        (
            r#""CN=" & [displayName] & ",OU=Users," & %Domain.LDAP%"#,
            "Ann Lee",
            Ok("CN=Ann Lee,OU=Users,DC=contoso,DC=com"),
        ),
        (
            r#""CN=" & [displayName] & ",OU=Users," & %Domain.LDAP%"#,
            "Eve,OU=Admins",
            Err(&[
                "\"Eve,OU=Admins\" of [displayName]",
                "unescaped `,` at byte 3",
                "EscapeDNComponent",
            ]),
        ),
        (
            r#""CN=" & [displayName] & ",OU=Users," & %Domain.LDAP%"#,
            "Lee\\, Ann",
            Ok("CN=Lee\\, Ann,OU=Users,DC=contoso,DC=com"),
        ),
        (
            r#""CN=" & [displayName] & ",OU=Users""#,
            "a+sn=b",
            Err(&["unescaped `+`"]),
        ),
        (
            r#""CN=" & [displayName] & ",OU=Users""#,
            "x\\",
            Err(&["trailing `\\`"]),
        ),
        (
            r#""CN=" & [displayName] & ",OU=Users""#,
            "#1",
            Err(&["leading `#`"]),
        ),
        (
            r#""CN=x" & [displayName] & ",OU=Users""#,
            "#1",
            Ok("CN=x#1,OU=Users"),
        ),
        (
            r#"EscapeDNComponent("CN=" & [displayName]) & ",OU=Users," & %Domain.LDAP%"#,
            "Eve,OU=Admins",
            Ok("CN=Eve\\,OU=Admins,OU=Users,DC=contoso,DC=com"),
        ),
        (
            r#""CN=" & EscapeDNComponent([displayName]) & ",OU=Users""#,
            "Lee, Ann",
            Ok("CN=Lee\\, Ann,OU=Users"),
        ),
        // EscapeDNComponent keeps what precedes a `=`: as a value it does not make it safe.
        (
            r#""CN=" & EscapeDNComponent([displayName]) & ",OU=Users""#,
            "Eve,OU=Admins",
            Err(&["EscapeDNComponent(...)", "unescaped `,`"]),
        ),
        (
            r#""CN=" & Trim([displayName]) & ",OU=Users""#,
            " a,b ",
            Err(&["Trim(...)"]),
        ),
        (
            r#"IIF(IsPresent([displayName]), "CN=" & [displayName] & ",OU=Users", "CN=" & [id])"#,
            "Eve,OU=Admins",
            Err(&["[displayName]"]),
        ),
        (
            r#"IIF(IsPresent([displayName]), "CN=" & [displayName] & ",OU=Users", "CN=" & [id])"#,
            "Ann",
            Ok("CN=Ann,OU=Users"),
        ),
        (
            r#""OU=\"" & [displayName] & "\",DC=x""#,
            "a,b",
            Ok("OU=\"a,b\",DC=x"),
        ),
        (
            r#""OU=\"" & [displayName] & "\",DC=x""#,
            "a\"b",
            Err(&["unescaped `\"`"]),
        ),
        (
            r#""CN=" & [displayName] & ",,DC=x""#,
            "a",
            Err(&["is not a valid DN: at byte 5"]),
        ),
        (r#"[displayName]"#, "CN=a,,b", Err(&["is not a valid DN"])),
        (r#"[displayName]"#, "CN=a,OU=b", Ok("CN=a,OU=b")),
    ];

    #[test]
    fn produced_dns_are_checked() {
        for (expr, name, want) in CASES {
            let got = run(expr, name);
            match (want, &got) {
                (Ok(dn), Ok(g)) => assert_eq!(g, dn, "{expr} with {name:?}"),
                (Err(parts), Err(m)) => {
                    for p in *parts {
                        assert!(m.contains(p), "{expr} with {name:?}: {m:?} lacks {p:?}");
                    }
                }
                _ => panic!("{expr} with {name:?}: expected {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn scanning_finds_value_positions() {
        let cases: &[(&str, At, Option<At>)] = &[
            ("CN=", At::RdnStart, Some(At::Value { started: false })),
            ("CN= ", At::RdnStart, Some(At::Value { started: false })),
            ("CN={", At::RdnStart, Some(At::Value { started: true })),
            (
                ",OU=Users,",
                At::Value { started: true },
                Some(At::RdnStart),
            ),
            (
                ",OU=",
                At::Value { started: true },
                Some(At::Value { started: false }),
            ),
            ("C", At::RdnStart, Some(At::Type)),
            ("\\", At::Value { started: true }, None),
            (
                "\\,x",
                At::Value { started: false },
                Some(At::Value { started: true }),
            ),
            (
                "\\2C",
                At::Value { started: false },
                Some(At::Value { started: true }),
            ),
            ("\"a,", At::Value { started: false }, Some(At::Quoted)),
            ("\",DC=x", At::Quoted, Some(At::Value { started: true })),
            (
                "+SN=",
                At::Value { started: true },
                Some(At::Value { started: false }),
            ),
        ];
        for (text, from, want) in cases {
            assert_eq!(scan(text, *from), *want, "{text:?} from {from:?}");
        }
    }
}
