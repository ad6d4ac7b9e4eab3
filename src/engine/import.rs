//! Import staging: incoming objects of a connected directory matched to connector-space
//! objects.
//!
//! Consumes: [`ImportChange`]s for one connector (from a connector, page by page, from a test
//! block or a generator) and the [`Plan`]. Produces: updated connector-space objects flagged
//! with their pending import (Add, Update, Delete, DeleteAdd) for the next sync, and an
//! [`ImportReport`]. Matching is by anchor, then by DN: an export object (no anchor yet) with
//! the same DN is replaced by the imported object and keeps its link; a known anchor under a
//! new DN is a rename and keeps its link; a full import marks every previously imported object
//! it did not see as deleted, unless the read is incomplete: a record the engine rejects
//! (missing anchor, or an object imported before that now has a type the schema does not
//! declare) makes the read incomplete exactly as a record the reader rejects, and it stages no
//! deletes. Objects of types the connector schema does not declare and that were never
//! imported (organizational units, containers) are left out and counted, not rejected.
//!
//! A record that gives several values for an attribute the schema declares single-valued is
//! a data validation error of its object (Entra's "Data Validation Failure"): no value is
//! picked or dropped for it, the record is not staged (an object imported before keeps what
//! it held and counts as seen, so it is not deleted; a new object is not added) and the error
//! is reported with the object's DN ([`ImportReport::invalid`]). The read stays complete. A
//! record whose anchor attribute has several values cannot name its object: it is rejected.
//!
//! A delete names the object by anchor, by DN or both (directories that track changes report
//! deletes by GUID or entryUUID only); the anchor decides when both are given. A partial
//! upsert ([`ImportChange::Partial`]) carries only the attributes that changed: the others
//! keep their imported values (it is merged into the object as the read reaches it, so two
//! partial changes of one object in one read both apply).
//!
//! A read is classified record by record as it arrives ([`Read::push`], [`Read::page`]), so a
//! connector can stream pages into it: a record identical to the object the connector space
//! holds is only marked seen (one bit per connector-space object), everything else is kept for
//! staging. [`preview`] tells, before anything is staged, how many objects the read would
//! delete (the runner's complete-read rule, docs/DECISIONS.md), and [`stage`] stages it.

use super::compile::{ConnIdx, ConnectorPlan, Plan};
use super::model::{
    CsId, CsObject, ExportOp, Key, PendingImport, ReadStamp, State, Values, dn_key,
};
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

/// One change a connector reports.
#[derive(Debug, Clone)]
pub enum ImportChange {
    /// An object with all its attributes: added or changed (delta import), or any object
    /// (full import). An attribute it does not list has no value.
    Upsert(ImportObject),
    /// A changed object with only the attributes that changed (a directory's partial entry):
    /// the attributes it does not list keep their imported values, one listed as NULL is
    /// cleared. It must carry its anchor and name an object imported before.
    Partial(ImportObject),
    /// A deleted object, by anchor, by DN or both (at least one; the anchor decides).
    Delete {
        anchor: Option<Value>,
        dn: Option<String>,
    },
    /// An upsert read from a record of a file, with the record's digest: staging it also
    /// records what the object was read from ([`CsObject::read_as`]), so that the next read
    /// recognises the record ([`KnownRecords`]).
    Record(RecordDigest, ImportObject),
    /// A record identical to the one a known object was read from ([`KnownRecords::find`]),
    /// not read again: the object is as it was, and the read shows it.
    Unchanged(Known),
}

/// The digest of one record of a file as its connector read it: the first 16 bytes of the
/// SHA-256 of the read's basis ([`KnownRecords::new`]) and the record's text.
pub type RecordDigest = [u8; 16];

/// A record the connector space knows ([`KnownRecords::find`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    index: u32,
    id: CsId,
}

/// The records a connector's objects were read from, for a connector that recognises the
/// records of its files from one read to the next
/// ([`crate::connector::Connector::recognises_records`]): a record whose digest is known is
/// handed over as [`ImportChange::Unchanged`] without being read, which is what a read of
/// it would find (its object shows exactly what the record gives and has nothing staged that
/// the record would confirm).
///
/// The digests are taken under a basis: what else decides what a record reads as (the
/// connector's settings, the bundle, this build). Records read under another basis are
/// unknown, and so is a record whose object changed in any way since it was read from it
/// ([`CsObject::read_fingerprint`]).
pub struct KnownRecords {
    /// SHA-256 with the basis taken in.
    seeded: sha2::Sha256,
    by_digest: super::model::FastMap<RecordDigest, u32>,
    /// Each known record's object: its id, DN and DN key.
    objects: Vec<(CsId, Arc<str>, Box<str>)>,
}

impl std::fmt::Debug for KnownRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownRecords")
            .field("records", &self.objects.len())
            .finish()
    }
}

impl KnownRecords {
    /// The records of `connector`'s objects read under `basis` that a read would find
    /// unchanged (see [`unchanged`]), of the objects with no value staged for export.
    pub fn new(state: &State, plan: &Plan, connector: ConnIdx, basis: &[u8]) -> KnownRecords {
        use sha2::Digest;
        let mut seeded = sha2::Sha256::new();
        seeded.update((basis.len() as u64).to_le_bytes());
        seeded.update(basis);
        let mut known = KnownRecords {
            seeded,
            by_digest: Default::default(),
            objects: Vec::new(),
        };
        let Some(cplan) = plan.connectors.get(connector) else {
            return known;
        };
        let mut buf = Vec::new();
        for (key, id) in state.dn_keys(connector) {
            let Some(o) = state.cs().get(id as usize) else {
                continue;
            };
            let Some(stamp) = o.read_as else {
                continue;
            };
            let Some(tplan) = cplan.types.get(o.object_type) else {
                continue;
            };
            // An object with values staged for export (its current values are not its
            // imported ones) is left to be read: after an export its record has most likely
            // changed, and what reading it confirms is the import's to decide.
            let recognisable = o.connector == connector
                && !o.gone
                && !o.placeholder
                && o.export != Some(ExportOp::Add)
                && o.new_dn.as_deref().is_none_or(|n| *dn_key(n) != *key)
                && o.imported.len() == tplan.len()
                && Values::ptr_eq(&o.current, &o.imported)
                && o.anchor
                    .as_ref()
                    .is_some_and(|a| by_anchor(state, connector, a) == Some(id))
                && stamp.object == o.read_fingerprint(&mut buf);
            if recognisable {
                let index = known.objects.len() as u32;
                if known.by_digest.insert(stamp.record, index).is_none() {
                    known.objects.push((id, o.dn.clone(), key.into()));
                }
            }
        }
        known
    }

    /// The digest of a record given as its parts (a file's logical lines, say): each part is
    /// taken with its length, so parts never run into each other.
    pub fn digest<'a>(&self, parts: impl IntoIterator<Item = &'a [u8]>) -> RecordDigest {
        use sha2::Digest;
        let mut h = self.seeded.clone();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        let full = h.finalize();
        let mut d = [0u8; 16];
        d.copy_from_slice(&full[..16]);
        d
    }

    /// The known record with this digest.
    pub fn find(&self, digest: &RecordDigest) -> Option<Known> {
        let &index = self.by_digest.get(digest)?;
        Some(Known {
            index,
            id: self.objects[index as usize].0,
        })
    }

    /// The DN of a known record's object, as the record gives it.
    pub fn dn(&self, k: Known) -> &str {
        &self.objects[k.index as usize].1
    }

    /// The DN key ([`dn_key`]) of a known record's object.
    pub fn dn_key(&self, k: Known) -> &str {
        &self.objects[k.index as usize].2
    }

    /// The number of known records.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

impl ImportChange {
    /// A delete by DN.
    pub fn delete_dn(dn: impl Into<String>) -> ImportChange {
        ImportChange::Delete {
            anchor: None,
            dn: Some(dn.into()),
        }
    }

    /// A delete by anchor (no DN).
    pub fn delete_anchor(anchor: Value) -> ImportChange {
        ImportChange::Delete {
            anchor: Some(anchor),
            dn: None,
        }
    }

    /// The object of an upsert or a partial upsert.
    pub fn object(&self) -> Option<&ImportObject> {
        match self {
            ImportChange::Upsert(o) | ImportChange::Partial(o) | ImportChange::Record(_, o) => {
                Some(o)
            }
            ImportChange::Delete { .. } | ImportChange::Unchanged(_) => None,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub adds: usize,
    pub updates: usize,
    pub renames: usize,
    pub deletes: usize,
    pub unchanged: usize,
    /// Of the unchanged objects, those whose record the connector recognised by its digest
    /// and did not read ([`ImportChange::Unchanged`]).
    pub recognised: usize,
    /// Objects that could not be staged (missing anchor, an object imported before that now
    /// has an undeclared type, a partial upsert of an unknown object), with the reason. Any of
    /// them makes the read incomplete.
    pub rejected: Vec<(String, String)>,
    /// Objects left out because the connector schema does not declare their type (and they were
    /// never imported), counted by type.
    pub out_of_schema: BTreeMap<String, usize>,
    /// Objects not staged because of a data validation error (several values of a
    /// single-valued attribute): DN and reason. An object imported before keeps what it held
    /// and is not deleted; the read stays complete.
    pub invalid: Vec<(String, String)>,
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
        /// A partial upsert: the slots it gives (the others are the imported values of the
        /// object as staging reaches the record).
        partial: Option<Box<[bool]>>,
    },
    /// Cannot be staged: the reason.
    Rejected(String),
    /// Of a declared type with an anchor, but its values do not fit the schema (a data
    /// validation error): not staged. The anchor names the object it stands for.
    Invalid { anchor: Value, why: String },
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
        && o.export != Some(ExportOp::Delete)
}

/// The object an anchor value names in a connector's space (anchors are matched as the
/// engine stores them: shaped as single values).
fn by_anchor(state: &State, connector: ConnIdx, anchor: &Value) -> Option<CsId> {
    let k = Key::exact(&crate::engine::flow::shape(anchor.clone(), false))?;
    state.cs_by_anchor(connector, &k)
}

/// The object a delete names: by anchor when it gives one, else by DN.
fn delete_target(
    state: &State,
    connector: ConnIdx,
    anchor: Option<&Value>,
    dn: Option<&str>,
) -> Option<CsId> {
    match (anchor, dn) {
        (Some(a), _) => by_anchor(state, connector, a),
        (None, Some(dn)) => state.cs_by_dn(connector, dn),
        (None, None) => None,
    }
}

/// Classifies one record: its type, values by slot and anchor, or why it cannot be staged. A
/// partial record is merged into the object it names as the state holds it.
fn classify(
    state: &State,
    cplan: &ConnectorPlan,
    connector: ConnIdx,
    obj: &mut ImportObject,
    partial: bool,
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
        let by_any_anchor = || {
            cplan.types.iter().any(|t| {
                let Some(a) = t.anchor.filter(|&a| Some(a) != t.dn) else {
                    return false;
                };
                obj.attrs
                    .iter()
                    .any(|(n, v)| **n == *t.names[a] && by_anchor(state, connector, v).is_some())
            })
        };
        if by_dn || by_any_anchor() {
            return Record::Rejected(format!(
                "object type `{}` is not declared in the connector schema, but the object was imported before",
                obj.object_type
            ));
        }
        return Record::OutOfSchema;
    };
    let tplan = &cplan.types[ty];
    let mut values = vec![Value::Null; tplan.len()];
    let mut given = partial.then(|| vec![false; tplan.len()].into_boxed_slice());
    // Single-valued attributes given several values: (name, number of values).
    let mut overfull: Vec<(&str, usize)> = Vec::new();
    // The values move into the typed record (the object is not used for them again).
    for (name, v) in &mut obj.attrs {
        if let Some(s) = tplan.slot(name)
            && s != tplan.dn.unwrap_or(usize::MAX)
        {
            if !tplan.kinds[s].1
                && let Some(n) = several_values(v)
            {
                overfull.push((name, n));
            }
            // Multi-valued attributes always hold collections.
            values[s] = crate::engine::flow::shape(std::mem::take(v), tplan.kinds[s].1);
            if let Some(g) = given.as_mut() {
                g[s] = true;
            }
        }
    }
    if let Some(s) = tplan.dn {
        values[s] = Value::str(obj.dn.as_str());
        if let Some(g) = given.as_mut() {
            g[s] = true;
        }
    }
    if let Some((name, n)) = overfull
        .iter()
        .find(|(name, _)| tplan.anchor.is_some_and(|a| *tplan.names[a] == **name))
    {
        return Record::Rejected(format!(
            "the anchor attribute `{name}` has {n} values: the object cannot be identified"
        ));
    }
    let Some(anchor) = tplan
        .anchor
        .map(|s| values[s].clone())
        .filter(|v| !v.is_null())
    else {
        return Record::Rejected(if partial {
            "a partial update without the anchor value".into()
        } else {
            "the anchor attribute has no value".into()
        });
    };
    if !overfull.is_empty() {
        let why = match overfull.as_slice() {
            [(name, n)] => format!(
                "`{name}` is single-valued in the schema but has {n} values: the object is not imported until it has one"
            ),
            many => {
                let list: Vec<String> = many
                    .iter()
                    .map(|(name, n)| format!("`{name}` ({n} values)"))
                    .collect();
                format!(
                    "{} are single-valued in the schema: the object is not imported until each has one value",
                    list.join(", ")
                )
            }
        };
        return Record::Invalid { anchor, why };
    }
    if let Some(g) = &given {
        // The attributes a partial record does not give are the object's imported ones.
        let known = by_anchor(state, connector, &anchor)
            .map(|id| &state.cs()[id as usize])
            .filter(|o| !o.gone && !o.placeholder);
        match known {
            None => {
                return Record::Rejected(
                    "a partial update of an object that was not imported before (its other attributes are unknown)".into(),
                );
            }
            Some(o) if o.object_type != ty || o.imported.len() != values.len() => {
                return Record::Rejected(format!(
                    "a partial update that changes the object type to `{}`",
                    obj.object_type
                ));
            }
            Some(o) => merge_partial(&mut values, g, &o.imported),
        }
    }
    Record::Typed {
        ty,
        values,
        anchor,
        key,
        partial: given,
    }
}

/// The number of values of an imported value when it has two different values or more (empty
/// strings are no value).
fn several_values(v: &Value) -> Option<usize> {
    let Value::Many(items) = v else {
        return None;
    };
    let mut values = items
        .iter()
        .filter(|x| !x.is_null() && !matches!(x, Value::Str(s) if s.is_empty()));
    let first = values.next()?;
    let mut n = 1;
    let mut differ = false;
    for x in values {
        n += 1;
        differ |= x != first;
    }
    differ.then_some(n)
}

/// Fills the slots a partial record does not give with the stored values.
fn merge_partial(values: &mut [Value], given: &[bool], stored: &Values) {
    for ((v, &g), old) in values.iter_mut().zip(given).zip(stored) {
        if !g {
            *v = old.clone();
        }
    }
}

/// Whether staging a record would change nothing of object `id`: the object shows the same
/// type, DN (in the same spelling), anchor and values, and has no staged state the record
/// would confirm (an export add, a staged new DN under this DN, a staged DN value).
fn unchanged(
    state: &State,
    cplan: &ConnectorPlan,
    id: CsId,
    ty: usize,
    values: &[Value],
    anchor: &Value,
    dn: &str,
) -> bool {
    let Some(o) = state.cs().get(id as usize) else {
        return false;
    };
    let dn_slot = cplan.types[ty].dn;
    !o.gone
        && !o.placeholder
        && o.object_type == ty
        && o.anchor.as_ref() == Some(anchor)
        && o.export != Some(ExportOp::Add)
        && *o.dn == *dn
        && o.new_dn.as_deref().is_none_or(|n| dn_key(n) != dn_key(dn))
        && o.imported.eq_dense(values)
        && o.current.len() == values.len()
        && dn_slot.is_none_or(|s| o.current[s] == o.imported[s])
}

/// Connector-space objects a read showed: one bit per object.
#[derive(Debug, Clone, Default)]
struct Seen(Vec<u64>);

impl Seen {
    fn with_capacity(objects: usize) -> Seen {
        Seen(vec![0; objects.div_ceil(64)])
    }

    /// Marks `id`; false when it was marked already.
    fn insert(&mut self, id: CsId) -> bool {
        let (w, b) = (id as usize / 64, id % 64);
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        let had = self.0[w] & (1 << b) != 0;
        self.0[w] |= 1 << b;
        !had
    }

    fn contains(&self, id: CsId) -> bool {
        self.0
            .get(id as usize / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }
}

/// A read of one connector, each record classified once against the connector space as it
/// was before the read, as it arrives: [`preview`] tells what staging it would do, [`stage`]
/// stages it. Only records that would change something are kept.
pub struct Read {
    connector: ConnIdx,
    /// Objects the read showed (matched by anchor), changed or not.
    seen: Seen,
    /// Export objects (no anchor yet) the read showed by their DN.
    named: Seen,
    /// The records to stage, in the order read.
    items: Vec<Item>,
    /// Records of a declared type with an anchor (what a full read holds).
    objects: usize,
    /// Records identical to the stored object (not kept).
    unchanged: usize,
    /// Records that cannot be staged: DN and reason.
    rejected: Vec<(String, String)>,
    /// Records not staged because of a data validation error: DN and reason.
    invalid: Vec<(String, String)>,
    /// Records of undeclared types, by type.
    out_of_schema: BTreeMap<String, usize>,
    /// The connector space held no object of the connector when the read began.
    fresh: bool,
    /// What [`stage_ahead`] staged of the read so far.
    ahead: ImportReport,
    /// Unchanged objects not stamped as read from their record as they are (another digest,
    /// no stamp, or a fingerprint of another build): stamped by [`stage`].
    restamps: Vec<(CsId, RecordDigest)>,
    /// Records recognised by their digest ([`ImportChange::Unchanged`]).
    recognised: usize,
    /// Scratch for the fingerprints of stamps.
    scratch: Vec<u8>,
}

enum Item {
    Delete {
        anchor: Option<Value>,
        dn: Option<String>,
    },
    Upsert {
        dn: Arc<str>,
        ty: usize,
        values: Held,
        anchor: Value,
        key: Box<str>,
        partial: Option<Box<[bool]>>,
        /// The digest of the record it was read from ([`ImportChange::Record`]).
        digest: Option<RecordDigest>,
    },
}

/// A record's values while the read holds them: laid out by slot for a read staged as it
/// arrives (`Read::may_stage_ahead`), and for a read held to its end only the slots that hold
/// a value, their texts shared with the object's where they are equal, so that a read that
/// confirms a hundred thousand exported objects does not hold a second copy of each.
enum Held {
    Dense(Vec<Value>),
    Sparse(Values),
    /// Exactly the current values of this object (the first record of it in the read, which
    /// nothing staged before it changes): what confirms an export holds nothing of its own.
    Current(CsId),
}

impl Held {
    fn into_values(self, state: &State) -> Values {
        match self {
            Held::Dense(values) => Values::from_dense(values),
            Held::Sparse(values) => values,
            Held::Current(id) => state.cs()[id as usize].current.clone(),
        }
    }
}

impl Read {
    /// An empty read of `connector` (its seen set sized for the connector space).
    pub fn new(state: &State, connector: ConnIdx) -> Read {
        Read {
            connector,
            seen: Seen::with_capacity(state.cs().len()),
            named: Seen::default(),
            items: Vec::new(),
            objects: 0,
            unchanged: 0,
            rejected: Vec::new(),
            invalid: Vec::new(),
            out_of_schema: BTreeMap::new(),
            fresh: !state.cs().iter().any(|o| o.connector == connector),
            ahead: ImportReport::default(),
            restamps: Vec::new(),
            recognised: 0,
            scratch: Vec::new(),
        }
    }

    /// Whether the read's records may be staged as they are classified ([`stage_ahead`]):
    /// when the connector space held no object of the connector before the read, no rule of
    /// a complete read can stop its staging (there is nothing to delete), so only a read that
    /// fails stages nothing, and then the state is loaded again.
    pub fn may_stage_ahead(&self) -> bool {
        self.fresh
    }

    /// The connector read.
    pub fn connector(&self) -> ConnIdx {
        self.connector
    }

    /// Records of a declared type with an anchor, so far.
    pub fn objects(&self) -> usize {
        self.objects
    }

    /// Records identical to what the connector space holds, so far (not kept).
    pub fn unchanged(&self) -> usize {
        self.unchanged
    }

    /// Records kept for staging, so far (changes, deletes).
    pub fn held(&self) -> usize {
        self.items.len()
    }

    /// Records that cannot be staged, so far.
    pub fn rejected(&self) -> usize {
        self.rejected.len()
    }

    /// Classifies a page of records.
    pub fn page(&mut self, state: &State, plan: &Plan, changes: Vec<ImportChange>) {
        for c in changes {
            self.push(state, plan, c);
        }
    }

    /// Classifies one record against the connector space.
    pub fn push(&mut self, state: &State, plan: &Plan, change: ImportChange) {
        let connector = self.connector;
        let Some(cplan) = plan.connectors.get(connector) else {
            return;
        };
        let (obj, partial, digest) = match change {
            ImportChange::Delete { anchor, dn } => {
                if anchor.is_none() && dn.is_none() {
                    self.rejected
                        .push((String::new(), "a delete names neither anchor nor DN".into()));
                } else {
                    self.items.push(Item::Delete { anchor, dn });
                }
                return;
            }
            ImportChange::Upsert(o) => (o, false, None),
            ImportChange::Partial(o) => (o, true, None),
            ImportChange::Record(digest, o) => (o, false, Some(digest)),
            ImportChange::Unchanged(k) => {
                self.recognised(state, k);
                return;
            }
        };
        let mut obj = obj;
        match classify(state, cplan, connector, &mut obj, partial) {
            Record::Rejected(why) => self.rejected.push((obj.dn, why)),
            Record::Invalid { anchor, why } => {
                // In the source, so not deleted; its object keeps what it held.
                self.objects += 1;
                if let Some(id) = by_anchor(state, connector, &anchor) {
                    self.seen.insert(id);
                }
                self.invalid.push((obj.dn, why));
            }
            Record::OutOfSchema => *self.out_of_schema.entry(obj.object_type).or_default() += 1,
            Record::Typed {
                ty,
                mut values,
                anchor,
                key,
                partial,
            } => {
                self.objects += 1;
                // The object the record stands for: by its anchor, or an export object (no
                // anchor yet) by its DN, as staging finds it; and whether this is the read's
                // first record of it.
                let known = match by_anchor(state, connector, &anchor) {
                    Some(id) => {
                        // The first record of an object that changes nothing is only marked
                        // seen (a later record of the same object is kept: staging applies
                        // them in order).
                        let first = self.seen.insert(id);
                        if first && unchanged(state, cplan, id, ty, &values, &anchor, &obj.dn) {
                            self.unchanged += 1;
                            if let Some(d) = digest
                                && !stamped(&state.cs()[id as usize], d, &mut self.scratch)
                            {
                                self.restamps.push((id, d));
                            }
                            return;
                        }
                        Some((id, first))
                    }
                    None => state
                        .cs_by_dn_key(connector, &key)
                        .filter(|&id| state.cs()[id as usize].anchor.is_none())
                        .map(|id| (id, self.named.insert(id))),
                };
                let mut current = None;
                let mut assigned_held = None;
                if let Some((id, first)) = known {
                    let o = &state.cs()[id as usize];
                    let assigned = cplan.types[ty].anchor.filter(|&a| {
                        first
                            && o.object_type == ty
                            && o.current.get(a).is_some_and(Value::is_null)
                            && values.get(a).is_some_and(|v| !v.is_null())
                    });
                    if first && o.object_type == ty && o.current.eq_dense(&values) {
                        current = Some(id);
                    } else if let Some(a) = assigned
                        && o.current.eq_dense_but(&values, a)
                    {
                        // Its current values and the anchor the target assigned (the
                        // confirmation of an add): they are what the object holds but one.
                        let mut held = o.current.clone();
                        held.set(a, std::mem::take(&mut values[a]));
                        assigned_held = Some(held);
                    } else {
                        // Values equal to those the object holds are taken as the
                        // allocations it holds (once: staging finds them shared).
                        o.current.share_into(&mut values);
                        if !Values::ptr_eq(&o.current, &o.imported) {
                            o.imported.share_into(&mut values);
                        }
                    }
                }
                let values = match (current, assigned_held) {
                    _ if self.fresh => Held::Dense(values),
                    (Some(id), _) => Held::Current(id),
                    (None, Some(held)) => Held::Sparse(held),
                    (None, None) => Held::Sparse(Values::from_dense(values)),
                };
                self.items.push(Item::Upsert {
                    dn: obj.dn.into(),
                    ty,
                    values,
                    anchor,
                    key,
                    partial,
                    digest,
                });
            }
        }
    }

    /// A record the connector recognised by its digest: it shows its object exactly as the
    /// object is ([`KnownRecords::new`]). The read's first record of the object is only marked
    /// seen, as [`Read::push`] does with an unchanged record; a later one is kept as what the
    /// object holds now, as it would be read.
    fn recognised(&mut self, state: &State, k: Known) {
        let Some(o) = state.cs().get(k.id as usize) else {
            return;
        };
        self.objects += 1;
        self.recognised += 1;
        if self.seen.insert(k.id) {
            self.unchanged += 1;
            return;
        }
        let Some(anchor) = o.anchor.clone() else {
            return;
        };
        self.items.push(Item::Upsert {
            dn: o.dn.clone(),
            ty: o.object_type,
            values: Held::Sparse(o.imported.clone()),
            anchor,
            key: dn_key(&o.dn),
            partial: None,
            digest: o.read_as.map(|r| r.record),
        });
    }
}

/// Classifies every record of a read of `connector` (a read given whole).
pub fn read(state: &State, plan: &Plan, connector: ConnIdx, changes: Vec<ImportChange>) -> Read {
    let mut r = Read::new(state, connector);
    r.page(state, plan, changes);
    r
}

/// What staging `read` would do, without staging anything: how many known objects a full read
/// (`full`) or the read's explicit deletes would delete, and how many records it holds.
pub fn preview(state: &State, read: &Read, full: bool) -> ReadPreview {
    let connector = read.connector;
    let mut p = ReadPreview {
        objects: read.objects,
        rejected: read.rejected.len(),
        ..ReadPreview::default()
    };
    if read.fresh {
        // Nothing was imported before: nothing to delete (records staged ahead are not
        // objects imported before).
        return p;
    }
    let mut explicit: HashSet<CsId> = HashSet::new();
    for item in &read.items {
        if let Item::Delete { anchor, dn } = item
            && let Some(id) = delete_target(state, connector, anchor.as_ref(), dn.as_deref())
            && expected(&state.cs()[id as usize], connector)
        {
            explicit.insert(id);
        }
    }
    let mut deletes = explicit.len();
    for (i, o) in state.cs().iter().enumerate() {
        if !expected(o, connector) {
            continue;
        }
        p.known += 1;
        let id = i as CsId;
        if full && p.rejected == 0 && !read.seen.contains(id) && !explicit.contains(&id) {
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
    // What was staged ahead, with what classification counted.
    let mut report = read.ahead;
    report.unchanged += read.unchanged;
    report.rejected.extend(read.rejected);
    report.invalid.extend(read.invalid);
    for (ty, n) in read.out_of_schema {
        *report.out_of_schema.entry(ty).or_default() += n;
    }
    report.recognised += read.recognised;
    // Unchanged objects read from a record they were not stamped with take its digest first,
    // so that a later record of the same object in this read (staged below) stamps it last.
    let mut buf = Vec::new();
    for (id, record) in read.restamps {
        stamp(state, id, Some(record), &mut buf);
    }
    let mut seen = read.seen;
    apply(state, plan, connector, read.items, &mut seen, &mut report);
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
                    && !seen.contains(*i as CsId)
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

/// Stages the records of `read` classified so far, ahead of the read's end, and keeps what
/// it counted for the read's [`stage`], which stages the rest. Only for a read that nothing
/// can stop once it is complete (see [`Read::may_stage_ahead`]): what is staged ahead stays
/// staged unless the state is loaded again.
pub fn stage_ahead(state: &mut State, plan: &Plan, read: &mut Read) {
    // The list keeps its room for the next page.
    let items = read.items.drain(..);
    apply(
        state,
        plan,
        read.connector,
        items,
        &mut read.seen,
        &mut read.ahead,
    );
}

/// Applies classified records to the connector space in order, counting them in `report` and
/// marking the objects they stand for in `seen`.
fn apply(
    state: &mut State,
    plan: &Plan,
    connector: ConnIdx,
    items: impl IntoIterator<Item = Item>,
    seen: &mut Seen,
    report: &mut ImportReport,
) {
    let Some(cplan) = plan.connectors.get(connector) else {
        return;
    };
    // Scratch for the fingerprints of stamps.
    let mut buf = Vec::new();
    for item in items {
        match item {
            Item::Delete { anchor, dn } => {
                if let Some(id) = delete_target(state, connector, anchor.as_ref(), dn.as_deref()) {
                    seen.insert(id);
                    if stage_delete(state, id) {
                        report.deletes += 1;
                    }
                }
            }
            Item::Upsert {
                dn,
                ty,
                values,
                anchor,
                key,
                partial,
                digest,
            } => {
                let mut values = values.into_values(state);
                let tplan = &cplan.types[ty];
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
                // A partial record takes the attributes it does not give from the object as
                // it is now (an earlier record of this read may have changed it).
                if let (Some(given), Some(id)) = (&partial, target) {
                    let o = &state.cs()[id as usize];
                    if o.object_type == ty && o.imported.len() == values.len() {
                        let mut dense = values.to_vec();
                        merge_partial(&mut dense, given, &o.imported);
                        values = Values::from_dense(dense);
                    }
                }
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
                            && o.imported == values
                        {
                            report.unchanged += 1;
                            if let Some(d) = digest
                                && !stamped(o, d, &mut buf)
                            {
                                stamp(state, id, digest, &mut buf);
                            }
                            continue;
                        }
                        let o = &mut state.cs_mut()[id as usize];
                        let was_placeholder = o.placeholder;
                        // DNs that differ only in spacing, case or escaping are one DN
                        // (the new spelling is taken without a rename).
                        let renamed = dn_key(&o.dn) != key;
                        let respelled = !renamed && o.dn != dn;
                        if respelled {
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
                            || o.imported != values
                            || was_placeholder
                            || o.anchor.is_none();
                        // Whether a sync could see the change: anything but confirmed values
                        // that no sync reads as imported values (see `visible` below).
                        let seen_by_sync = renamed
                            || retyped
                            || was_placeholder
                            || o.anchor.is_none()
                            || o.export == Some(ExportOp::Add)
                            || o.new_dn.is_some()
                            || plan
                                .reads_imported
                                .get(&(connector, ty))
                                .is_some_and(|slots| {
                                    o.imported.len() != values.len()
                                        || slots.iter().any(|&s| o.imported[s] != values[s])
                                });
                        // Whether the change can only be a confirmation of what was exported
                        // (DECISIONS 38): the DN as it was, spelling and all, and no imported
                        // value that an outbound merge flow keeps changed. (What may change of
                        // the current values is checked below.)
                        let confirming = !renamed
                            && !respelled
                            && !retyped
                            && !was_placeholder
                            && o.new_dn.is_none()
                            && o.imported.len() == values.len()
                            && plan
                                .merges_imported
                                .get(&(connector, ty))
                                .is_none_or(|slots| {
                                    slots.iter().all(|&s| o.imported[s] == values[s])
                                });
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
                        if o.export == Some(ExportOp::Add) {
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
                        if !retyped
                            && !was_placeholder
                            && o.current.len() == values.len()
                            && !Values::ptr_eq(&o.current, &o.imported)
                        {
                            // Only slots that hold a value in one of the two can differ.
                            let mut slots: Vec<usize> = o
                                .current
                                .present()
                                .chain(o.imported.present())
                                .map(|(s, _)| s)
                                .collect();
                            slots.sort_unstable();
                            slots.dedup();
                            slots.retain(|&s| {
                                Some(s) != tplan.dn
                                    && o.current[s] != o.imported[s]
                                    && values[s] == o.imported[s]
                            });
                            if !slots.is_empty() {
                                let mut dense = current.to_vec();
                                for s in slots {
                                    dense[s] = o.current[s].clone();
                                }
                                current = Values::from_dense(dense);
                            }
                        }
                        // A sync reads the current values, and the imported ones only where
                        // `Plan::reads_imported` says: an import that changes neither (the
                        // confirmation of exported values) is saved but not synchronized.
                        let current_kept = o.current == current;
                        let visible = seen_by_sync || !current_kept;
                        // Current values may change only where outbound sync neither writes
                        // nor reads them (the anchor a target assigned to an add, say).
                        let confirming = confirming
                            && (current_kept
                                || o.current.len() == current.len()
                                    && plan.outbound_current.get(&(connector, ty)).is_none_or(
                                        |slots| slots.iter().all(|&s| o.current[s] == current[s]),
                                    ));
                        // A read that confirms what the object holds keeps what it holds: its
                        // confirmed values become its current ones (one allocation, the texts
                        // shared with the metaverse's), and the values read are dropped.
                        o.imported = if o.current == values {
                            o.current.clone()
                        } else {
                            values
                        };
                        state.set_cs_current_values(plan, id, current);
                        let o = &mut state.cs_mut()[id as usize];
                        if changed {
                            let kind = if retyped {
                                PendingImport::DeleteAdd
                            } else if was_placeholder {
                                PendingImport::Add
                            } else if confirming {
                                PendingImport::InboundUpdate
                            } else {
                                PendingImport::Update
                            };
                            if visible {
                                o.pending_import = Some(merge_pending(o.pending_import, kind));
                            }
                            if was_placeholder {
                                report.adds += 1;
                            } else if !renamed {
                                report.updates += 1;
                            }
                        } else {
                            report.unchanged += 1;
                        }
                        stamp(state, id, digest, &mut buf);
                    }
                    None => {
                        // One allocation for the imported and the current values.
                        let id = state.add_cs_keyed(
                            CsObject {
                                connector,
                                object_type: ty,
                                dn,
                                anchor: Some(anchor),
                                current: Values::new(values.len()),
                                imported: values.clone(),
                                pending_import: Some(PendingImport::Add),
                                export: None,
                                new_dn: None,
                                link: None,
                                provisioned_by: None,
                                placeholder: false,
                                gone: false,
                                read_as: None,
                            },
                            key,
                        );
                        state.set_cs_current_shared(plan, id, values);
                        stamp(state, id, digest, &mut buf);
                        seen.insert(id);
                        report.adds += 1;
                    }
                }
            }
        }
    }
}

/// Whether object `o` is stamped as read from the record `d` as it is now (a stamp from
/// another build's fingerprint is renewed, or the record would never be recognised).
fn stamped(o: &CsObject, d: RecordDigest, buf: &mut Vec<u8>) -> bool {
    o.read_as
        .is_some_and(|r| r.record == d && r.object == o.read_fingerprint(buf))
}

/// Records that object `id` was read from the record with this digest (`None`: from none),
/// with the fingerprint the object has now ([`CsObject::read_as`]).
fn stamp(state: &mut State, id: CsId, record: Option<RecordDigest>, buf: &mut Vec<u8>) {
    let stamp = record.map(|record| ReadStamp {
        record,
        object: state.cs()[id as usize].read_fingerprint(buf),
    });
    state.cs_mut().set_read_as(id as usize, stamp);
}

pub(crate) fn merge_pending(old: Option<PendingImport>, new: PendingImport) -> PendingImport {
    match (old, new) {
        (Some(PendingImport::Add), PendingImport::Update) => PendingImport::Add,
        // A confirmation adds nothing to a change staged before it; an object staged as
        // deleted that shows again is updated, as before.
        (Some(PendingImport::Delete), PendingImport::InboundUpdate) => PendingImport::Update,
        (Some(old), PendingImport::InboundUpdate) => old,
        (_, n) => n,
    }
}

/// Stages the deletion of an imported object; returns false when there was nothing to delete.
pub(crate) fn stage_delete(state: &mut State, id: CsId) -> bool {
    let Some(o) = state.cs().get(id as usize) else {
        return false;
    };
    if o.gone || o.placeholder || o.anchor.is_none() {
        return false;
    }
    if o.pending_import != Some(PendingImport::Delete) {
        state.cs_mut()[id as usize].pending_import = Some(PendingImport::Delete);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No outbound rule: an update of an object is one that only inbound sync reads
    /// (`PendingImport::InboundUpdate`) unless its DN changes.
    const BUNDLE: &str = r#"
metaverse {
  object person {
    employeeId string
  }
}
connector "ad" ad {
  object user anchor objectGUID {
    objectGUID binary
    title      string
    department string
    mail       string
  }
}
"#;

    fn plan() -> Plan {
        plan_with("")
    }

    /// The plan of [`BUNDLE`] with `rules`.
    fn plan_with(rules: &str) -> Plan {
        let mut map = crate::source::SourceMap::new();
        map.add("t.idf", format!("{BUNDLE}{rules}"));
        let checked = crate::frontend::check(&map);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        Plan::with_engine(&checked.bundle, crate::eval::EngineKind::Interp)
    }

    fn guid(i: u8) -> Value {
        Value::bin(vec![i, 0, 0, 1])
    }

    fn dn(i: u8) -> String {
        format!("CN=U{i},OU=Users,DC=contoso,DC=com")
    }

    fn user(i: u8, attrs: &[(&str, &str)]) -> ImportObject {
        let mut all = vec![("objectGUID".to_string(), guid(i))];
        all.extend(attrs.iter().map(|(n, v)| (n.to_string(), Value::from(*v))));
        ImportObject {
            dn: dn(i),
            object_type: "user".into(),
            attrs: all,
        }
    }

    /// A state holding users 0..n (title "T", department "D"), their pending imports
    /// processed.
    fn imported(plan: &Plan, n: u8) -> State {
        let mut state = State::new(plan.connectors.len());
        let changes = (0..n)
            .map(|i| ImportChange::Upsert(user(i, &[("title", "T"), ("department", "D")])))
            .collect();
        let r = import(&mut state, plan, 0, changes, true);
        assert_eq!(r.adds, n as usize);
        for id in 0..state.cs().len() {
            state.cs_mut()[id].pending_import = None;
        }
        state
    }

    fn value(plan: &Plan, state: &State, i: u8, attr: &str) -> Value {
        let t = &plan.connectors[0].types[0];
        let id = state.cs_by_dn(0, &dn(i)).unwrap();
        state.cs()[id as usize].imported[t.slot(attr).unwrap()].clone()
    }

    /// Stages exports for users 0 to `n - 1` (a title for user 0 and 3, a mail for user 1,
    /// both for user 2) and returns the records of a read that shows them done.
    fn stage_and_show(plan: &Plan, state: &mut State, n: u8) -> Vec<ImportChange> {
        let t = &plan.connectors[0].types[0];
        let (title, mail) = (t.slot("title").unwrap(), t.slot("mail").unwrap());
        let staged = [(0, "X", ""), (1, "T", "m@x"), (2, "X", "m@x"), (3, "X", "")];
        let mut shown = Vec::new();
        for &(i, t_, m) in staged.iter().take(n as usize) {
            let id = state.cs_by_dn(0, &dn(i)).unwrap();
            let mut current = state.cs()[id as usize].imported.to_vec();
            current[title] = Value::from(t_);
            let mut attrs = vec![("title", t_), ("department", "D")];
            if !m.is_empty() {
                current[mail] = Value::from(m);
                attrs.push(("mail", m));
            }
            state.set_cs_current(plan, id, current);
            shown.push(ImportChange::Upsert(user(i, &attrs)));
        }
        shown
    }

    /// A delta read of user `i` alone, with `attrs`.
    fn upsert_one(state: &mut State, plan: &Plan, i: u8, attrs: &[(&str, &str)]) -> ImportReport {
        import(
            state,
            plan,
            0,
            vec![ImportChange::Upsert(user(i, attrs))],
            false,
        )
    }

    fn pending(state: &State, i: u8) -> Option<PendingImport> {
        let id = state.cs_by_dn(0, &dn(i)).unwrap();
        state.cs()[id as usize].pending_import
    }

    /// The records of users 0..n as a connector that digests them hands them over: user i's
    /// record has the digest `[i; 16]` (`salt` added to it), with title "T" and department "D".
    fn digested(n: u8, salt: u8) -> Vec<ImportChange> {
        (0..n)
            .map(|i| {
                let d = [i.wrapping_add(salt); 16];
                ImportChange::Record(d, user(i, &[("title", "T"), ("department", "D")]))
            })
            .collect()
    }

    fn known_ids(state: &State, known: &KnownRecords, digests: &[[u8; 16]]) -> Vec<Option<u8>> {
        digests
            .iter()
            .map(|d| {
                let k = known.find(d)?;
                (0..=255u8).find(|&i| state.cs_by_dn(0, &dn(i)) == Some(k.id))
            })
            .collect()
    }

    #[test]
    fn records_known_by_their_digest_are_seen_unchanged_and_nothing_else() {
        let plan = plan();
        let mut state = State::new(plan.connectors.len());
        let r = import(&mut state, &plan, 0, digested(3, 0), true);
        assert_eq!(r.adds, 3);
        let known = KnownRecords::new(&state, &plan, 0, b"basis");
        assert_eq!(known.len(), 3);
        let digests = [[0u8; 16], [1; 16], [2; 16], [3; 16]];
        assert_eq!(
            known_ids(&state, &known, &digests),
            [Some(0), Some(1), Some(2), None]
        );
        assert_eq!(known.dn(known.find(&[1; 16]).unwrap()), dn(1));

        // Recognised records are the objects' reads: nothing is staged, nothing deleted; a
        // complete read that does not show user 2 deletes it.
        for id in 0..state.cs().len() {
            state.cs_mut()[id].pending_import = None;
        }
        let k = |i: u8| ImportChange::Unchanged(known.find(&[i; 16]).unwrap());
        let rd = read(&state, &plan, 0, vec![k(0), k(1)]);
        let r = stage(&mut state, &plan, rd, true);
        assert_eq!(
            (r.unchanged, r.recognised, r.deletes, r.updates),
            (2, 2, 1, 0)
        );
        assert_eq!(pending(&state, 0), None);
        assert_eq!(pending(&state, 2), Some(PendingImport::Delete));

        // A second record of an object in one read is what the object holds, after the first.
        let first = ImportChange::Record([9; 16], user(0, &[("title", "New")]));
        let rd = read(&state, &plan, 0, vec![first, k(0)]);
        let r = stage(&mut state, &plan, rd, false);
        // (Each record changes the object, as two records read would.)
        assert_eq!((r.updates, r.recognised), (2, 1), "{r:?}");
        assert_eq!(value(&plan, &state, 0, "title"), Value::from("T"));
    }

    #[test]
    fn a_record_is_known_only_while_its_object_is_as_it_was_read() {
        let plan = plan();
        let mut state = State::new(plan.connectors.len());
        import(&mut state, &plan, 0, digested(3, 0), true);
        let t = &plan.connectors[0].types[0];
        // Changed behind the read (by any code, not only an import): unknown.
        let id = state.cs_by_dn(0, &dn(1)).unwrap() as usize;
        let mut values = state.cs()[id].imported.to_vec();
        values[t.slot("title").unwrap()] = Value::from("Changed");
        state.cs_mut()[id].imported = Values::from_dense(values);
        // With an export add to confirm: unknown (the record would confirm it).
        let id = state.cs_by_dn(0, &dn(2)).unwrap() as usize;
        state.cs_mut()[id].export = Some(ExportOp::Add);
        let known = KnownRecords::new(&state, &plan, 0, b"basis");
        assert_eq!(
            known_ids(&state, &known, &[[0; 16], [1; 16], [2; 16]]),
            [Some(0), None, None]
        );
        // With a value staged for export: left to be read.
        let id = state.cs_by_dn(0, &dn(0)).unwrap();
        let mut current = state.cs()[id as usize].current.to_vec();
        current[t.slot("title").unwrap()] = Value::from("Staged");
        state.set_cs_current(&plan, id, current);
        let known = KnownRecords::new(&state, &plan, 0, b"basis");
        assert!(known.is_empty());

        // The same values read from a record of another digest (another basis, a comment
        // added): the object is stamped with the new digest, and nothing else changes.
        let mut state = State::new(plan.connectors.len());
        import(&mut state, &plan, 0, digested(2, 0), true);
        state.clear_changes();
        let r = import(&mut state, &plan, 0, digested(2, 100), true);
        assert_eq!((r.unchanged, r.updates), (2, 0));
        assert_eq!(state.changes().cs.len(), 2, "the new stamps are saved");
        let known = KnownRecords::new(&state, &plan, 0, b"basis");
        assert_eq!(
            known_ids(&state, &known, &[[0; 16], [100; 16], [101; 16]]),
            [None, Some(0), Some(1)]
        );
        // A stamp whose fingerprint is not the object's (another build's, say) is renewed by
        // the next read of its record, which finds the object unchanged.
        let id = state.cs_by_dn(0, &dn(1)).unwrap();
        state.cs_mut().set_read_as(
            id as usize,
            Some(ReadStamp {
                record: [101; 16],
                object: 7,
            }),
        );
        let known = KnownRecords::new(&state, &plan, 0, b"basis");
        assert_eq!(known_ids(&state, &known, &[[101; 16]]), [None]);
        let r = import(&mut state, &plan, 0, digested(2, 100), true);
        assert_eq!((r.unchanged, r.updates), (2, 0));
        let known = KnownRecords::new(&state, &plan, 0, b"basis");
        assert_eq!(known_ids(&state, &known, &[[101; 16]]), [Some(1)]);
        // A record without a digest that changes the object leaves it unknown.
        upsert_one(&mut state, &plan, 0, &[("title", "X"), ("department", "D")]);
        let known = KnownRecords::new(&state, &plan, 0, b"basis");
        assert_eq!(
            known_ids(&state, &known, &[[100; 16], [101; 16]]),
            [None, Some(1)]
        );
    }

    #[test]
    fn digests_differ_with_the_basis_and_with_where_parts_end() {
        let state = State::new(1);
        let plan = plan();
        let a = KnownRecords::new(&state, &plan, 0, b"one");
        let b = KnownRecords::new(&state, &plan, 0, b"two");
        let parts: [&[u8]; 2] = [b"dn: x", b"cn: y"];
        assert_eq!(a.digest(parts), a.digest(parts));
        assert_ne!(a.digest(parts), b.digest(parts));
        assert_ne!(a.digest(parts), a.digest([&b"dn: xcn: y"[..]]));
        assert_ne!(a.digest(parts), a.digest([&b"dn: x"[..], b"cn: ", b"y"]));
    }

    #[test]
    fn a_confirmation_of_values_no_sync_reads_as_imported_is_saved_but_not_synchronized() {
        let plan = plan_with(
            r#"
inbound rule "In" {
  connector "ad"  source user  target person  link provision  precedence 1
  flow employeeId <- ImportedValue("mail")
}
"#,
        );
        let t = &plan.connectors[0].types[0];
        assert_eq!(
            plan.reads_imported.get(&(0, 0)),
            Some(&vec![t.slot("mail").unwrap()])
        );
        let mut state = imported(&plan, 3);
        // Exports staged for users 0 to 2; the target shows them: each object's imported
        // values now equal its current ones.
        let changes = stage_and_show(&plan, &mut state, 3);
        let r = import(&mut state, &plan, 0, changes, false);
        assert_eq!((r.updates, r.unchanged), (3, 0), "{r:?}");
        // All three are confirmed and saved ...
        assert_eq!(value(&plan, &state, 0, "title"), Value::from("X"));
        assert_eq!(value(&plan, &state, 1, "mail"), Value::from("m@x"));
        for i in 0..3 {
            let id = state.cs_by_dn(0, &dn(i)).unwrap();
            assert!(state.changes().cs.contains(&id), "{i}");
        }
        // ... but only those whose confirmed `mail` a rule reads are synchronized again, as
        // confirmations: their metaverse objects are recomputed, outbound does not visit
        // them on their account (DECISIONS 38).
        assert_eq!(pending(&state, 0), None);
        assert_eq!(pending(&state, 1), Some(PendingImport::InboundUpdate));
        assert_eq!(pending(&state, 2), Some(PendingImport::InboundUpdate));
        // A value the target changed (not a confirmation) is synchronized as before (no
        // outbound rule flows to it: only inbound sync reads it).
        let r = upsert_one(&mut state, &plan, 0, &[("title", "Y"), ("department", "D")]);
        assert_eq!(r.updates, 1);
        assert_eq!(pending(&state, 0), Some(PendingImport::InboundUpdate));
    }

    #[test]
    fn a_confirmation_is_one_while_what_the_object_holds_and_its_dn_stay_as_they_were() {
        // `mail` is kept by an outbound merge flow: its confirmed value is read by outbound
        // sync. `title` is read by nothing as imported.
        let plan = plan_with(
            r#"
inbound rule "In" {
  connector "ad"  source user  target person  link provision  precedence 1
  flow employeeId <- [title]
}
outbound rule "Out" {
  connector "ad"  source person  target user  link join  precedence 1
  flow mail <- [employeeId] merge
}
"#,
        );
        let t = &plan.connectors[0].types[0];
        let mail = t.slot("mail").unwrap();
        assert_eq!(plan.merges_imported.get(&(0, 0)), Some(&vec![mail]));
        let mut state = imported(&plan, 4);
        // Exports staged for users 0 to 3 and shown by the target; user 0's export is an
        // add (no anchor yet); user 3 shows with another spelling of its DN.
        let mut changes = stage_and_show(&plan, &mut state, 4);
        let id0 = state.cs_by_dn(0, &dn(0)).unwrap();
        state.cs_mut()[id0 as usize].export = Some(ExportOp::Add);
        if let ImportChange::Upsert(o) = &mut changes[3] {
            o.dn = o.dn.to_lowercase();
        }
        let r = import(&mut state, &plan, 0, changes, false);
        assert_eq!((r.updates, r.unchanged), (4, 0), "{r:?}");
        // The confirmed add and the confirmed title: confirmations. A confirmed value that an
        // outbound merge flow keeps, and a DN spelled anew: updates, which outbound visits.
        assert_eq!(pending(&state, 0), Some(PendingImport::InboundUpdate));
        assert_eq!(state.cs()[id0 as usize].export, None);
        assert_eq!(pending(&state, 1), Some(PendingImport::Update));
        assert_eq!(pending(&state, 2), Some(PendingImport::Update));
        assert_eq!(pending(&state, 3), Some(PendingImport::Update));
        // A confirmation adds nothing to a change staged before it; a value the target
        // changed is an update.
        assert_eq!(
            merge_pending(Some(PendingImport::Update), PendingImport::InboundUpdate),
            PendingImport::Update
        );
        assert_eq!(
            merge_pending(Some(PendingImport::InboundUpdate), PendingImport::Update),
            PendingImport::Update
        );
        let r = upsert_one(&mut state, &plan, 0, &[("title", "Y"), ("department", "D")]);
        assert_eq!(r.updates, 1);
        // A target value that no outbound rule flows to changed: only inbound sync reads it.
        assert_eq!(pending(&state, 0), Some(PendingImport::InboundUpdate));
        // One that an outbound rule flows to: outbound sync visits it (it corrects drift).
        state.cs_mut()[id0 as usize].pending_import = None;
        let r = upsert_one(
            &mut state,
            &plan,
            0,
            &[("title", "Y"), ("department", "D"), ("mail", "z@x")],
        );
        assert_eq!(r.updates, 1);
        assert_eq!(pending(&state, 0), Some(PendingImport::Update));
    }

    /// The text of `attr` in object `i`'s current values.
    fn text_of(plan: &Plan, state: &State, i: u8, attr: &str) -> Arc<str> {
        let t = &plan.connectors[0].types[0];
        let id = state.cs_by_dn(0, &dn(i)).unwrap();
        match &state.cs()[id as usize].current[t.slot(attr).unwrap()] {
            Value::Str(s) => s.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_confirming_read_keeps_the_values_the_object_holds() {
        let plan = plan();
        let t = &plan.connectors[0].types[0];
        let mut state = imported(&plan, 3);
        // Exports staged: a mail for each user; user 2's target shows another title too.
        for i in 0..3 {
            let id = state.cs_by_dn(0, &dn(i)).unwrap();
            let mut current = state.cs()[id as usize].imported.to_vec();
            current[t.slot("mail").unwrap()] = Value::from(format!("u{i}@x"));
            state.set_cs_current(&plan, id, current);
        }
        let before: Vec<(Arc<str>, Arc<str>)> = (0..3)
            .map(|i| {
                (
                    text_of(&plan, &state, i, "mail"),
                    text_of(&plan, &state, i, "department"),
                )
            })
            .collect();
        let changes = (0..3)
            .map(|i| {
                let title = if i == 2 { "Z" } else { "T" };
                ImportChange::Upsert(user(
                    i,
                    &[
                        ("title", title),
                        ("department", "D"),
                        ("mail", &format!("u{i}@x")),
                    ],
                ))
            })
            .collect();
        // A read held to its end (the connector space is not empty), as a confirmation is.
        let r = import(&mut state, &plan, 0, changes, false);
        assert_eq!(r.updates, 3, "{r:?}");
        for i in 0..3u8 {
            let id = state.cs_by_dn(0, &dn(i)).unwrap();
            let o = &state.cs()[id as usize];
            assert_eq!(o.imported.to_vec(), o.current.to_vec(), "{i}");
            // Confirmed values are one allocation with the current ones ...
            assert!(Values::ptr_eq(&o.imported, &o.current), "{i}");
            // ... and a value equal to the one held is the one held, not the copy read.
            let (mail, department) = &before[i as usize];
            assert!(Arc::ptr_eq(mail, &text_of(&plan, &state, i, "mail")), "{i}");
            assert!(
                Arc::ptr_eq(department, &text_of(&plan, &state, i, "department")),
                "{i}"
            );
        }
        assert_eq!(value(&plan, &state, 2, "title"), Value::from("Z"));
    }

    #[test]
    fn records_of_one_object_in_one_read_stage_in_order() {
        let plan = plan();
        let t = &plan.connectors[0].types[0];
        let mut state = imported(&plan, 2);
        let id = state.cs_by_dn(0, &dn(0)).unwrap();
        let mut current = state.cs()[id as usize].imported.to_vec();
        current[t.slot("mail").unwrap()] = Value::from("u0@x");
        state.set_cs_current(&plan, id, current);
        let confirming = || {
            ImportChange::Upsert(user(
                0,
                &[("title", "T"), ("department", "D"), ("mail", "u0@x")],
            ))
        };
        let changing = || {
            ImportChange::Upsert(user(
                0,
                &[("title", "Z"), ("department", "D"), ("mail", "u0@x")],
            ))
        };
        // A confirming record first holds nothing of its own; a change after it holds its
        // values. Staged in order, the last wins.
        let mut read = Read::new(&state, 0);
        read.page(&state, &plan, vec![confirming(), changing()]);
        let held: Vec<bool> = read
            .items
            .iter()
            .map(|i| {
                matches!(
                    i,
                    Item::Upsert {
                        values: Held::Current(_),
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(held, [true, false]);
        let mut staged = state.clone();
        let r = stage(&mut staged, &plan, read, false);
        assert_eq!(r.updates, 2, "{r:?}");
        assert_eq!(value(&plan, &staged, 0, "title"), Value::from("Z"));
        assert_eq!(value(&plan, &staged, 0, "mail"), Value::from("u0@x"));
        let o = &staged.cs()[id as usize];
        assert!(Values::ptr_eq(&o.imported, &o.current));
        assert_eq!(pending(&staged, 0), Some(PendingImport::InboundUpdate));
        // The other way round: the confirming record comes after a change, so it holds its
        // own values (the object it is staged onto is no longer as it was read), and wins.
        let mut read = Read::new(&state, 0);
        read.page(&state, &plan, vec![changing(), confirming()]);
        assert!(read.items.iter().all(|i| !matches!(
            i,
            Item::Upsert {
                values: Held::Current(_),
                ..
            }
        )));
        let r = stage(&mut state, &plan, read, false);
        assert_eq!(r.updates, 2, "{r:?}");
        assert_eq!(value(&plan, &state, 0, "title"), Value::from("T"));
        assert_eq!(value(&plan, &state, 0, "mail"), Value::from("u0@x"));
    }

    /// An export add of user 5 with these values, not confirmed yet: no anchor, nothing
    /// imported.
    fn export_add(state: &mut State, values: Vec<Value>) -> u32 {
        let width = values.len();
        state.add_cs(CsObject {
            connector: 0,
            object_type: 0,
            dn: dn(5).into(),
            anchor: None,
            current: values.into(),
            imported: Values::new(width),
            pending_import: None,
            export: Some(ExportOp::Add),
            new_dn: None,
            link: None,
            provisioned_by: None,
            placeholder: false,
            gone: false,
            read_as: None,
        })
    }

    #[test]
    fn a_read_that_confirms_an_export_add_holds_nothing_of_its_own() {
        let plan = plan();
        let t = &plan.connectors[0].types[0];
        let mut state = State::new(plan.connectors.len());
        let mut values = vec![Value::Null; t.len()];
        values[t.slot("title").unwrap()] = Value::from("T");
        values[t.slot("objectGUID").unwrap()] = guid(5);
        if let Some(s) = t.dn {
            values[s] = Value::from(dn(5));
        }
        let id = export_add(&mut state, values);
        let mut read = Read::new(&state, 0);
        read.page(
            &state,
            &plan,
            vec![ImportChange::Upsert(user(5, &[("title", "T")]))],
        );
        assert!(matches!(
            read.items.first(),
            Some(Item::Upsert { values: Held::Current(i), .. }) if *i == id
        ));
        let r = stage(&mut state, &plan, read, false);
        assert_eq!(r.updates, 1, "{r:?}");
        let o = &state.cs()[id as usize];
        assert_eq!((o.anchor.clone(), o.export), (Some(guid(5)), None));
        assert!(Values::ptr_eq(&o.imported, &o.current));
        assert_eq!(
            state.cs_by_anchor(0, &Key::exact(&guid(5)).unwrap()),
            Some(id)
        );
    }

    #[test]
    fn a_read_that_confirms_an_add_with_the_anchor_the_target_assigned_keeps_what_it_holds() {
        let plan = plan();
        let t = &plan.connectors[0].types[0];
        let (title, guid_slot) = (t.slot("title").unwrap(), t.slot("objectGUID").unwrap());
        let mut state = State::new(plan.connectors.len());
        // An export add: its values, but no anchor yet (the target assigns it).
        let mut values = vec![Value::Null; t.len()];
        values[title] = Value::from("T");
        if let Some(s) = t.dn {
            values[s] = Value::from(dn(5));
        }
        let id = export_add(&mut state, values);
        let held_title = text_of(&plan, &state, 5, "title");
        let shown = || ImportChange::Upsert(user(5, &[("title", "T")]));
        let mut read = Read::new(&state, 0);
        read.page(&state, &plan, vec![shown()]);
        // Held as the object's values and the anchor read: the texts it holds, not copies.
        match read.items.first() {
            Some(Item::Upsert {
                values: Held::Sparse(v),
                ..
            }) => {
                assert_eq!(v[guid_slot], guid(5));
                assert!(matches!(&v[title], Value::Str(s) if Arc::ptr_eq(s, &held_title)));
                assert_eq!(v.count(), state.cs()[id as usize].current.count() + 1);
            }
            _ => panic!("{:?}", read.items.len()),
        }
        let r = stage(&mut state, &plan, read, false);
        assert_eq!(r.updates, 1, "{r:?}");
        let o = &state.cs()[id as usize];
        assert_eq!((o.anchor.clone(), o.export), (Some(guid(5)), None));
        assert_eq!(o.current[guid_slot], guid(5));
        assert!(Values::ptr_eq(&o.imported, &o.current));
        assert!(Arc::ptr_eq(
            &held_title,
            &text_of(&plan, &state, 5, "title")
        ));
        assert_eq!(pending(&state, 5), Some(PendingImport::InboundUpdate));
        assert_eq!(
            state.cs_by_anchor(0, &Key::exact(&guid(5)).unwrap()),
            Some(id)
        );
        // Read again, the record is the object as it is: nothing changes.
        let r = import(&mut state, &plan, 0, vec![shown()], false);
        assert_eq!((r.updates, r.unchanged), (0, 1), "{r:?}");
    }

    #[test]
    fn an_import_keeps_what_the_target_does_not_show_yet_and_takes_what_it_changed() {
        let plan = plan();
        let t = &plan.connectors[0].types[0];
        let (title, mail) = (t.slot("title").unwrap(), t.slot("mail").unwrap());
        let mut state = imported(&plan, 2);
        // Staged, not exported yet: a new title and a mail for both users.
        for i in 0..2 {
            let id = state.cs_by_dn(0, &dn(i)).unwrap();
            let mut current = state.cs()[id as usize].imported.to_vec();
            current[title] = Value::from("X");
            current[mail] = Value::from(format!("u{i}@x"));
            state.set_cs_current(&plan, id, current);
        }
        // The targets show: user 0 as it was imported (nothing exported yet), user 1 with a
        // title someone else set there, and the department changed.
        let r = import(
            &mut state,
            &plan,
            0,
            vec![
                ImportChange::Upsert(user(0, &[("title", "T"), ("department", "D")])),
                ImportChange::Upsert(user(1, &[("title", "Z"), ("department", "E")])),
            ],
            false,
        );
        assert_eq!((r.updates, r.unchanged), (1, 1), "{r:?}");
        let current = |i: u8, slot: usize| {
            let id = state.cs_by_dn(0, &dn(i)).unwrap();
            state.cs()[id as usize].current[slot].clone()
        };
        // User 0: what it shows is what it was; both staged values stay staged.
        assert_eq!(current(0, title), Value::from("X"));
        assert_eq!(current(0, mail), Value::from("u0@x"));
        // User 1: the title the target changed is taken (outbound sync decides again), the
        // mail it does not show yet stays staged, the department is taken.
        assert_eq!(current(1, title), Value::from("Z"));
        assert_eq!(current(1, mail), Value::from("u1@x"));
        assert_eq!(current(1, t.slot("department").unwrap()), Value::from("E"));
        assert_eq!(value(&plan, &state, 1, "title"), Value::from("Z"));
        assert_eq!(value(&plan, &state, 1, "mail"), Value::Null);
        // (No outbound rule reads these values in this bundle: a confirmation, as far as
        // outbound sync can tell.)
        assert_eq!(pending(&state, 1), Some(PendingImport::InboundUpdate));
    }

    #[test]
    fn a_delete_by_anchor_needs_no_dn() {
        let plan = plan();
        let mut state = imported(&plan, 3);
        let r = import(
            &mut state,
            &plan,
            0,
            vec![ImportChange::delete_anchor(guid(1))],
            false,
        );
        assert_eq!((r.deletes, r.rejected.len()), (1, 0), "{r:?}");
        assert_eq!(pending(&state, 1), Some(PendingImport::Delete));
        assert_eq!(pending(&state, 0), None);
        assert_eq!(pending(&state, 2), None);
        // The anchor decides when a DN is given too; a delete naming nothing is rejected; an
        // unknown anchor deletes nothing.
        let r = import(
            &mut state,
            &plan,
            0,
            vec![
                ImportChange::Delete {
                    anchor: Some(guid(2)),
                    dn: Some(dn(0)),
                },
                ImportChange::Delete {
                    anchor: None,
                    dn: None,
                },
                ImportChange::delete_anchor(guid(9)),
            ],
            false,
        );
        assert_eq!((r.deletes, r.rejected.len()), (1, 1), "{r:?}");
        assert_eq!(pending(&state, 2), Some(PendingImport::Delete));
        assert_eq!(pending(&state, 0), None);
        // The preview counts a delete by anchor as an explicit delete.
        let mut state = imported(&plan, 3);
        let r = super::read(&state, &plan, 0, vec![ImportChange::delete_anchor(guid(0))]);
        assert_eq!(preview(&state, &r, false).deletes, 1);
        stage(&mut state, &plan, r, false);
        assert_eq!(pending(&state, 0), Some(PendingImport::Delete));
    }

    #[test]
    fn a_partial_upsert_keeps_the_attributes_it_does_not_give() {
        let plan = plan();
        let mut state = imported(&plan, 2);
        let mut cleared = user(0, &[("title", "Engineer")]);
        cleared.attrs.push(("department".into(), Value::Null));
        let r = import(
            &mut state,
            &plan,
            0,
            vec![
                ImportChange::Partial(cleared),
                // Two partial changes of one object in one read both apply.
                ImportChange::Partial(user(1, &[("title", "Lead")])),
                ImportChange::Partial(user(1, &[("mail", "u1@contoso.com")])),
            ],
            false,
        );
        assert_eq!((r.updates, r.rejected.len()), (3, 0), "{r:?}");
        assert_eq!(value(&plan, &state, 0, "title"), Value::from("Engineer"));
        assert_eq!(value(&plan, &state, 0, "department"), Value::Null);
        assert_eq!(value(&plan, &state, 0, "objectGUID"), guid(0));
        assert_eq!(value(&plan, &state, 1, "title"), Value::from("Lead"));
        assert_eq!(value(&plan, &state, 1, "department"), Value::from("D"));
        assert_eq!(
            value(&plan, &state, 1, "mail"),
            Value::from("u1@contoso.com")
        );
        assert_eq!(pending(&state, 1), Some(PendingImport::InboundUpdate));

        // A partial change that changes nothing is no update.
        let mut state = imported(&plan, 2);
        let r = import(
            &mut state,
            &plan,
            0,
            vec![ImportChange::Partial(user(0, &[("title", "T")]))],
            false,
        );
        assert_eq!((r.updates, r.unchanged), (0, 1), "{r:?}");

        // Without its anchor, or of an object never imported: rejected, and a full read with
        // such a record deletes nothing.
        let mut no_anchor = user(1, &[("title", "X")]);
        no_anchor.attrs.remove(0);
        let r = import(
            &mut state,
            &plan,
            0,
            vec![
                ImportChange::Partial(no_anchor),
                ImportChange::Partial(user(7, &[("title", "X")])),
            ],
            true,
        );
        assert_eq!(r.rejected.len(), 2, "{r:?}");
        assert!(r.rejected[0].1.contains("anchor"), "{r:?}");
        assert!(r.rejected[1].1.contains("not imported before"), "{r:?}");
        assert_eq!(r.deletes, 0);
        assert_eq!(value(&plan, &state, 1, "title"), Value::from("T"));
    }

    #[test]
    fn several_values_of_a_single_valued_attribute_hold_the_object() {
        let plan = plan();
        let mut state = imported(&plan, 3);
        let two = |i: u8, attr: &str, a: &str, b: &str| {
            let mut u = user(i, &[("department", "Moved")]);
            u.attrs.push((
                attr.into(),
                Value::many(vec![Value::from(a), Value::from(b)]),
            ));
            u
        };
        // Users 0 and 1 (known) and 5 (new) each give two titles; user 2 is left out of the
        // full read; a repeated value or an empty one is no second value.
        let mut same = user(4, &[]);
        same.attrs.push((
            "title".into(),
            Value::many(vec![Value::from("T"), Value::from(""), Value::from("T")]),
        ));
        let r = import(
            &mut state,
            &plan,
            0,
            vec![
                ImportChange::Upsert(two(0, "title", "Lead", "Engineer")),
                ImportChange::Partial(two(1, "title", "Lead", "Engineer")),
                ImportChange::Upsert(two(5, "title", "A", "B")),
                ImportChange::Upsert(same),
            ],
            true,
        );
        assert_eq!(r.invalid.len(), 3, "{r:?}");
        assert_eq!(r.invalid[0].0, dn(0));
        assert_eq!(
            r.invalid[0].1,
            "`title` is single-valued in the schema but has 2 values: the object is not imported until it has one"
        );
        // Nothing of the held objects changed, no value was picked; they are not deleted
        // (the read stays complete: user 2 is); the new one is not added.
        assert!(r.rejected.is_empty(), "{r:?}");
        assert_eq!((r.adds, r.updates, r.deletes), (1, 0, 1), "{r:?}");
        for i in [0, 1] {
            assert_eq!(value(&plan, &state, i, "title"), Value::from("T"));
            assert_eq!(value(&plan, &state, i, "department"), Value::from("D"));
            assert_eq!(pending(&state, i), None);
        }
        assert_eq!(pending(&state, 2), Some(PendingImport::Delete));
        assert!(state.cs_by_dn(0, &dn(5)).is_none());
        assert_eq!(value(&plan, &state, 4, "title"), Value::from("T"));

        // Several anchors cannot name an object: rejected (and so no deletes).
        let mut state = imported(&plan, 2);
        let mut u = user(0, &[]);
        u.attrs[0].1 = Value::many(vec![guid(0), guid(1)]);
        let r = import(&mut state, &plan, 0, vec![ImportChange::Upsert(u)], true);
        assert_eq!(r.rejected.len(), 1, "{r:?}");
        assert!(
            r.rejected[0]
                .1
                .contains("anchor attribute `objectGUID` has 2 values"),
            "{r:?}"
        );
        assert_eq!(r.deletes, 0);
    }

    #[test]
    fn an_unchanged_record_stages_nothing_and_is_only_marked_seen() {
        let plan = plan();
        let n = 100;
        let mut state = imported(&plan, n);
        let same = || {
            (0..n)
                .map(|i| ImportChange::Upsert(user(i, &[("title", "T"), ("department", "D")])))
                .collect::<Vec<_>>()
        };
        let r = super::read(&state, &plan, 0, same());
        assert_eq!((r.objects(), r.unchanged(), r.held()), (100, 100, 0));
        // Nothing is kept but one bit per connector-space object.
        assert_eq!(r.items.capacity(), 0);
        assert_eq!(r.seen.0.len(), 2);
        assert!(r.rejected.is_empty() && r.out_of_schema.is_empty());
        let p = preview(&state, &r, true);
        assert_eq!((p.known, p.objects, p.deletes), (100, 100, 0));
        let before: Vec<Vec<Value>> = state.cs().iter().map(|o| o.imported.to_vec()).collect();
        let r = stage(&mut state, &plan, r, true);
        assert_eq!(
            (r.adds, r.updates, r.deletes, r.unchanged),
            (0, 0, 0, 100),
            "{r:?}"
        );
        assert!(state.cs().iter().all(|o| o.pending_import.is_none()));
        let after: Vec<Vec<Value>> = state.cs().iter().map(|o| o.imported.to_vec()).collect();
        assert_eq!(before, after);

        // One changed record among them is the only one kept; the missing one is a delete.
        let mut changes = same();
        changes[7] = ImportChange::Upsert(user(7, &[("title", "New")]));
        changes.pop();
        let r = super::read(&state, &plan, 0, changes);
        assert_eq!((r.unchanged(), r.held()), (98, 1));
        assert_eq!(preview(&state, &r, true).deletes, 1);
        let r = stage(&mut state, &plan, r, true);
        assert_eq!((r.updates, r.deletes, r.unchanged), (1, 1, 98), "{r:?}");
        assert_eq!(pending(&state, 7), Some(PendingImport::InboundUpdate));
        assert_eq!(pending(&state, n - 1), Some(PendingImport::Delete));
    }
}
