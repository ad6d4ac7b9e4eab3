//! The engine's state: connector spaces and the metaverse.
//!
//! Consumes: nothing (built by `engine::import` and `engine::sync`). Produces: [`State`], with
//! connector-space objects ([`CsObject`]: anchor, DN, type, confirmed and current values,
//! pending import, export state, link), metaverse objects ([`MvObject`]: id, type, values,
//! links) and the indexes that make import matching and joins hash lookups: anchor and DN per
//! connector, join values per attribute. Everything is addressed by index, so the state of
//! millions of objects is a handful of vectors and hash maps.

use super::compile::{ConnIdx, Plan, RuleIdx, TypeIdx};
use crate::value::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Index of a connector-space object in [`State::cs`] (stable for the state's lifetime).
pub type CsId = u32;
/// A metaverse object id (stable, never reused).
pub type MvId = u64;

/// What an import staged for the next sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PendingImport {
    Add,
    Update,
    Delete,
    /// The object type changed: the object is processed as a new object.
    DeleteAdd,
}

/// An object-level export operation staged by outbound sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExportOp {
    /// Create the object in the connected directory (an export object, no anchor yet).
    Add,
    /// Change attributes (or the DN) of an existing object.
    Update,
    /// Delete the object in the connected directory.
    Delete,
}

impl ExportOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportOp::Add => "add",
            ExportOp::Update => "update",
            ExportOp::Delete => "delete",
        }
    }
}

/// How a connector-space object came to be linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub mv: MvId,
    /// The inbound rule that joined or projected it, or the outbound rule that joined or
    /// provisioned it.
    pub rule: RuleIdx,
    /// True when the link was made by an outbound rule (provisioning or outbound join).
    pub outbound: bool,
}

#[derive(Debug, Clone)]
pub struct CsObject {
    pub connector: ConnIdx,
    pub object_type: TypeIdx,
    pub dn: Arc<str>,
    /// The anchor value; None for an export object not yet confirmed by an import.
    pub anchor: Option<Value>,
    /// Confirmed values by slot: what the last import showed.
    pub imported: Vec<Value>,
    /// The connector space's values by slot: imported values with the unconfirmed exported
    /// ones applied. Inbound rules read these; `ImportedValue` reads `imported`.
    pub current: Vec<Value>,
    pub pending_import: Option<PendingImport>,
    /// Object-level export state: Add for export objects, Delete for deprovisioned objects.
    pub export: Option<ExportOp>,
    /// A DN change staged for export (rename).
    pub new_dn: Option<Arc<str>>,
    pub link: Option<Link>,
    /// The outbound provisioning rule that keeps this object in the target, once one has
    /// been in scope ("only objects once considered in scope are deleted").
    pub provisioned_by: Option<RuleIdx>,
    /// A referenced object that was not imported yet: never linked, never synced.
    pub placeholder: bool,
    /// Removed from the connected directory and processed: kept as a tombstone in the
    /// vector (ids stay stable), out of every index.
    pub gone: bool,
}

impl CsObject {
    /// Whether a current value differs from its confirmed value for export: the order of a
    /// multi-valued attribute's values is no difference (`engine::export::same_values`).
    fn differs(&self) -> bool {
        self.current != self.imported
            && (self.current.len() != self.imported.len()
                || self
                    .current
                    .iter()
                    .zip(&self.imported)
                    .any(|(new, old)| !super::export::same_values(old, new)))
    }

    /// Whether the object has staged export work (its delta: `engine::export`).
    pub fn export_op(&self) -> Option<ExportOp> {
        if self.gone || self.placeholder {
            return None;
        }
        match self.export {
            Some(op) => Some(op),
            None if self.new_dn.is_some() || self.differs() => Some(ExportOp::Update),
            None => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MvObject {
    pub id: MvId,
    pub object_type: TypeIdx,
    /// Values by slot of the metaverse type.
    pub attrs: Vec<Value>,
    /// Linked connector-space objects, in link order.
    pub links: Vec<CsId>,
}

/// A hashable form of a value for anchor, DN and join lookups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Text(Box<str>),
    Bytes(Box<[u8]>),
    Num(i64),
    Bool(bool),
}

impl Key {
    /// The exact key of a scalar value.
    pub fn exact(v: &Value) -> Option<Key> {
        Some(match v {
            Value::Str(s) | Value::Ref(s) => Key::Text(s.as_ref().into()),
            Value::Bin(b) => Key::Bytes(b.as_ref().into()),
            Value::Num(n) => Key::Num(*n),
            Value::Bool(b) => Key::Bool(*b),
            Value::Dt(d) => Key::Text(d.to_string().into()),
            _ => return None,
        })
    }

    /// The case-folded key (join lookups are case-insensitive by default; a case-sensitive
    /// condition filters the candidates afterwards).
    pub fn folded(v: &Value) -> Option<Key> {
        match v {
            Value::Str(s) | Value::Ref(s) => Some(Key::Text(s.to_lowercase().into())),
            other => Key::exact(other),
        }
    }
}

/// The DN index key: the normalised DN (`crate::dn`: parsed, case-folded, escaped one way),
/// so DNs that differ only in spacing, case or escaping are one key. A DN that does not parse
/// (imports reject those; an old state may hold one) keys as itself.
pub fn dn_key(dn: &str) -> Box<str> {
    crate::dn::index_key(dn)
}

/// A per-object sync error category (Entra's categories).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCategory {
    DuplicateAttribute,
    DataMismatch,
    DataValidationFailure,
    LargeAttribute,
    AmbiguousJoin,
    MultipleJoinRules,
    FunctionError,
    Other,
}

impl ErrorCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::DuplicateAttribute => "Duplicate Attribute",
            ErrorCategory::DataMismatch => "Data Mismatch",
            ErrorCategory::DataValidationFailure => "Data Validation Failure",
            ErrorCategory::LargeAttribute => "Large Attribute",
            ErrorCategory::AmbiguousJoin => "Ambiguous Join",
            ErrorCategory::MultipleJoinRules => "Multiple Join Rules",
            ErrorCategory::FunctionError => "Function Error",
            ErrorCategory::Other => "Other",
        }
    }

    pub const ALL: [ErrorCategory; 8] = [
        ErrorCategory::DuplicateAttribute,
        ErrorCategory::DataMismatch,
        ErrorCategory::DataValidationFailure,
        ErrorCategory::LargeAttribute,
        ErrorCategory::AmbiguousJoin,
        ErrorCategory::MultipleJoinRules,
        ErrorCategory::FunctionError,
        ErrorCategory::Other,
    ];

    pub fn parse(s: &str) -> Option<ErrorCategory> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// A per-object sync error. It never aborts the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncError {
    pub category: ErrorCategory,
    /// The connector-space object the error is on, when there is one.
    pub cs: Option<CsId>,
    pub mv: Option<MvId>,
    pub rule: Option<String>,
    /// The runtime error code (E05xx) for expression errors.
    pub code: Option<&'static str>,
    pub message: String,
}

/// The engine's state.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub cs: Vec<CsObject>,
    pub mv: BTreeMap<MvId, MvObject>,
    pub next_mv: MvId,
    /// Per connector: anchor → object.
    pub by_anchor: Vec<HashMap<Key, CsId>>,
    /// Per connector: DN key ([`dn_key`]) → object.
    pub by_dn: Vec<HashMap<Box<str>, CsId>>,
    /// Objects that reference another object, by the referenced object's connector and DN:
    /// re-evaluated when an object with that DN is linked or unlinked.
    pub referenced_by: HashMap<(ConnIdx, Box<str>), Vec<CsId>>,
    /// Outbound references: referenced metaverse object → the metaverse objects whose exports
    /// name it (revisited when its target object is renamed or removed).
    pub outbound_refs: HashMap<MvId, std::collections::BTreeSet<MvId>>,
    /// Join index of metaverse values, per attribute name (case-folded keys).
    pub mv_index: HashMap<Box<str>, HashMap<Key, Vec<MvId>>>,
    /// Join and uniqueness index of connector-space values, per connector and attribute name.
    pub cs_index: HashMap<(ConnIdx, Box<str>), HashMap<Key, Vec<CsId>>>,
    /// Metaverse objects with export values withheld as duplicates: revisited by every sync
    /// until the conflict clears.
    pub withheld: std::collections::BTreeSet<MvId>,
    /// Outbound references waiting for their target: referenced metaverse object → the
    /// metaverse objects whose exports dropped the reference. Revisited when it is provisioned.
    pub awaiting_refs: HashMap<MvId, std::collections::BTreeSet<MvId>>,
    /// Objects whose last sync had an error: every sync tries them again (as Entra retries
    /// objects in error), so an error is listed until it is resolved.
    pub in_error_cs: std::collections::BTreeSet<CsId>,
    pub in_error_mv: std::collections::BTreeSet<MvId>,
}

impl State {
    pub fn new(connectors: usize) -> State {
        State {
            by_anchor: vec![HashMap::new(); connectors],
            by_dn: vec![HashMap::new(); connectors],
            next_mv: 1,
            ..State::default()
        }
    }

    pub fn cs_by_dn(&self, connector: ConnIdx, dn: &str) -> Option<CsId> {
        self.by_dn.get(connector)?.get(&dn_key(dn)).copied()
    }

    /// The object of `connector` linked to `mv`.
    pub fn linked_in(&self, mv: MvId, connector: ConnIdx) -> Option<CsId> {
        let m = self.mv.get(&mv)?;
        m.links.iter().copied().find(|&c| {
            self.cs
                .get(c as usize)
                .is_some_and(|o| o.connector == connector && !o.gone)
        })
    }

    /// Adds a connector-space object and indexes it.
    pub fn add_cs(&mut self, obj: CsObject) -> CsId {
        let id = self.cs.len() as CsId;
        if let Some(k) = obj.anchor.as_ref().and_then(Key::exact) {
            self.by_anchor[obj.connector].insert(k, id);
        }
        self.by_dn[obj.connector].insert(dn_key(&obj.dn), id);
        self.cs.push(obj);
        id
    }

    /// Connects a connector-space object to a metaverse object.
    pub fn link(&mut self, cs: CsId, link: Link) {
        if let Some(m) = self.mv.get_mut(&link.mv)
            && !m.links.contains(&cs)
        {
            m.links.push(cs);
        }
        if let Some(o) = self.cs.get_mut(cs as usize) {
            o.link = Some(link);
            // An object whose delete was staged (deprovisioned, and held back by staging mode
            // or the delete threshold) is linked again: it came back in scope or rejoined,
            // by whichever path (outbound DN or rule join, inbound join), so the delete is
            // cancelled and outbound flow decides what it holds.
            if o.export == Some(ExportOp::Delete) {
                o.export = None;
            }
        }
    }

    /// Disconnects a connector-space object (it becomes a disconnector).
    pub fn unlink(&mut self, cs: CsId) -> Option<MvId> {
        let link = self.cs.get_mut(cs as usize)?.link.take()?;
        if let Some(m) = self.mv.get_mut(&link.mv) {
            m.links.retain(|&c| c != cs);
        }
        Some(link.mv)
    }

    /// Pending export operations of a connector, in object order (what each one sends:
    /// `engine::export::deltas`).
    pub fn pending_exports(
        &self,
        connector: ConnIdx,
    ) -> impl Iterator<Item = (CsId, &CsObject, ExportOp)> {
        self.cs
            .iter()
            .enumerate()
            .filter(move |(_, o)| o.connector == connector)
            .filter_map(|(i, o)| o.export_op().map(|op| (i as CsId, o, op)))
    }

    /// Replaces a metaverse object's values, keeping the join index current.
    pub fn set_mv_attrs(&mut self, plan: &Plan, mv: MvId, new: Vec<Value>) {
        let Some(m) = self.mv.get(&mv) else { return };
        let tplan = &plan.metaverse[m.object_type];
        for (name, index) in self.mv_index.iter_mut() {
            let Some(slot) = tplan.slot(name) else {
                continue;
            };
            reindex(index, mv, m.attrs[slot].values(), new[slot].values());
        }
        if let Some(m) = self.mv.get_mut(&mv) {
            m.attrs = new;
        }
    }

    /// Replaces a connector-space object's current values, keeping the join index current.
    pub fn set_cs_current(&mut self, plan: &Plan, id: CsId, new: Vec<Value>) {
        let Some(o) = self.cs.get(id as usize) else {
            return;
        };
        let tplan = &plan.connectors[o.connector].types[o.object_type];
        for ((conn, name), index) in self.cs_index.iter_mut() {
            if *conn != o.connector {
                continue;
            }
            let Some(slot) = tplan.slot(name) else {
                continue;
            };
            reindex(index, id, o.current[slot].values(), new[slot].values());
        }
        if let Some(o) = self.cs.get_mut(id as usize) {
            o.current = new;
        }
    }
}

/// Moves `id` from the keys of `old` to the keys of `new` in an index.
fn reindex<T: PartialEq + Copy>(
    index: &mut HashMap<Key, Vec<T>>,
    id: T,
    old: &[Value],
    new: &[Value],
) {
    if old == new {
        return;
    }
    for v in old {
        if let Some(k) = Key::folded(v)
            && let Some(list) = index.get_mut(&k)
        {
            list.retain(|&x| x != id);
            if list.is_empty() {
                index.remove(&k);
            }
        }
    }
    for v in new {
        if let Some(k) = Key::folded(v) {
            let list = index.entry(k).or_default();
            if !list.contains(&id) {
                list.push(id);
            }
        }
    }
}
