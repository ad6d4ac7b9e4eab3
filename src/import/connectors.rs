//! Resolves the connectors imported rules refer to into connectors of the bundle.
//!
//! Consumes: a [`Config`] read from a script (each rule's `connector` and `connector_ref`),
//! the connectors of the bundle the rules go into ([`Known`]: name, kind, Entra identifier
//! from `idflow.toml` when it has one) and the `--connector KEY=NAME` choices. Produces: each
//! rule's `connector` set to a bundle connector's name where one is found, notes for choices
//! made on the user's behalf, unmapped entries for connectors that cannot be resolved (the
//! rule is then written with the reference as its connector name), and the `--connector`
//! keys no rule used.
//!
//! In order: a `--connector` naming the identifier, name or expression; a bundle connector
//! whose `entra_id` is the identifier; Entra's fixed identifier of its Microsoft Entra
//! connector ([`ENTRA_CONNECTOR_ID`]) is the bundle's Entra connector; a name matches a bundle
//! connector's name case-insensitively; an expression that cannot be evaluated is the bundle's
//! only connector of the kind it implies (AD unless it says Entra).

use super::model::{Config, ConnectorRef, Unmapped};
use super::writer::normalize_id;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The identifier Entra Connect gives its Microsoft Entra connector in every installation.
pub const ENTRA_CONNECTOR_ID: &str = "{b891884f-051e-4a83-95af-2544101c9083}";

/// A connector of the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub name: String,
    /// The idflow connector kind (`ad`, `entra`, ...).
    pub kind: String,
    /// Its Entra identifier (`{guid}`), when the deployment settings give it.
    pub entra_id: Option<String>,
}

/// A `--connector KEY=NAME` choice: KEY is an identifier, a connector name or an expression as
/// the script writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub key: String,
    pub name: String,
}

fn kind_label(kind: &str) -> &str {
    match kind {
        "ad" => "Active Directory",
        "entra" => "Microsoft Entra",
        other => other,
    }
}

/// Whether a choice's key denotes a rule's connector reference.
fn chooses(choice: &Choice, key: &str, r: &ConnectorRef) -> bool {
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    match r {
        ConnectorRef::Id => normalize_id(&choice.key) == normalize_id(key),
        ConnectorRef::Name(n) => choice.key.eq_ignore_ascii_case(n),
        ConnectorRef::Expression { written, .. } => squeeze(&choice.key) == squeeze(written),
    }
}

/// Resolves every rule's connector; returns the choices no rule used. `bundle` is `None`
/// when there is no bundle to resolve against.
pub fn resolve(config: &mut Config, bundle: Option<&[Known]>, choices: &[Choice]) -> Vec<Choice> {
    let mut used = vec![false; choices.len()];
    // One finding per connector reference, listing its rules.
    let mut groups: BTreeMap<(String, String), (ConnectorRef, Vec<usize>)> = BTreeMap::new();
    for (i, r) in config.rules.iter().enumerate() {
        let kind = match &r.connector_ref {
            ConnectorRef::Id => "id",
            ConnectorRef::Name(_) => "name",
            ConnectorRef::Expression { .. } => "expression",
        };
        groups
            .entry((kind.to_string(), r.connector.clone()))
            .or_insert_with(|| (r.connector_ref.clone(), Vec::new()))
            .1
            .push(i);
    }
    let mut notes = Vec::new();
    let mut unmapped = Vec::new();
    for ((_, key), (how, rules)) in groups {
        let names: Vec<&str> = rules
            .iter()
            .map(|&i| config.rules[i].name.as_str())
            .collect();
        let listed = if names.len() > 3 {
            format!("{}, ... ({} rules)", names[..3].join(", "), names.len())
        } else {
            names.join(", ")
        };
        let source = rules
            .first()
            .map_or_else(PathBuf::new, |&i| config.rules[i].source.clone());
        let finding = |what: String, list: &mut Vec<Unmapped>| {
            list.push(Unmapped {
                source: source.clone(),
                context: format!("connector {}", shown(&key, &how)),
                what: format!("{what} (rules: {listed})"),
            });
        };
        let chosen = choices.iter().position(|c| chooses(c, &key, &how));
        let resolved: Option<String> = if let Some(k) = chosen {
            used[k] = true;
            Some(choices[k].name.clone())
        } else {
            match (&how, bundle) {
                (ConnectorRef::Id, b) => {
                    let id = normalize_id(&key);
                    let by_id = b.and_then(|b| {
                        b.iter()
                            .find(|k| k.entra_id.as_deref().map(normalize_id) == Some(id.clone()))
                    });
                    match by_id {
                        Some(k) => Some(k.name.clone()),
                        None if id == ENTRA_CONNECTOR_ID => match only(b, "entra") {
                            Ok(name) => Some(name),
                            Err(why) => {
                                finding(
                                    format!(
                                        "the Microsoft Entra connector's identifier, and {why}: name it with --connector {}=NAME",
                                        id.trim_matches(['{', '}'])
                                    ),
                                    &mut unmapped,
                                );
                                None
                            }
                        },
                        None => {
                            let inside = if b.is_some() {
                                "is not a connector of the bundle"
                            } else {
                                "has no bundle to be found in"
                            };
                            finding(
                                format!(
                                    "{inside} and no --connector names it: name it with --connector {}=NAME",
                                    id.trim_matches(['{', '}'])
                                ),
                                &mut unmapped,
                            );
                            None
                        }
                    }
                }
                (ConnectorRef::Name(n), None) => Some(n.clone()),
                (ConnectorRef::Name(n), Some(b)) => {
                    match b.iter().find(|k| k.name.eq_ignore_ascii_case(n)) {
                        Some(k) => Some(k.name.clone()),
                        None => {
                            let all: Vec<&str> = b.iter().map(|k| k.name.as_str()).collect();
                            finding(
                                format!(
                                    "is not a connector of the bundle ({}): name it with --connector \"{n}=NAME\"",
                                    if all.is_empty() {
                                        "none".into()
                                    } else {
                                        all.join(", ")
                                    }
                                ),
                                &mut unmapped,
                            );
                            None
                        }
                    }
                }
                (
                    ConnectorRef::Expression {
                        written,
                        origin,
                        kind,
                    },
                    b,
                ) => {
                    let kind = kind.as_deref().unwrap_or("ad");
                    match only(b, kind) {
                        Ok(name) => {
                            finding(
                                format!(
                                    "is not known before the script runs ({origin}): taken as the bundle's only {} connector \"{name}\"",
                                    kind_label(kind)
                                ),
                                &mut notes,
                            );
                            Some(name)
                        }
                        Err(why) => {
                            finding(
                                format!(
                                    "is not known before the script runs ({origin}) and {why}: name it with --connector '{written}=NAME'"
                                ),
                                &mut unmapped,
                            );
                            None
                        }
                    }
                }
            }
        };
        if let Some(name) = resolved {
            for &i in &rules {
                config.rules[i].connector = name.clone();
            }
        }
    }
    config.notes.extend(notes);
    config.unmapped.extend(unmapped);
    choices
        .iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(c, _)| c.clone())
        .collect()
}

/// How a connector reference is shown in messages.
fn shown(key: &str, how: &ConnectorRef) -> String {
    match how {
        ConnectorRef::Id => key.to_string(),
        ConnectorRef::Name(n) => format!("\"{n}\""),
        ConnectorRef::Expression { written, .. } => format!("`{written}`"),
    }
}

/// The bundle's only connector of a kind, or why there is none.
fn only(bundle: Option<&[Known]>, kind: &str) -> Result<String, String> {
    let Some(b) = bundle else {
        return Err("there is no bundle to find it in".into());
    };
    let of_kind: Vec<&Known> = b.iter().filter(|k| k.kind == kind).collect();
    match of_kind.as_slice() {
        [one] => Ok(one.name.clone()),
        [] => Err(format!("the bundle has no {} connector", kind_label(kind))),
        many => Err(format!(
            "the bundle has {} {} connectors ({})",
            many.len(),
            kind_label(kind),
            many.iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
