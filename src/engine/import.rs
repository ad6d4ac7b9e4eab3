//! Import staging: incoming objects of a connected directory matched to connector-space
//! objects.
//!
//! Consumes: [`ImportChange`]s for one connector (from a connector, a test block or a
//! generator) and the [`Plan`]. Produces: updated connector-space objects flagged with their
//! pending import (Add, Update, Delete, DeleteAdd) for the next sync, and an
//! [`ImportReport`]. Matching is by anchor, then by DN: an export object (no anchor yet) with
//! the same DN is replaced by the imported object and keeps its link; a known anchor under a
//! new DN is a rename and keeps its link; a full import marks every previously imported object
//! it did not see as deleted, unless the read is incomplete: a record the engine rejects
//! (missing anchor, or an object imported before that now has a type the schema does not
//! declare) makes the read incomplete exactly as a record the reader rejects, and it stages no
//! deletes. Objects of types the connector schema does not declare and that were never
//! imported (organizational units, containers) are left out and counted, not rejected.
//! Each record is classified once ([`read`]); [`preview`] tells, before anything is staged, how
//! many objects the read would delete (the runner's complete-read rule, docs/DECISIONS.md), and
//! [`stage`] stages it.

use super::compile::{ConnIdx, Plan};
use super::model::{CsId, CsObject, Key, PendingImport, State, dn_key};
use crate::value::Value;
use std::collections::{BTreeMap, HashSet};
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
    /// Objects that could not be staged (missing anchor, an object imported before that now
    /// has an undeclared type), with the reason. Any of them makes the read incomplete.
    pub rejected: Vec<(String, String)>,
    /// Objects left out because the connector schema does not declare their type (and they were
    /// never imported), counted by type.
    pub out_of_schema: BTreeMap<String, usize>,
}

/// What a read would do to the connector space, computed before it is staged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadPreview {
    /// Objects imported before and still expected in the connected directory (objects whose
    /// delete this engine staged for export are not expected).
    pub known: usize,
    /// Objects the read holds that would be staged (records of undeclared types and records
    /// that would be rejected are not counted).
    pub objects: usize,
    /// Known objects the read would stage as deleted.
    pub deletes: usize,
    /// Records that would be rejected (a read with any stages no deletes).
    pub rejected: usize,
}

/// How one imported record is staged.
enum Record {
    /// Of a declared type, with its values by slot and its anchor.
    Typed {
        ty: usize,
        values: Vec<Value>,
        anchor: Value,
        /// The DN's normalised key (`crate::dn`).
        key: Box<str>,
    },
    /// Cannot be staged: the reason.
    Rejected(String),
    /// Of a type the connector schema does not declare, and not known to the connector space.
    OutOfSchema,
}

/// Whether an object of the connector space is an imported object the directory still holds
/// as far as the engine knows.
fn expected(o: &CsObject, connector: ConnIdx) -> bool {
    o.connector == connector
        && o.anchor.is_some()
        && !o.placeholder
        && !o.gone
        && o.export != Some(super::model::ExportOp::Delete)
}

/// Classifies one record: its type, values by slot and anchor, or why it cannot be staged.
fn classify(
    state: &State,
    cplan: &super::compile::ConnectorPlan,
    connector: ConnIdx,
    obj: &ImportObject,
) -> Record {
    // DNs compare parsed (`crate::dn`): one that does not parse cannot be matched.
    let key = match crate::dn::key(&obj.dn) {
        Ok(k) => k.into_boxed_str(),
        Err(e) => return Record::Rejected(format!("the DN does not parse: {e}")),
    };
    let Some(ty) = cplan.type_index(&obj.object_type) else {
        // An object the connector space holds (by DN or by any declared anchor attribute) that
        // now shows an undeclared type must not silently turn into a delete.
        let by_dn = state
            .cs_by_dn_key(connector, &key)
            .is_some_and(|id| !state.cs()[id as usize].gone);
        let by_anchor = || {
            cplan.types.iter().any(|t| {
                let Some(a) = t.anchor.filter(|&a| Some(a) != t.dn) else {
                    return false;
                };
                obj.attrs.iter().any(|(n, v)| {
                    n == &t.names[a]
                        && Key::exact(&crate::engine::flow::shape(v.clone(), false))
                            .is_some_and(|k| state.cs_by_anchor(connector, &k).is_some())
                })
            })
        };
        if by_dn || by_anchor() {
            return Record::Rejected(format!(
                "object type `{}` is not declared in the connector schema, but the object was imported before",
                obj.object_type
            ));
        }
        return Record::OutOfSchema;
    };
    let tplan = &cplan.types[ty];
    let mut values = vec![Value::Null; tplan.len()];
    for (name, v) in &obj.attrs {
        if let Some(s) = tplan.slot(name)
            && s != tplan.dn.unwrap_or(usize::MAX)
        {
            // Multi-valued attributes always hold collections.
            values[s] = crate::engine::flow::shape(v.clone(), tplan.kinds[s].1);
        }
    }
    if let Some(s) = tplan.dn {
        values[s] = Value::str(obj.dn.as_str());
    }
    match tplan
        .anchor
        .map(|s| values[s].clone())
        .filter(|v| !v.is_null())
    {
        Some(anchor) => Record::Typed {
            ty,
            values,
            anchor,
            key,
        },
        None => Record::Rejected("the anchor attribute has no value".into()),
    }
}

/// A read of one connector, each record classified once against the connector space as it
/// was before the read: [`preview`] tells what staging it would do, [`stage`] stages it.
pub struct Read {
    connector: ConnIdx,
    items: Vec<Item>,
}

enum Item {
    Delete(String),
    Upsert(ImportObject, Record),
}

/// Classifies every record of a read of `connector`.
pub fn read(state: &State, plan: &Plan, connector: ConnIdx, changes: Vec<ImportChange>) -> Read {
    let items = match plan.connectors.get(connector) {
        Some(cplan) => changes
            .into_iter()
            .map(|change| match change {
                ImportChange::Delete { dn } => Item::Delete(dn),
                ImportChange::Upsert(obj) => {
                    let record = classify(state, cplan, connector, &obj);
                    Item::Upsert(obj, record)
                }
            })
            .collect(),
        None => Vec::new(),
    };
    Read { connector, items }
}

/// What staging `read` would do, without staging anything: how many known objects a full read
/// (`full`) or the read's explicit deletes would delete, and how many records it holds.
pub fn preview(state: &State, read: &Read, full: bool) -> ReadPreview {
    let connector = read.connector;
    let mut p = ReadPreview::default();
    let mut seen: HashSet<CsId> = HashSet::new();
    let mut explicit: HashSet<CsId> = HashSet::new();
    for item in &read.items {
        match item {
            Item::Delete(dn) => {
                if let Some(id) = state.cs_by_dn(connector, dn)
                    && expected(&state.cs()[id as usize], connector)
                {
                    explicit.insert(id);
                }
            }
            Item::Upsert(_, Record::Typed { anchor, .. }) => {
                p.objects += 1;
                if let Some(id) = Key::exact(anchor).and_then(|k| state.cs_by_anchor(connector, &k))
                {
                    seen.insert(id);
                }
            }
            Item::Upsert(_, Record::Rejected(_)) => p.rejected += 1,
            Item::Upsert(_, Record::OutOfSchema) => {}
        }
    }
    let mut deletes = explicit.len();
    for (i, o) in state.cs().iter().enumerate() {
        if !expected(o, connector) {
            continue;
        }
        p.known += 1;
        let id = i as CsId;
        if full && p.rejected == 0 && !seen.contains(&id) && !explicit.contains(&id) {
            deletes += 1;
        }
    }
    p.deletes = deletes;
    p
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
    let read = read(state, plan, connector, changes);
    stage(state, plan, read, full)
}

/// Stages a classified read (see [`import`]).
pub fn stage(state: &mut State, plan: &Plan, read: Read, full: bool) -> ImportReport {
    let connector = read.connector;
    let mut report = ImportReport::default();
    let mut seen: HashSet<CsId> = HashSet::new();
    let Some(cplan) = plan.connectors.get(connector) else {
        return report;
    };
    for item in read.items {
        match item {
            Item::Delete(dn) => {
                if let Some(id) = state.cs_by_dn(connector, &dn)
                    && stage_delete(state, id)
                {
                    report.deletes += 1;
                }
            }
            Item::Upsert(obj, record) => {
                let (ty, values, anchor, key) = match record {
                    Record::Typed {
                        ty,
                        values,
                        anchor,
                        key,
                    } => (ty, values, anchor, key),
                    Record::Rejected(why) => {
                        report.rejected.push((obj.dn.clone(), why));
                        continue;
                    }
                    Record::OutOfSchema => {
                        *report.out_of_schema.entry(obj.object_type).or_default() += 1;
                        continue;
                    }
                };
                let tplan = &cplan.types[ty];
                let dn: Arc<str> = obj.dn.as_str().into();
                let akey = Key::exact(&anchor);
                let by_anchor = akey.as_ref().and_then(|k| state.cs_by_anchor(connector, k));
                let by_dn = state.cs_by_dn_key(connector, &key);
                let target = match (by_anchor, by_dn) {
                    (Some(id), _) => Some(id),
                    // An export object (or placeholder) with this DN: the imported object
                    // replaces it and keeps its link.
                    (None, Some(id)) if state.cs()[id as usize].anchor.is_none() => Some(id),
                    // A different object had this DN: it was renamed or deleted; it keeps its
                    // anchor and leaves the DN index until its own change is imported.
                    (None, Some(_)) => None,
                    (None, None) => None,
                };
                match target {
                    Some(id) => {
                        seen.insert(id);
                        // An object the read shows exactly as it was imported, with nothing
                        // of it to confirm: nothing changes, and nothing is recorded as
                        // changed (a re-read of an unchanged source saves and syncs nothing).
                        let o = &state.cs()[id as usize];
                        if !o.placeholder
                            && o.object_type == ty
                            && *o.dn == *dn
                            && o.anchor.as_ref() == Some(&anchor)
                            && o.export != Some(super::model::ExportOp::Add)
                            && o.new_dn.is_none()
                            && *o.imported == *values
                        {
                            report.unchanged += 1;
                            continue;
                        }
                        let o = &mut state.cs_mut()[id as usize];
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
                            state.unindex_dn(connector, &old, id);
                            state.index_dn(connector, key.clone(), id);
                            report.renames += 1;
                        }
                        let o = &mut state.cs_mut()[id as usize];
                        let changed = renamed
                            || retyped
                            || *o.imported != *values
                            || was_placeholder
                            || o.anchor.is_none();
                        if o.anchor.is_none()
                            && let Some(k) = akey.clone()
                        {
                            state.index_anchor(connector, k, id);
                        }
                        if retyped || was_placeholder {
                            // Leave the old type's index entries before the layout changes.
                            let width = state.cs()[id as usize].current.len();
                            state.set_cs_current(plan, id, vec![Value::Null; width]);
                            state.cs_mut()[id as usize].current =
                                vec![Value::Null; values.len()].into();
                        }
                        let o = &mut state.cs_mut()[id as usize];
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
                        o.imported = values.into();
                        state.set_cs_current(plan, id, current);
                        let o = &mut state.cs_mut()[id as usize];
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
                            current: vec![Value::Null; values.len()].into(),
                            imported: values.clone().into(),
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
    // A record rejected here makes the read incomplete, as a record the reader rejected does:
    // what it stands for may be any of the objects not seen.
    if full && report.rejected.is_empty() {
        let missing: Vec<CsId> = state
            .cs()
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
    let Some(o) = state.cs_mut().get_mut(id as usize) else {
        return false;
    };
    if o.gone || o.placeholder || o.anchor.is_none() {
        return false;
    }
    o.pending_import = Some(PendingImport::Delete);
    true
}
