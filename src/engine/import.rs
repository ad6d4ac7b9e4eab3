//! Import staging: incoming objects of a connected directory matched to connector-space
//! objects.
//!
//! Consumes: [`ImportChange`]s for one connector (from a connector, a test block or a
//! generator) and the [`Plan`]. Produces: updated connector-space objects flagged with their
//! pending import (Add, Update, Delete, DeleteAdd) for the next sync, and an
//! [`ImportReport`]. Matching is by anchor, then by DN: an export object (no anchor yet) with
//! the same DN is replaced by the imported object and keeps its link; a known anchor under a
//! new DN is a rename and keeps its link; a full import marks every previously imported object
//! it did not see as deleted.

use super::compile::{ConnIdx, Plan};
use super::model::{CsId, CsObject, Key, PendingImport, State, dn_key};
use crate::value::Value;
use std::collections::HashSet;
use std::sync::Arc;

/// One object as read from a connected directory.
#[derive(Debug, Clone)]
pub struct ImportObject {
    pub dn: String,
    pub object_type: String,
    /// Attribute values by name; the anchor is one of them.
    pub attrs: Vec<(String, Value)>,
}

#[derive(Debug, Clone)]
pub enum ImportChange {
    /// An added or changed object (delta import), or any object (full import).
    Upsert(ImportObject),
    /// A deleted object, by DN (delta import).
    Delete { dn: String },
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub adds: usize,
    pub updates: usize,
    pub renames: usize,
    pub deletes: usize,
    pub unchanged: usize,
    /// Objects that could not be staged (unknown type, missing anchor), with the reason.
    pub rejected: Vec<(String, String)>,
}

/// Stages a batch of changes of one connector. With `full`, objects imported before but not
/// in this batch are staged as deleted: call it with `full` only for a complete read.
pub fn import(
    state: &mut State,
    plan: &Plan,
    connector: ConnIdx,
    changes: Vec<ImportChange>,
    full: bool,
) -> ImportReport {
    let mut report = ImportReport::default();
    let mut seen: HashSet<CsId> = HashSet::new();
    let Some(cplan) = plan.connectors.get(connector) else {
        return report;
    };
    for change in changes {
        match change {
            ImportChange::Delete { dn } => {
                if let Some(id) = state.cs_by_dn(connector, &dn)
                    && stage_delete(state, id)
                {
                    report.deletes += 1;
                }
            }
            ImportChange::Upsert(obj) => {
                // The DN's normalised key: DNs compare parsed (`crate::dn`).
                let key = match crate::dn::key(&obj.dn) {
                    Ok(k) => k.into_boxed_str(),
                    Err(e) => {
                        report
                            .rejected
                            .push((obj.dn.clone(), format!("the DN does not parse: {e}")));
                        continue;
                    }
                };
                let Some(ty) = cplan.type_index(&obj.object_type) else {
                    report.rejected.push((
                        obj.dn.clone(),
                        format!("unknown object type `{}`", obj.object_type),
                    ));
                    continue;
                };
                let tplan = &cplan.types[ty];
                let mut values = vec![Value::Null; tplan.len()];
                for (name, v) in obj.attrs {
                    if let Some(s) = tplan.slot(&name)
                        && s != tplan.dn.unwrap_or(usize::MAX)
                    {
                        // Multi-valued attributes always hold collections.
                        values[s] = crate::engine::flow::shape(v, tplan.kinds[s].1);
                    }
                }
                let dn: Arc<str> = obj.dn.as_str().into();
                if let Some(s) = tplan.dn {
                    values[s] = Value::Str(dn.clone());
                }
                let anchor = tplan
                    .anchor
                    .map(|s| values[s].clone())
                    .filter(|v| !v.is_null());
                let Some(anchor) = anchor else {
                    report
                        .rejected
                        .push((obj.dn.clone(), "the anchor attribute has no value".into()));
                    continue;
                };
                let akey = Key::exact(&anchor);
                let by_anchor = akey
                    .as_ref()
                    .and_then(|k| state.by_anchor[connector].get(k).copied());
                let by_dn = state.by_dn[connector].get(&key).copied();
                let target = match (by_anchor, by_dn) {
                    (Some(id), _) => Some(id),
                    // An export object (or placeholder) with this DN: the imported object
                    // replaces it and keeps its link.
                    (None, Some(id)) if state.cs[id as usize].anchor.is_none() => Some(id),
                    // A different object had this DN: it was renamed or deleted; it keeps its
                    // anchor and leaves the DN index until its own change is imported.
                    (None, Some(_)) => None,
                    (None, None) => None,
                };
                match target {
                    Some(id) => {
                        seen.insert(id);
                        let o = &mut state.cs[id as usize];
                        let was_placeholder = o.placeholder;
                        // DNs that differ only in spacing, case or escaping are one DN
                        // (the new spelling is taken without a rename).
                        let renamed = dn_key(&o.dn) != key;
                        if !renamed && o.dn != dn {
                            o.dn = dn.clone();
                        }
                        let retyped = o.object_type != ty && !was_placeholder;
                        if renamed {
                            let old = dn_key(&o.dn);
                            o.dn = dn.clone();
                            if state.by_dn[connector].get(&old) == Some(&id) {
                                state.by_dn[connector].remove(&old);
                            }
                            state.by_dn[connector].insert(key.clone(), id);
                            report.renames += 1;
                        }
                        let o = &mut state.cs[id as usize];
                        let changed = renamed
                            || retyped
                            || o.imported != values
                            || was_placeholder
                            || o.anchor.is_none();
                        if o.anchor.is_none()
                            && let Some(k) = akey.clone()
                        {
                            state.by_anchor[connector].insert(k, id);
                        }
                        if retyped || was_placeholder {
                            // Leave the old type's index entries before the layout changes.
                            let width = state.cs[id as usize].current.len();
                            state.set_cs_current(plan, id, vec![Value::Null; width]);
                            state.cs[id as usize].current = vec![Value::Null; values.len()];
                        }
                        let o = &mut state.cs[id as usize];
                        o.anchor = Some(anchor);
                        o.object_type = ty;
                        o.placeholder = false;
                        o.gone = false;
                        // A confirmed export object: its Add is done.
                        if o.export == Some(super::model::ExportOp::Add) {
                            o.export = None;
                        }
                        if o.new_dn.as_deref().is_some_and(|n| dn_key(n) == key) {
                            o.new_dn = None;
                        }
                        // DECISIONS 10: the import confirms what it shows. A staged value the
                        // target does not show yet (its imported value did not change) stays
                        // staged, so it is exported again; a value the target changed is
                        // taken, and outbound sync decides again.
                        let mut current = values.clone();
                        if !retyped && !was_placeholder && o.current.len() == values.len() {
                            for (s, v) in current.iter_mut().enumerate() {
                                if Some(s) != tplan.dn
                                    && o.current[s] != o.imported[s]
                                    && values[s] == o.imported[s]
                                {
                                    *v = o.current[s].clone();
                                }
                            }
                        }
                        o.imported = values;
                        state.set_cs_current(plan, id, current);
                        let o = &mut state.cs[id as usize];
                        if changed {
                            let kind = if retyped {
                                PendingImport::DeleteAdd
                            } else if was_placeholder {
                                PendingImport::Add
                            } else {
                                PendingImport::Update
                            };
                            o.pending_import = Some(merge_pending(o.pending_import, kind));
                            if was_placeholder {
                                report.adds += 1;
                            } else if !renamed {
                                report.updates += 1;
                            }
                        } else {
                            report.unchanged += 1;
                        }
                    }
                    None => {
                        let id = state.add_cs(CsObject {
                            connector,
                            object_type: ty,
                            dn,
                            anchor: Some(anchor),
                            current: vec![Value::Null; values.len()],
                            imported: values.clone(),
                            pending_import: Some(PendingImport::Add),
                            export: None,
                            new_dn: None,
                            link: None,
                            provisioned_by: None,
                            placeholder: false,
                            gone: false,
                        });
                        state.set_cs_current(plan, id, values);
                        seen.insert(id);
                        report.adds += 1;
                    }
                }
            }
        }
    }
    if full {
        let missing: Vec<CsId> = state
            .cs
            .iter()
            .enumerate()
            .filter(|(i, o)| {
                o.connector == connector
                    && o.anchor.is_some()
                    && !o.placeholder
                    && !o.gone
                    && !seen.contains(&(*i as CsId))
            })
            .map(|(i, _)| i as CsId)
            .collect();
        for id in missing {
            if stage_delete(state, id) {
                report.deletes += 1;
            }
        }
    }
    report
}

fn merge_pending(old: Option<PendingImport>, new: PendingImport) -> PendingImport {
    match (old, new) {
        (Some(PendingImport::Add), PendingImport::Update) => PendingImport::Add,
        (_, n) => n,
    }
}

/// Stages the deletion of an imported object; returns false when there was nothing to delete.
fn stage_delete(state: &mut State, id: CsId) -> bool {
    let Some(o) = state.cs.get_mut(id as usize) else {
        return false;
    };
    if o.gone || o.placeholder || o.anchor.is_none() {
        return false;
    }
    o.pending_import = Some(PendingImport::Delete);
    true
}
