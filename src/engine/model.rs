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
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The hash map of the engine's indexes: foldhash, seeded per process (much quicker than
/// SipHash on DNs and anchors, and still not predictable from outside).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub use super::values::Values;

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
    /// A change that only inbound sync reads (docs/DECISIONS.md 38), as when the connected
    /// system confirms what was exported: the object's DN, the current values outbound sync
    /// writes or reads (`Plan::outbound_current`) and the imported values an outbound merge
    /// keeps stay as they were; its other values, its anchor or the end of its export add
    /// changed. Sync recomputes the metaverse object it is linked to, but outbound sync does
    /// not visit that object on its account: it would compute what the object holds already.
    InboundUpdate,
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
    pub imported: Values,
    /// The connector space's values by slot: imported values with the unconfirmed exported
    /// ones applied. Inbound rules read these; `ImportedValue` reads `imported`. When the two
    /// are equal (no export pending, the common case) they are one shared allocation.
    pub current: Values,
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
    /// The record of a file the object was last read from, as its connector digested it,
    /// with the [`CsObject::read_fingerprint`] the object had then: a later read recognises
    /// the record without reading it while the object still has that fingerprint
    /// (`engine::import::KnownRecords`).
    pub read_as: Option<ReadStamp>,
}

/// What a connector-space object was read from ([`CsObject::read_as`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadStamp {
    /// The digest of the record (`engine::import::RecordDigest`).
    pub record: [u8; 16],
    /// The object's [`CsObject::read_fingerprint`] right after it was read from the record.
    pub object: u64,
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
                    .zip(self.imported.iter())
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
    pub attrs: Values,
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

/// Change marks of a connector-space object (see [`CsTable`]).
const MARK_STORE: u8 = 1;
const MARK_SYNC: u8 = 2;
const MARK_EXPORT: u8 = 4;

/// The connector-space objects, addressed by [`CsId`], with their change log.
///
/// Reading is free ([`CsTable::get`], indexing); every way to change an object
/// ([`CsTable::get_mut`], `IndexMut`, [`CsTable::push`]) marks it three times: for the store
/// (saved by the next `Store::save_changes`), for delta sync (an object a delta sync must look
/// at) and for export (an object that may have export work). So a save, a delta sync and an
/// export planner cost in proportion to what changed, not to the connector space.
#[derive(Debug, Clone, Default)]
pub struct CsTable {
    objs: Vec<CsObject>,
    marks: Vec<u8>,
    changed: Vec<CsId>,
    to_sync: Vec<CsId>,
    to_export: Vec<CsId>,
}

impl CsTable {
    fn touch(&mut self, id: usize) {
        let Some(m) = self.marks.get_mut(id) else {
            return;
        };
        let id = id as CsId;
        if *m & MARK_STORE == 0 {
            self.changed.push(id);
        }
        if *m & MARK_SYNC == 0 {
            self.to_sync.push(id);
        }
        if *m & MARK_EXPORT == 0 {
            self.to_export.push(id);
        }
        *m = MARK_STORE | MARK_SYNC | MARK_EXPORT;
    }

    pub fn len(&self) -> usize {
        self.objs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objs.is_empty()
    }

    pub fn get(&self, id: usize) -> Option<&CsObject> {
        self.objs.get(id)
    }

    /// Records what object `id` was read from ([`CsObject::read_as`]): a change the store
    /// saves and no sync or export looks at.
    pub fn set_read_as(&mut self, id: usize, stamp: Option<ReadStamp>) {
        let Some(o) = self.objs.get_mut(id) else {
            return;
        };
        if o.read_as == stamp {
            return;
        }
        o.read_as = stamp;
        if let Some(m) = self.marks.get_mut(id)
            && *m & MARK_STORE == 0
        {
            *m |= MARK_STORE;
            self.changed.push(id as CsId);
        }
    }

    /// The object, marked as changed.
    pub fn get_mut(&mut self, id: usize) -> Option<&mut CsObject> {
        self.touch(id);
        self.objs.get_mut(id)
    }

    /// Every object (tombstones of removed objects included: check [`CsObject::gone`]).
    pub fn iter(&self) -> std::slice::Iter<'_, CsObject> {
        self.objs.iter()
    }

    /// Appends an object, marked as changed; returns its id.
    pub fn push(&mut self, obj: CsObject) -> CsId {
        let id = self.objs.len();
        self.objs.push(obj);
        self.marks.push(0);
        self.touch(id);
        id as CsId
    }
}

impl std::ops::Index<usize> for CsTable {
    type Output = CsObject;
    fn index(&self, id: usize) -> &CsObject {
        &self.objs[id]
    }
}

impl std::ops::IndexMut<usize> for CsTable {
    fn index_mut(&mut self, id: usize) -> &mut CsObject {
        self.touch(id);
        &mut self.objs[id]
    }
}

/// The metaverse objects by id, with their change log: every way to change one records it
/// for the store.
#[derive(Debug, Clone, Default)]
pub struct MvTable {
    objs: BTreeMap<MvId, MvObject>,
    changed: BTreeSet<MvId>,
}

impl MvTable {
    pub fn len(&self) -> usize {
        self.objs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objs.is_empty()
    }

    pub fn get(&self, id: &MvId) -> Option<&MvObject> {
        self.objs.get(id)
    }

    pub fn contains_key(&self, id: &MvId) -> bool {
        self.objs.contains_key(id)
    }

    pub fn keys(&self) -> std::collections::btree_map::Keys<'_, MvId, MvObject> {
        self.objs.keys()
    }

    pub fn values(&self) -> std::collections::btree_map::Values<'_, MvId, MvObject> {
        self.objs.values()
    }

    pub fn iter(&self) -> std::collections::btree_map::Iter<'_, MvId, MvObject> {
        self.objs.iter()
    }

    /// The object, marked as changed.
    pub fn get_mut(&mut self, id: &MvId) -> Option<&mut MvObject> {
        let o = self.objs.get_mut(id)?;
        self.changed.insert(*id);
        Some(o)
    }

    pub fn insert(&mut self, id: MvId, obj: MvObject) -> Option<MvObject> {
        self.changed.insert(id);
        self.objs.insert(id, obj)
    }

    pub fn remove(&mut self, id: &MvId) -> Option<MvObject> {
        let o = self.objs.remove(id)?;
        self.changed.insert(*id);
        Some(o)
    }
}

impl std::ops::Index<&MvId> for MvTable {
    type Output = MvObject;
    fn index(&self, id: &MvId) -> &MvObject {
        &self.objs[id]
    }
}

/// The join and uniqueness indexes of connector-space values: (connector, attribute) → value
/// key → objects.
pub type CsIndexes = FastMap<(ConnIdx, Box<str>), FastMap<Key, Vec<CsId>>>;

/// What changed since the store last saved: the rows `Store::save_changes` writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Connector-space objects changed, added or removed (a removed object is a tombstone:
    /// [`CsObject::gone`]), in id order.
    pub cs: Vec<CsId>,
    /// Metaverse objects changed, added or removed (absent from the state), in id order.
    pub mv: Vec<MvId>,
    /// Keys of [`State::referenced_by`] whose referrers changed.
    pub references: Vec<(ConnIdx, Box<str>)>,
    /// Keys of [`State::outbound_refs`] whose referrers changed.
    pub outbound_refs: Vec<MvId>,
    /// Keys of [`State::awaiting_refs`] whose referrers changed.
    pub awaiting_refs: Vec<MvId>,
    /// The withheld set changed.
    pub withheld: bool,
    /// The sets of objects in error changed.
    pub errors: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.cs.is_empty()
            && self.mv.is_empty()
            && self.references.is_empty()
            && self.outbound_refs.is_empty()
            && self.awaiting_refs.is_empty()
            && !self.withheld
            && !self.errors
    }
}

/// The engine's state, behind a boundary: the fields are private, and every mutator records
/// what it changed ([`State::changes`]), so the store saves only that. Connector-space ids
/// ([`CsId`]) and metaverse ids are stable for the state's life, across saves and loads: a
/// removed connector-space object stays as a tombstone. The lookup indexes (anchor, DN, join
/// values) are derived: rebuilt at load, never saved.
#[derive(Debug, Clone, Default)]
pub struct State {
    cs: CsTable,
    mv: MvTable,
    next_mv: MvId,
    /// Per connector: anchor → object.
    by_anchor: Vec<FastMap<Key, CsId>>,
    /// Per connector: DN key ([`dn_key`]) → object.
    by_dn: Vec<FastMap<Box<str>, CsId>>,
    /// Objects that reference another object, by the referenced object's connector and DN:
    /// re-evaluated when an object with that DN is linked or unlinked.
    referenced_by: FastMap<(ConnIdx, Box<str>), Vec<CsId>>,
    /// Outbound references: referenced metaverse object → the metaverse objects whose exports
    /// name it (revisited when its target object is renamed or removed).
    outbound_refs: HashMap<MvId, BTreeSet<MvId>>,
    /// Join index of metaverse values, per attribute name (case-folded keys).
    mv_index: FastMap<Box<str>, FastMap<Key, Vec<MvId>>>,
    /// Join and uniqueness index of connector-space values, per connector and attribute name.
    cs_index: CsIndexes,
    /// Metaverse objects with export values withheld as duplicates: revisited by every sync
    /// until the conflict clears.
    withheld: BTreeSet<MvId>,
    /// Outbound references waiting for their target: referenced metaverse object → the
    /// metaverse objects whose exports dropped the reference. Revisited when it is provisioned.
    awaiting_refs: HashMap<MvId, BTreeSet<MvId>>,
    /// Objects whose last sync had an error: every sync tries them again (as Entra retries
    /// objects in error), so an error is listed until it is resolved.
    in_error_cs: BTreeSet<CsId>,
    in_error_mv: BTreeSet<MvId>,
    /// Keys of the reference maps changed since the last save.
    changed_references: BTreeSet<(ConnIdx, Box<str>)>,
    changed_outbound: BTreeSet<MvId>,
    changed_awaiting: BTreeSet<MvId>,
    changed_withheld: bool,
    changed_errors: bool,
}

impl State {
    pub fn new(connectors: usize) -> State {
        State {
            by_anchor: vec![FastMap::default(); connectors],
            by_dn: vec![FastMap::default(); connectors],
            next_mv: 1,
            ..State::default()
        }
    }

    // ------------------------------------------------------------------ reading

    /// The connector-space objects.
    pub fn cs(&self) -> &CsTable {
        &self.cs
    }

    /// The connector-space objects, for changing: every object changed through it is recorded.
    pub fn cs_mut(&mut self) -> &mut CsTable {
        &mut self.cs
    }

    /// The metaverse.
    pub fn mv(&self) -> &MvTable {
        &self.mv
    }

    /// The metaverse, for changing: every object changed through it is recorded.
    pub fn mv_mut(&mut self) -> &mut MvTable {
        &mut self.mv
    }

    /// The id the next projected metaverse object gets.
    pub fn next_mv(&self) -> MvId {
        self.next_mv
    }

    /// Takes a new metaverse object id.
    pub fn allocate_mv(&mut self) -> MvId {
        let id = self.next_mv;
        self.next_mv += 1;
        id
    }

    pub fn cs_by_dn(&self, connector: ConnIdx, dn: &str) -> Option<CsId> {
        self.by_dn.get(connector)?.get(&dn_key(dn)).copied()
    }

    /// The object of `connector` under a normalised DN key ([`dn_key`]).
    pub fn cs_by_dn_key(&self, connector: ConnIdx, key: &str) -> Option<CsId> {
        self.by_dn.get(connector)?.get(key).copied()
    }

    /// The DN index of `connector`: each DN key ([`dn_key`]) and its object, in no order.
    pub fn dn_keys(&self, connector: ConnIdx) -> impl Iterator<Item = (&str, CsId)> + '_ {
        self.by_dn
            .get(connector)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, &id)| (&**k, id)))
    }

    /// The object of `connector` with an anchor.
    pub fn cs_by_anchor(&self, connector: ConnIdx, anchor: &Key) -> Option<CsId> {
        self.by_anchor.get(connector)?.get(anchor).copied()
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

    pub fn referenced_by(&self, connector: ConnIdx, key: &str) -> Option<&Vec<CsId>> {
        self.referenced_by.get(&(connector, key.into()))
    }

    /// Every reference key with its referrers (for the store and for dumps).
    pub fn references(&self) -> impl Iterator<Item = (&(ConnIdx, Box<str>), &Vec<CsId>)> {
        self.referenced_by.iter()
    }

    pub fn outbound_refs(&self) -> &HashMap<MvId, BTreeSet<MvId>> {
        &self.outbound_refs
    }

    pub fn awaiting_refs(&self) -> &HashMap<MvId, BTreeSet<MvId>> {
        &self.awaiting_refs
    }

    pub fn withheld(&self) -> &BTreeSet<MvId> {
        &self.withheld
    }

    pub fn in_error_cs(&self) -> &BTreeSet<CsId> {
        &self.in_error_cs
    }

    pub fn in_error_mv(&self) -> &BTreeSet<MvId> {
        &self.in_error_mv
    }

    pub fn mv_index(&self) -> &FastMap<Box<str>, FastMap<Key, Vec<MvId>>> {
        &self.mv_index
    }

    pub fn cs_index(&self) -> &CsIndexes {
        &self.cs_index
    }

    // ------------------------------------------------------------------ changing

    /// Adds a connector-space object and indexes it.
    pub fn add_cs(&mut self, obj: CsObject) -> CsId {
        let key = dn_key(&obj.dn);
        self.add_cs_keyed(obj, key)
    }

    /// [`State::add_cs`] for an object whose DN key (`dn_key(&obj.dn)`) is known.
    pub fn add_cs_keyed(&mut self, obj: CsObject, key: Box<str>) -> CsId {
        debug_assert_eq!(key, dn_key(&obj.dn));
        let id = self.cs.len() as CsId;
        if let Some(k) = obj.anchor.as_ref().and_then(Key::exact) {
            self.by_anchor[obj.connector].insert(k, id);
        }
        self.by_dn[obj.connector].insert(key, id);
        self.cs.push(obj);
        id
    }

    /// Indexes `id` under an anchor of its connector.
    pub fn index_anchor(&mut self, connector: ConnIdx, anchor: Key, id: CsId) {
        self.by_anchor[connector].insert(anchor, id);
    }

    /// Removes an anchor from the index if it names `id`.
    pub fn unindex_anchor(&mut self, connector: ConnIdx, anchor: &Key, id: CsId) {
        if self.by_anchor[connector].get(anchor) == Some(&id) {
            self.by_anchor[connector].remove(anchor);
        }
    }

    /// Indexes `id` under a normalised DN key of its connector.
    pub fn index_dn(&mut self, connector: ConnIdx, key: Box<str>, id: CsId) {
        self.by_dn[connector].insert(key, id);
    }

    /// Removes a DN key from the index if it names `id`.
    pub fn unindex_dn(&mut self, connector: ConnIdx, key: &str, id: CsId) {
        if self.by_dn[connector].get(key) == Some(&id) {
            self.by_dn[connector].remove(key);
        }
    }

    /// Sets a join index of metaverse values (built once per attribute, then kept current).
    pub fn set_mv_index(&mut self, attr: Box<str>, index: FastMap<Key, Vec<MvId>>) {
        self.mv_index.insert(attr, index);
    }

    /// Sets a join index of connector-space values.
    pub fn set_cs_index(&mut self, key: (ConnIdx, Box<str>), index: FastMap<Key, Vec<CsId>>) {
        self.cs_index.insert(key, index);
    }

    /// Records that `from` references the object of `connector` under a DN key.
    pub fn add_reference(&mut self, connector: ConnIdx, key: Box<str>, from: CsId) {
        let refs = self
            .referenced_by
            .entry((connector, key.clone()))
            .or_default();
        if !refs.contains(&from) {
            refs.push(from);
            self.changed_references.insert((connector, key));
        }
    }

    /// Records that the exports of `referrer` name metaverse object `target`.
    pub fn add_outbound_ref(&mut self, target: MvId, referrer: MvId) {
        if self
            .outbound_refs
            .entry(target)
            .or_default()
            .insert(referrer)
        {
            self.changed_outbound.insert(target);
        }
    }

    /// Records that the exports of `referrer` dropped a reference to `target`, not yet in the
    /// connector.
    pub fn add_awaiting_ref(&mut self, target: MvId, referrer: MvId) {
        if self
            .awaiting_refs
            .entry(target)
            .or_default()
            .insert(referrer)
        {
            self.changed_awaiting.insert(target);
        }
    }

    /// Takes the referrers waiting for `target`.
    pub fn take_awaiting_refs(&mut self, target: MvId) -> Option<BTreeSet<MvId>> {
        let r = self.awaiting_refs.remove(&target)?;
        self.changed_awaiting.insert(target);
        Some(r)
    }

    /// The withheld set, for changing.
    pub fn withheld_mut(&mut self) -> &mut BTreeSet<MvId> {
        self.changed_withheld = true;
        &mut self.withheld
    }

    /// Replaces the sets of objects in error.
    pub fn set_in_error(&mut self, cs: BTreeSet<CsId>, mv: BTreeSet<MvId>) {
        if cs != self.in_error_cs || mv != self.in_error_mv {
            self.changed_errors = true;
        }
        self.in_error_cs = cs;
        self.in_error_mv = mv;
    }

    /// Connects a connector-space object to a metaverse object.
    pub fn link(&mut self, cs: CsId, link: Link) {
        if let Some(m) = self.mv.get(&link.mv)
            && !m.links.contains(&cs)
            && let Some(m) = self.mv.get_mut(&link.mv)
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
        self.cs.get(cs as usize)?.link?;
        let link = self.cs.get_mut(cs as usize)?.link.take()?;
        if let Some(m) = self.mv.get_mut(&link.mv) {
            m.links.retain(|&c| c != cs);
        }
        Some(link.mv)
    }

    /// Pending export operations of a connector, in object order (what each one sends:
    /// `engine::export::deltas`). Only objects changed since they were last without export
    /// work are looked at.
    pub fn pending_exports(
        &self,
        connector: ConnIdx,
    ) -> impl Iterator<Item = (CsId, &CsObject, ExportOp)> {
        let mut ids = self.cs.to_export.clone();
        ids.sort_unstable();
        ids.into_iter().filter_map(move |id| {
            let o = &self.cs.objs[id as usize];
            if o.connector != connector {
                return None;
            }
            o.export_op().map(|op| (id, o, op))
        })
    }

    /// The objects a delta sync looks at: those changed since the last sync, the
    /// disconnectors (a new object elsewhere may now join them) and the objects in error, in
    /// id order. Taking them clears the marks; [`State::keep_for_sync`] keeps an object for the
    /// next sync.
    pub fn take_sync_candidates(&mut self) -> Vec<CsId> {
        let mut ids = std::mem::take(&mut self.cs.to_sync);
        for &id in &ids {
            self.cs.marks[id as usize] &= !MARK_SYNC;
        }
        ids.extend(self.in_error_cs.iter().copied());
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Clears every delta-sync mark (a full sync looks at everything).
    pub fn clear_sync_candidates(&mut self) {
        for &id in &self.cs.to_sync {
            self.cs.marks[id as usize] &= !MARK_SYNC;
        }
        self.cs.to_sync.clear();
    }

    /// Keeps an object for the next delta sync (a disconnector stays one).
    pub fn keep_for_sync(&mut self, id: CsId) {
        if let Some(m) = self.cs.marks.get_mut(id as usize)
            && *m & MARK_SYNC == 0
        {
            *m |= MARK_SYNC;
            self.cs.to_sync.push(id);
        }
    }

    /// Replaces a metaverse object's values, keeping the join index current.
    pub fn set_mv_attrs(&mut self, plan: &Plan, mv: MvId, new: Vec<Value>) {
        let Some(m) = self.mv.get(&mv) else { return };
        // The same values: nothing changes, and nothing is recorded as changed.
        if m.attrs == new {
            return;
        }
        let tplan = &plan.metaverse[m.object_type];
        for (name, index) in self.mv_index.iter_mut() {
            let Some(slot) = tplan.slot(name) else {
                continue;
            };
            reindex(index, mv, m.attrs[slot].values(), new[slot].values());
        }
        if let Some(m) = self.mv.get_mut(&mv) {
            m.attrs = new.into();
        }
    }

    /// [`State::set_cs_current`] with values laid out already, taken as they are (an object
    /// just added, whose current values are its imported ones: one allocation for both).
    pub fn set_cs_current_shared(&mut self, plan: &Plan, id: CsId, new: Values) {
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

    /// [`State::set_cs_current`] with the new values laid out by slot already.
    pub fn set_cs_current_values(&mut self, plan: &Plan, id: CsId, new: Values) {
        let Some(o) = self.cs.get(id as usize) else {
            return;
        };
        if o.current == new {
            return;
        }
        let new = if o.imported == new {
            o.imported.clone()
        } else {
            new
        };
        self.set_cs_current_shared(plan, id, new);
    }

    /// Replaces a connector-space object's current values, keeping the join index current.
    /// Values equal to the confirmed ones share their allocation.
    pub fn set_cs_current(&mut self, plan: &Plan, id: CsId, new: Vec<Value>) {
        let Some(o) = self.cs.get(id as usize) else {
            return;
        };
        if o.current.eq_dense(&new) {
            return;
        }
        let new = if o.imported.eq_dense(&new) {
            o.imported.clone()
        } else {
            new.into()
        };
        self.set_cs_current_shared(plan, id, new);
    }

    // ------------------------------------------------------------------ the change log

    /// What changed since the last [`State::clear_changes`].
    pub fn changes(&self) -> Changes {
        let mut cs = self.cs.changed.clone();
        cs.sort_unstable();
        Changes {
            cs,
            mv: self.mv.changed.iter().copied().collect(),
            references: self.changed_references.iter().cloned().collect(),
            outbound_refs: self.changed_outbound.iter().copied().collect(),
            awaiting_refs: self.changed_awaiting.iter().copied().collect(),
            withheld: self.changed_withheld,
            errors: self.changed_errors,
        }
    }

    /// Forgets the change log (the store saved it). Objects without export work leave the
    /// export planner's list.
    pub fn clear_changes(&mut self) {
        for &id in &self.cs.changed {
            self.cs.marks[id as usize] &= !MARK_STORE;
        }
        self.cs.changed.clear();
        self.mv.changed.clear();
        self.changed_references.clear();
        self.changed_outbound.clear();
        self.changed_awaiting.clear();
        self.changed_withheld = false;
        self.changed_errors = false;
        let objs = &self.cs.objs;
        let marks = &mut self.cs.marks;
        self.cs.to_export.retain(|&id| {
            let keep = objs[id as usize].export_op().is_some();
            if !keep {
                marks[id as usize] &= !MARK_EXPORT;
            }
            keep
        });
    }

    /// Marks everything as changed, so the next save writes the whole state (a store
    /// migrating from an older format).
    pub fn mark_all_changed(&mut self) {
        for id in 0..self.cs.len() {
            self.cs.touch(id);
        }
        self.mv.changed.extend(self.mv.objs.keys().copied());
        self.changed_references
            .extend(self.referenced_by.keys().cloned());
        self.changed_outbound
            .extend(self.outbound_refs.keys().copied());
        self.changed_awaiting
            .extend(self.awaiting_refs.keys().copied());
        self.changed_withheld = true;
        self.changed_errors = true;
    }

    // ------------------------------------------------------------------ restoring (stores)

    /// Puts a stored connector-space object back under its id (ids between the last one and
    /// `id` become tombstones) and indexes it. Not recorded as a change; `changed` records it
    /// (an object the store must rewrite or delete).
    pub fn restore_cs(&mut self, id: CsId, obj: CsObject, changed: bool) {
        let anchor = obj.anchor.as_ref().and_then(Key::exact);
        let dn = dn_key(&obj.dn);
        self.restore_cs_keyed(id, obj, anchor, dn, changed);
    }

    /// [`State::restore_cs`] with the object's anchor key ([`Key::exact`]) and DN key
    /// ([`dn_key`]) computed already (a store decoding on several threads).
    pub fn restore_cs_keyed(
        &mut self,
        id: CsId,
        obj: CsObject,
        anchor: Option<Key>,
        dn: Box<str>,
        changed: bool,
    ) {
        let i = id as usize;
        while self.cs.objs.len() < i {
            self.cs.objs.push(CsObject::tombstone());
            self.cs.marks.push(0);
        }
        let mut marks = 0;
        if !obj.gone {
            if let Some(k) = anchor {
                self.by_anchor[obj.connector].insert(k, id);
            }
            self.by_dn[obj.connector].insert(dn, id);
            if !obj.placeholder && (obj.pending_import.is_some() || obj.link.is_none()) {
                marks |= MARK_SYNC;
                self.cs.to_sync.push(id);
            }
            if obj.export_op().is_some() {
                marks |= MARK_EXPORT;
                self.cs.to_export.push(id);
            }
        }
        if changed {
            marks |= MARK_STORE;
            self.cs.changed.push(id);
        }
        if i == self.cs.objs.len() {
            self.cs.objs.push(obj);
            self.cs.marks.push(marks);
        } else {
            self.cs.objs[i] = obj;
            self.cs.marks[i] = marks;
        }
    }

    /// Puts a stored metaverse object back (not recorded as a change).
    pub fn restore_mv(&mut self, obj: MvObject) {
        self.next_mv = self.next_mv.max(obj.id + 1);
        self.mv.objs.insert(obj.id, obj);
    }

    /// Records a stored metaverse object as removed (the store deletes its row).
    pub fn forget_mv(&mut self, id: MvId) {
        self.mv.changed.insert(id);
    }

    /// Sets the next metaverse id (never below one past the highest id held).
    pub fn restore_next_mv(&mut self, next: MvId) {
        self.next_mv = self.next_mv.max(next).max(1);
    }

    /// Puts the stored reference maps and sets back (not recorded as changes).
    pub fn restore_reference(&mut self, connector: ConnIdx, key: Box<str>, from: CsId) {
        let refs = self.referenced_by.entry((connector, key)).or_default();
        if !refs.contains(&from) {
            refs.push(from);
        }
    }

    pub fn restore_outbound_ref(&mut self, target: MvId, referrer: MvId) {
        self.outbound_refs
            .entry(target)
            .or_default()
            .insert(referrer);
    }

    pub fn restore_awaiting_ref(&mut self, target: MvId, referrer: MvId) {
        self.awaiting_refs
            .entry(target)
            .or_default()
            .insert(referrer);
    }

    pub fn restore_withheld(&mut self, mv: MvId) {
        self.withheld.insert(mv);
    }

    pub fn restore_in_error(&mut self, cs: Option<CsId>, mv: Option<MvId>) {
        if let Some(c) = cs {
            self.in_error_cs.insert(c);
        }
        if let Some(m) = mv {
            self.in_error_mv.insert(m);
        }
    }

    /// Drops links to metaverse objects the state does not hold (after a restore) and links of
    /// metaverse objects to connector-space objects it does not hold.
    pub fn drop_dangling_links(&mut self) {
        let mut fix = Vec::new();
        for (i, o) in self.cs.objs.iter().enumerate() {
            if let Some(l) = o.link
                && !self.mv.objs.contains_key(&l.mv)
            {
                fix.push(i);
            }
        }
        for i in fix {
            self.cs[i].link = None;
        }
        let cs = &self.cs.objs;
        let mut changed = Vec::new();
        for m in self.mv.objs.values_mut() {
            let before = m.links.len();
            m.links
                .retain(|&c| cs.get(c as usize).is_some_and(|o| !o.gone));
            if m.links.len() != before {
                changed.push(m.id);
            }
        }
        self.mv.changed.extend(changed);
    }
}

impl CsObject {
    /// The place of an id no object holds (removed before the state was saved).
    pub fn tombstone() -> CsObject {
        CsObject {
            connector: 0,
            object_type: 0,
            dn: "".into(),
            anchor: None,
            imported: Values::default(),
            current: Values::default(),
            pending_import: None,
            export: None,
            new_dn: None,
            link: None,
            provisioned_by: None,
            placeholder: false,
            gone: true,
            read_as: None,
        }
    }

    /// A fingerprint of what a read of the object's record gives it: its type, DN, anchor and
    /// imported values. Any change of these since the object was read from a record makes
    /// the record unknown again (the fingerprint of the stamp no longer matches), whichever
    /// code made it. Stable within one build (a fingerprint stored by another build can only
    /// fail to match, which costs one reading of the record). The object is laid out in `buf`
    /// (cleared first; a scratch buffer kept by the caller) and hashed in one pass.
    pub fn read_fingerprint(&self, buf: &mut Vec<u8>) -> u64 {
        use std::hash::BuildHasher;
        buf.clear();
        buf.extend_from_slice(&(self.object_type as u64).to_le_bytes());
        text(buf, self.dn.as_bytes());
        match &self.anchor {
            Some(a) => lay_out(buf, a),
            None => buf.push(0xff),
        }
        buf.extend_from_slice(&(self.imported.len() as u64).to_le_bytes());
        for (s, v) in self.imported.present() {
            buf.extend_from_slice(&(s as u32).to_le_bytes());
            lay_out(buf, v);
        }
        foldhash::quality::FixedState::with_seed(0x1d_f10e_5eed).hash_one(buf.as_slice())
    }
}

/// A text or bytes, length first.
fn text(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
    buf.extend_from_slice(b);
}

/// Lays a value out for a fingerprint, tag first.
fn lay_out(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => buf.push(0),
        Value::AuthoritativeNull => buf.push(1),
        Value::IgnoreThisFlow => buf.push(2),
        Value::Str(s) => {
            buf.push(3);
            text(buf, s.as_bytes());
        }
        Value::Ref(s) => {
            buf.push(8);
            text(buf, s.as_bytes());
        }
        Value::Num(n) => {
            buf.push(4);
            buf.extend_from_slice(&n.to_le_bytes());
        }
        Value::Bool(b) => buf.extend_from_slice(&[5, u8::from(*b)]),
        Value::Bin(b) => {
            buf.push(6);
            text(buf, b);
        }
        Value::Dt(t) => {
            buf.push(7);
            buf.extend_from_slice(&t.as_nanosecond().to_le_bytes());
        }
        Value::Many(items) => {
            buf.push(9);
            buf.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for x in items.iter() {
                lay_out(buf, x);
            }
        }
    }
}

/// Moves `id` from the keys of `old` to the keys of `new` in an index.
fn reindex<T: PartialEq + Copy>(
    index: &mut FastMap<Key, Vec<T>>,
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
