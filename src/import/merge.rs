//! Merges imported rules into the rule files of an existing bundle.
//!
//! Consumes: the rule files the writer generated for a script (`writer::OutFile`, one per
//! direction, connector and object type) and the `.idf` files already in the bundle (paths
//! relative to it). Produces: [`Merged`]: the files to write — an existing rule of the same
//! name is replaced where it is, in its file, and every other rule, comment and file stays as
//! it was; a new rule is added after the rules of its group's file — and one [`Change`] per
//! imported rule (added, replaced with what changed, or unchanged). Rule names are unique in
//! the result, or the merge reports why not.

use super::writer::OutFile;
use crate::source::FileId;
use crate::syntax::{self, ast};
use std::collections::BTreeMap;

/// A file of the existing bundle.
#[derive(Debug, Clone)]
pub struct Existing {
    /// Relative to the bundle, with `/` separators.
    pub path: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    /// Replaced an existing rule of the same name: what differs, one line each.
    Replaced(Vec<String>),
    /// The existing rule of the same name is the same rule.
    Unchanged,
}

/// What the import does to one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub rule: String,
    /// The file the rule is in after the merge.
    pub path: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, Default)]
pub struct Merged {
    /// Files to write (new, or existing ones with changed text).
    pub files: Vec<OutFile>,
    pub changes: Vec<Change>,
    /// Why the merge cannot be written (unparsable files it must change, duplicate names).
    pub errors: Vec<String>,
}

impl Merged {
    /// Existing rules the merge replaces with a different rule.
    pub fn replaced(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| matches!(c.kind, ChangeKind::Replaced(_)))
            .count()
    }
}

struct Parsed {
    path: String,
    text: String,
    rules: Vec<ast::Rule>,
    ok: bool,
}

fn parse(path: &str, text: &str) -> Parsed {
    let (p, diags) = syntax::parse(FileId(0), text);
    let rules = p
        .file
        .items
        .into_iter()
        .filter_map(|i| match i {
            ast::Item::Rule(r) => Some(r),
            _ => None,
        })
        .collect();
    Parsed {
        path: path.to_string(),
        text: text.to_string(),
        rules,
        ok: diags.is_empty(),
    }
}

/// Merges `generated` rule files into `existing` bundle files.
pub fn merge(generated: &[OutFile], existing: &[Existing]) -> Merged {
    let mut out = Merged::default();
    let mut files: Vec<Parsed> = existing.iter().map(|e| parse(&e.path, &e.text)).collect();
    // Existing rules by name: (file, index in the file).
    let mut by_name: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    for (f, p) in files.iter().enumerate() {
        for (i, r) in p.rules.iter().enumerate() {
            by_name
                .entry(r.name.value.clone())
                .or_default()
                .push((f, i));
        }
    }
    // Edits per existing file: (span, new text); appends per file path.
    let mut edits: BTreeMap<usize, Vec<(std::ops::Range<usize>, String)>> = BTreeMap::new();
    let mut appends: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut imported: BTreeMap<String, usize> = BTreeMap::new();
    for g in generated.iter().filter(|g| g.path.ends_with(".idf")) {
        let new = parse(&g.path, &g.text);
        for r in &new.rules {
            let name = r.name.value.clone();
            let n = imported.entry(name.clone()).or_default();
            *n += 1;
            if *n > 1 {
                // Reported below; only the first is merged.
                continue;
            }
            let text = new.text[r.span.clone()].to_string();
            match by_name.get(&name).map(Vec::as_slice) {
                Some([(f, i)]) => {
                    let old = &files[*f].rules[*i];
                    let details = differences(old, r);
                    let kind = if details.is_empty() {
                        ChangeKind::Unchanged
                    } else {
                        edits.entry(*f).or_default().push((old.span.clone(), text));
                        ChangeKind::Replaced(details)
                    };
                    out.changes.push(Change {
                        rule: name,
                        path: files[*f].path.clone(),
                        kind,
                    });
                }
                Some(many) => {
                    let paths: Vec<&str> =
                        many.iter().map(|(f, _)| files[*f].path.as_str()).collect();
                    out.errors.push(format!(
                        "the bundle has {} rules named \"{name}\" ({}): the import cannot tell which to replace",
                        many.len(),
                        paths.join(", ")
                    ));
                }
                None => {
                    appends.entry(g.path.clone()).or_default().push(text);
                    out.changes.push(Change {
                        rule: name,
                        path: g.path.clone(),
                        kind: ChangeKind::Added,
                    });
                }
            }
        }
    }
    for (name, n) in &imported {
        if *n > 1 {
            out.errors.push(format!(
                "the import has {n} rules named \"{name}\": rule names must be unique"
            ));
        }
    }
    // Apply the edits to existing files, from the end so spans stay valid.
    for (f, mut list) in edits {
        let p = &mut files[f];
        if !p.ok {
            out.errors.push(format!(
                "{} does not parse; fix it before the import replaces rules in it",
                p.path
            ));
            continue;
        }
        list.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
        let mut text = p.text.clone();
        for (span, new) in list {
            text.replace_range(span, new.trim_end());
        }
        p.text = text;
        finish(&mut out, &p.path, p.text.clone(), true);
    }
    for (path, rules) in appends {
        let base = files.iter().find(|p| p.path == path);
        let (mut text, existed) = match base {
            Some(p) if !p.ok => {
                out.errors.push(format!(
                    "{path} does not parse; fix it before adding rules to it"
                ));
                continue;
            }
            Some(p) => {
                // The file may have been edited above.
                let current = out
                    .files
                    .iter()
                    .find(|f| f.path == path)
                    .map_or_else(|| p.text.clone(), |f| f.text.clone());
                (format!("{}\n", current.trim_end()), true)
            }
            None => (String::new(), false),
        };
        for r in rules {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(r.trim_end());
            text.push('\n');
        }
        finish(&mut out, &path, text, existed);
    }
    out
}

/// Formats a merged file and records it (replacing an earlier version of it).
fn finish(out: &mut Merged, path: &str, text: String, existed: bool) {
    match syntax::format(FileId(0), &text) {
        Ok(t) => {
            out.files.retain(|f| f.path != path);
            out.files.push(OutFile {
                path: path.to_string(),
                text: t,
            });
        }
        Err(_) => out.errors.push(if existed {
            format!("{path} does not format after the merge; nothing written")
        } else {
            format!("{path}: the generated rules do not format; nothing written")
        }),
    }
}

/// The settings, scope groups, join groups and flows of a rule, in canonical text.
#[derive(Default)]
struct Shape {
    settings: BTreeMap<&'static str, String>,
    scope: Vec<String>,
    joins: Vec<String>,
    flows: BTreeMap<String, String>,
}

fn shape(r: &ast::Rule) -> Shape {
    let mut s = Shape::default();
    let quoted = |l: &ast::StrLit| format!("\"{}\"", l.raw);
    for item in &r.body {
        match item {
            ast::RuleItem::Connector(c, _) => {
                s.settings.insert("connector", quoted(c));
            }
            ast::RuleItem::Source(n, _) => {
                s.settings.insert("source", n.name.clone());
            }
            ast::RuleItem::Target(t, _) => {
                let t = match t {
                    ast::TargetType::Named(n) => n.name.clone(),
                    ast::TargetType::Any(_) => "*".into(),
                };
                s.settings.insert("target", t);
            }
            ast::RuleItem::Link(n, _) => {
                s.settings.insert("link", n.name.clone());
            }
            ast::RuleItem::Precedence(p, _) => {
                s.settings.insert("precedence", p.to_string());
            }
            ast::RuleItem::Description(d, _) => {
                s.settings.insert("description", quoted(d));
            }
            ast::RuleItem::Tag(t, _) => {
                s.settings.insert("tag", quoted(t));
            }
            ast::RuleItem::PasswordSync(_) => {
                s.settings.insert("password-sync", "on".into());
            }
            ast::RuleItem::Disabled(_) => {
                s.settings.insert("disabled", "yes".into());
            }
            ast::RuleItem::Scope(g) => {
                let clauses: Vec<String> = g
                    .clauses
                    .iter()
                    .map(|c| match c {
                        ast::ScopeClause::Compare {
                            attr, op, value, ..
                        } => {
                            let v = match value {
                                Some(ast::ScopeValue::Str(l)) => format!(" {}", quoted(l)),
                                Some(ast::ScopeValue::Num(n, _)) => format!(" {n}"),
                                None => String::new(),
                            };
                            format!("{} {}{v}", attr.name, op.name.to_ascii_uppercase())
                        }
                        ast::ScopeClause::Expr(e, _) => format!("({})", syntax::printer::expr(e)),
                    })
                    .collect();
                s.scope.push(clauses.join(", "));
            }
            ast::RuleItem::Join(g) => {
                let conds: Vec<String> = g
                    .conditions
                    .iter()
                    .map(|c| {
                        let cs = if c.case_sensitive {
                            " case-sensitive"
                        } else {
                            ""
                        };
                        format!("{} = {}{cs}", c.source.name, c.target.name)
                    })
                    .collect();
                s.joins.push(conds.join(", "));
            }
            ast::RuleItem::Flow(f) => {
                let mut t = syntax::printer::expr(&f.expr);
                if f.merge != ast::MergeType::Update {
                    t.push(' ');
                    t.push_str(f.merge.as_str());
                }
                if f.once {
                    t.push_str(" once");
                }
                s.flows.insert(f.target.name.clone(), t);
            }
        }
    }
    s
}

/// What differs between an existing rule and the imported one, one line each: settings,
/// scope, join, and flows added, removed and changed (by target attribute).
pub fn differences(old: &ast::Rule, new: &ast::Rule) -> Vec<String> {
    let (a, b) = (shape(old), shape(new));
    let mut out = Vec::new();
    if old.direction != new.direction {
        out.push("direction changed".to_string());
    }
    let keys: std::collections::BTreeSet<&&str> =
        a.settings.keys().chain(b.settings.keys()).collect();
    for k in keys {
        match (a.settings.get(*k), b.settings.get(*k)) {
            (Some(x), Some(y)) if x != y => out.push(format!("{k}: {x} -> {y}")),
            (Some(x), None) => out.push(format!("{k}: {x} -> (none)")),
            (None, Some(y)) => out.push(format!("{k}: (none) -> {y}")),
            _ => {}
        }
    }
    if a.scope != b.scope {
        out.push(format!(
            "scope: {} -> {}",
            groups(&a.scope),
            groups(&b.scope)
        ));
    }
    if a.joins != b.joins {
        out.push(format!(
            "join: {} -> {}",
            groups(&a.joins),
            groups(&b.joins)
        ));
    }
    let added: Vec<&str> = b
        .flows
        .keys()
        .filter(|t| !a.flows.contains_key(*t))
        .map(String::as_str)
        .collect();
    let removed: Vec<&str> = a
        .flows
        .keys()
        .filter(|t| !b.flows.contains_key(*t))
        .map(String::as_str)
        .collect();
    let changed: Vec<&str> = a
        .flows
        .iter()
        .filter(|(t, e)| b.flows.get(*t).is_some_and(|x| x != *e))
        .map(|(t, _)| t.as_str())
        .collect();
    for (what, list) in [
        ("flows added", added),
        ("flows removed", removed),
        ("flows changed", changed),
    ] {
        if !list.is_empty() {
            out.push(format!("{what}: {}", list.join(", ")));
        }
    }
    out
}

fn groups(g: &[String]) -> String {
    if g.is_empty() {
        return "(none)".into();
    }
    g.iter()
        .map(|x| format!("{{{x}}}"))
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> OutFile {
        OutFile {
            path: path.into(),
            text: text.into(),
        }
    }

    const OLD: &str = "# Custom rules.\ninbound rule \"A\" {\n  connector \"c\"\n  source user\n  target person\n  link join\n  precedence 10\n  scope {\n    department EQUAL \"x\"\n  }\n  flow mail <- [mail]\n  flow cn <- [cn]\n}\n\n# Kept as it is.\ninbound rule \"B\" {\n  connector \"c\"\n  source user\n  target person\n  link join\n  precedence 20\n  flow title <- [title] # customized\n}\n";

    #[test]
    fn a_same_named_rule_is_replaced_in_place_and_the_rest_stays() {
        let new = "inbound rule \"A\" {\n  connector \"c\"\n  source user\n  target person\n  link join\n  precedence 11\n  flow mail <- Trim([mail])\n  flow sn <- [sn]\n}\n\ninbound rule \"C\" {\n  connector \"c\"\n  source user\n  target person\n  link join\n  precedence 30\n  flow company <- [company]\n}\n";
        let m = merge(
            &[file("inbound/c-user.idf", new)],
            &[Existing {
                path: "inbound/c-user.idf".into(),
                text: OLD.into(),
            }],
        );
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        assert_eq!(
            m.changes,
            vec![
                Change {
                    rule: "A".into(),
                    path: "inbound/c-user.idf".into(),
                    kind: ChangeKind::Replaced(vec![
                        "precedence: 10 -> 11".into(),
                        "scope: {department EQUAL \"x\"} -> (none)".into(),
                        "flows added: sn".into(),
                        "flows removed: cn".into(),
                        "flows changed: mail".into(),
                    ])
                },
                Change {
                    rule: "C".into(),
                    path: "inbound/c-user.idf".into(),
                    kind: ChangeKind::Added
                },
            ]
        );
        let text = &m.files[0].text;
        assert!(text.starts_with("# Custom rules.\n"), "{text}");
        assert!(
            text.contains("flow title <- [title] # customized"),
            "{text}"
        );
        assert_eq!(text.matches("inbound rule \"A\"").count(), 1, "{text}");
        assert!(text.find("rule \"A\"") < text.find("rule \"B\""), "{text}");
        assert!(text.find("rule \"B\"") < text.find("rule \"C\""), "{text}");
        // Merging the result again changes nothing.
        let again = merge(
            &[file("inbound/c-user.idf", new)],
            &[Existing {
                path: "inbound/c-user.idf".into(),
                text: text.clone(),
            }],
        );
        assert!(again.files.is_empty(), "{:?}", again.files);
        assert!(
            again
                .changes
                .iter()
                .all(|c| c.kind == ChangeKind::Unchanged),
            "{:?}",
            again.changes
        );
    }

    #[test]
    fn duplicate_names_are_errors() {
        let one = "inbound rule \"A\" {\n  connector \"c\"\n  source user\n  target person\n  link join\n  precedence 1\n}\n";
        let two = format!("{one}\n{}", one.replace("precedence 1", "precedence 2"));
        let m = merge(&[file("inbound/x.idf", &two)], &[]);
        assert_eq!(
            m.errors,
            vec!["the import has 2 rules named \"A\": rule names must be unique"]
        );
        let m = merge(
            &[file("inbound/x.idf", one)],
            &[
                Existing {
                    path: "a.idf".into(),
                    text: one.into(),
                },
                Existing {
                    path: "b.idf".into(),
                    text: one.into(),
                },
            ],
        );
        assert_eq!(
            m.errors,
            vec![
                "the bundle has 2 rules named \"A\" (a.idf, b.idf): the import cannot tell which to replace"
            ]
        );
    }
}
