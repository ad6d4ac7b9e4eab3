//! Export deltas: what the next export sends to a connected directory, computed once.
//!
//! Consumes: a [`Plan`] and a [`State`] (a connector-space object's confirmed values, its
//! current values, its object-level export operation and its staged new DN). Produces: one
//! [`ExportDelta`] per connector-space object with staged export work: its anchor, its kind
//! ([`ExportOp`]: add, update, delete; a rename or move is an update with a `new_dn`), its
//! object type, DN and new DN, and its attribute changes as [`AttrChange`]s.
//!
//! The rules, the only place they are written down:
//! - an **add** carries every attribute with a value as a [`AttrOp::Replace`] of its whole value
//!   (a multi-valued attribute with all its values);
//! - an **update** carries the attributes whose current value differs from the confirmed one:
//!   a single-valued attribute as a `Replace` of the new value, or a `Clear` when it has none; a
//!   multi-valued one as value-level changes against the confirmed values: [`AttrOp::Remove`]
//!   of the confirmed values it no longer holds (in their confirmed order), then
//!   [`AttrOp::Add`] of the values it gains (in their current order), or a `Clear` when it
//!   holds none. Values compare exactly as the engine compares them (`Value` equality: case and
//!   kind matter), and the order of a multi-valued attribute's values is not a change, so one
//!   member added to a group of 50,000 is one `Add` of one value;
//! - a **delete** carries no attribute;
//! - the `dn` attribute is never an attribute change (the DN is the delta's `dn`/`new_dn`).
//!
//! The anchor a file target assigns to a new object is not part of the delta: the target
//! assigns it when it applies the add, as a directory would (`connector::generated_anchor`).
//! The values an object holds once its delta is applied are its current values.
//!
//! A connector answers one [`ExportResult`] per delta. An applied change whose answer can be
//! trusted (a server's) is recorded by [`confirm`] as the confirming import would have
//! recorded it (docs/DECISIONS.md 29).

use super::compile::{ConnIdx, Plan, TypePlan};
use super::model::{
    CsId, CsObject, ErrorCategory, ExportOp, Key, PendingImport, State, Values, dn_key,
};
use crate::value::Value;
use std::collections::HashSet;
use std::sync::Arc;

/// What to do to one attribute of an object in the connected directory.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrOp {
    /// Set the attribute to this value (all its values, for a multi-valued attribute).
    Replace(Value),
    /// Add these values to a multi-valued attribute (values it holds already stay once).
    Add(Vec<Value>),
    /// Remove these values from a multi-valued attribute.
    Remove(Vec<Value>),
    /// Remove the attribute with every value.
    Clear,
}

impl AttrOp {
    pub fn as_str(&self) -> &'static str {
        match self {
            AttrOp::Replace(_) => "replace",
            AttrOp::Add(_) => "add",
            AttrOp::Remove(_) => "remove",
            AttrOp::Clear => "clear",
        }
    }
}

/// One attribute change of an export.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrChange {
    /// The attribute's name in the connector schema.
    pub attr: Arc<str>,
    pub op: AttrOp,
}

/// One object's staged export, as every reader (runner, connectors, `idflow state
/// pending-exports`, the canonical dump, tests, preview) sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportDelta {
    /// The connector-space object.
    pub cs: CsId,
    /// The anchor, once an import confirmed the object (never for an add).
    pub anchor: Option<Value>,
    pub kind: ExportOp,
    /// The connector object type's name.
    pub object_type: Arc<str>,
    /// The object's DN in the connected directory (for an add, the DN to create).
    pub dn: Arc<str>,
    /// A rename or move: the DN the object gets (updates only).
    pub new_dn: Option<Arc<str>>,
    pub changes: Vec<AttrChange>,
}

impl ExportDelta {
    /// A delta of `kind` for `object_type` at `dn`, without changes (for building deltas by
    /// hand: connector tests, tools).
    pub fn new(kind: ExportOp, object_type: &str, dn: &str) -> ExportDelta {
        ExportDelta {
            cs: 0,
            anchor: None,
            kind,
            object_type: object_type.into(),
            dn: dn.into(),
            new_dn: None,
            changes: Vec::new(),
        }
    }

    /// With one more attribute change.
    pub fn with(mut self, attr: &str, op: AttrOp) -> ExportDelta {
        self.changes.push(AttrChange {
            attr: attr.into(),
            op,
        });
        self
    }

    /// The DN the object has once the delta is applied.
    pub fn target_dn(&self) -> &str {
        self.new_dn.as_deref().unwrap_or(&self.dn)
    }
}

/// What a connected system did with one [`ExportDelta`] (a connector's export answers one per
/// delta, in order).
#[derive(Debug, Clone, PartialEq)]
pub enum ExportResult {
    /// Applied. For an add, the anchor the connected system assigned to the new object, when
    /// it assigns one.
    Applied { anchor: Option<Value> },
    /// Not applied now, and worth sending again (throttled, busy, a timeout): the change stays
    /// staged, so the next export sends it again.
    Retry {
        after: Option<std::time::Duration>,
        reason: String,
    },
    /// Refused: the change stays staged and is reported with its category.
    Failed {
        category: ExportErrorCategory,
        detail: String,
    },
}

/// Why a connected system refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExportErrorCategory {
    /// An add of an object that exists, or a rename onto one.
    AlreadyExists,
    /// An update, rename or delete of an object the system does not hold.
    NoSuchObject,
    /// A value or an object the system's schema or constraints refuse.
    ConstraintViolation,
    /// A value that must be unique is held by another object of the system (Entra's
    /// "Duplicate Attribute"; SCIM's 409 `uniqueness`).
    DuplicateAttribute,
    /// A request the system refuses as invalid (Entra's "Data Validation Failure"; an HTTP
    /// 400).
    DataValidation,
    /// A DN the system cannot use.
    InvalidDn,
    /// The connector's identity may not make the change.
    PermissionDenied,
    Other,
}

impl ExportErrorCategory {
    /// The sync-error category a failed change of this category is reported under (Entra's
    /// export errors): a value held by another object is a Duplicate Attribute, a value or a
    /// DN the system refuses a Data Validation Failure, anything else Other.
    pub fn sync_category(self) -> ErrorCategory {
        match self {
            ExportErrorCategory::DuplicateAttribute => ErrorCategory::DuplicateAttribute,
            ExportErrorCategory::DataValidation
            | ExportErrorCategory::ConstraintViolation
            | ExportErrorCategory::InvalidDn => ErrorCategory::DataValidationFailure,
            ExportErrorCategory::AlreadyExists
            | ExportErrorCategory::NoSuchObject
            | ExportErrorCategory::PermissionDenied
            | ExportErrorCategory::Other => ErrorCategory::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExportErrorCategory::AlreadyExists => "already-exists",
            ExportErrorCategory::NoSuchObject => "no-such-object",
            ExportErrorCategory::ConstraintViolation => "constraint-violation",
            ExportErrorCategory::DuplicateAttribute => "duplicate-attribute",
            ExportErrorCategory::DataValidation => "data-validation",
            ExportErrorCategory::InvalidDn => "invalid-dn",
            ExportErrorCategory::PermissionDenied => "permission-denied",
            ExportErrorCategory::Other => "other",
        }
    }
}

impl std::fmt::Display for ExportErrorCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`confirm`] did with an applied delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// The object holds the delta's values as confirmed values.
    Done,
    /// Nothing was recorded: an import must show what the connected system holds (an add
    /// whose anchor is unknown, an anchor another object holds, an object whose staged export
    /// is no longer this delta).
    NeedsImport,
}

/// Records a change the connected system reported as applied, when that answer can be trusted
/// (a server's confirmation; file targets confirm by re-import instead): what the confirming
/// import would have staged, without reading anything.
///
/// - an **update**: the values sent become the confirmed ones (imported := current), a new DN
///   becomes the object's DN;
/// - an **add**: the object gets its anchor (the one the system assigned, else its own anchor
///   value, or the DN for a type anchored by DN), its add is done and its values confirmed;
/// - a **delete**: the object is staged as deleted, and the next sync removes it.
///
/// The object gets a pending import (Update, or Delete), so the next sync processes what the
/// system now holds, as after a confirming import.
pub fn confirm(
    state: &mut State,
    plan: &Plan,
    sent: &ExportDelta,
    assigned: Option<&Value>,
) -> Confirmed {
    let id = sent.cs;
    // The staged export must still be the one sent.
    if delta(plan, state, id).as_ref() != Some(sent) {
        return Confirmed::NeedsImport;
    }
    let o = &state.cs()[id as usize];
    let connector = o.connector;
    let Some(t) = plan
        .connectors
        .get(connector)
        .and_then(|c| c.types.get(o.object_type))
    else {
        return Confirmed::NeedsImport;
    };
    match sent.kind {
        ExportOp::Delete => {
            if super::import::stage_delete(state, id) {
                Confirmed::Done
            } else {
                Confirmed::NeedsImport
            }
        }
        ExportOp::Add => {
            let own = || {
                let s = t.anchor?;
                if Some(s) == t.dn {
                    return Some(Value::str(&*o.dn));
                }
                o.current.get(s).filter(|v| !v.is_null()).cloned()
            };
            let Some(anchor) = assigned
                .map(|a| super::flow::shape(a.clone(), false))
                .filter(|a| !a.is_null())
                .or_else(own)
            else {
                return Confirmed::NeedsImport;
            };
            let Some(key) = Key::exact(&anchor) else {
                return Confirmed::NeedsImport;
            };
            if state
                .cs_by_anchor(connector, &key)
                .is_some_and(|other| other != id)
            {
                return Confirmed::NeedsImport;
            }
            // As an import would show it: the anchor the system assigned, the DN as a value.
            let mut current = o.current.to_vec();
            if let Some(s) = t.anchor.filter(|&s| Some(s) != t.dn) {
                current[s] = anchor.clone();
            }
            if let Some(s) = t.dn {
                current[s] = Value::str(&*o.dn);
            }
            let imported = confirmed_values(&current, &o.imported);
            state.index_anchor(connector, key, id);
            state.set_cs_current(plan, id, current);
            let o = &mut state.cs_mut()[id as usize];
            o.anchor = Some(anchor);
            o.export = None;
            take_confirmed(o, imported);
            Confirmed::Done
        }
        ExportOp::Update => {
            let mut current = o.current.to_vec();
            let dn_slot = t.dn;
            if let Some(new_dn) = o.new_dn.clone() {
                let (old, new) = (dn_key(&o.dn), dn_key(&new_dn));
                state.unindex_dn(connector, &old, id);
                state.index_dn(connector, new, id);
                let o = &mut state.cs_mut()[id as usize];
                o.dn = new_dn;
                o.new_dn = None;
            }
            let o = &state.cs()[id as usize];
            // As an import would show it: the DN as a value.
            if let Some(s) = dn_slot {
                current[s] = Value::str(&*o.dn);
            }
            let imported = confirmed_values(&current, &o.imported);
            state.set_cs_current(plan, id, current);
            let o = &mut state.cs_mut()[id as usize];
            take_confirmed(o, imported);
            Confirmed::Done
        }
    }
}

/// Records `imported` as what the connected system confirmed holding (sharing the current
/// values' allocation when they are equal) and stages the import that shows it to sync.
fn take_confirmed(o: &mut CsObject, imported: Vec<Value>) {
    o.imported = if o.current.eq_dense(&imported) {
        o.current.clone()
    } else {
        imported.into()
    };
    o.pending_import = Some(super::import::merge_pending(
        o.pending_import,
        PendingImport::Update,
    ));
}

/// The confirmed values once `current` is applied: the current ones, except where a flow left
/// the attribute as it was.
fn confirmed_values(current: &[Value], imported: &Values) -> Vec<Value> {
    current
        .iter()
        .enumerate()
        .map(|(s, v)| match v {
            Value::IgnoreThisFlow => imported.get(s).cloned().unwrap_or_default(),
            v => v.clone(),
        })
        .collect()
}

/// The export deltas of one connector, in connector-space order.
pub fn deltas<'a>(
    plan: &'a Plan,
    state: &'a State,
    connector: ConnIdx,
) -> impl Iterator<Item = ExportDelta> + 'a {
    state
        .pending_exports(connector)
        .filter_map(move |(id, o, op)| {
            let t = plan.connectors.get(o.connector)?.types.get(o.object_type)?;
            Some(delta_of(t, id, o, op))
        })
}

/// The export delta of one connector-space object, if it has staged export work.
pub fn delta(plan: &Plan, state: &State, cs: CsId) -> Option<ExportDelta> {
    let o = state.cs().get(cs as usize)?;
    let op = o.export_op()?;
    let t = plan.connectors.get(o.connector)?.types.get(o.object_type)?;
    Some(delta_of(t, cs, o, op))
}

fn delta_of(t: &TypePlan, cs: CsId, o: &CsObject, op: ExportOp) -> ExportDelta {
    // An add names each attribute with a value once.
    let mut changes = match op {
        ExportOp::Add => Vec::with_capacity(o.current.count()),
        ExportOp::Update | ExportOp::Delete => Vec::new(),
    };
    for (slot, (new, old)) in o.current.iter().zip(o.imported.iter()).enumerate() {
        if Some(slot) == t.dn {
            continue;
        }
        let Some(name) = t.names.get(slot) else {
            continue;
        };
        match op {
            ExportOp::Add if !new.is_null() => changes.push(AttrChange {
                attr: name.clone(),
                op: AttrOp::Replace(new.clone()),
            }),
            ExportOp::Update => {
                let multi = t.kinds.get(slot).is_some_and(|k| k.1);
                changes.extend(attr_ops(old, new, multi).into_iter().map(|op| AttrChange {
                    attr: name.clone(),
                    op,
                }));
            }
            ExportOp::Add | ExportOp::Delete => {}
        }
    }
    ExportDelta {
        cs,
        anchor: o.anchor.clone(),
        kind: op,
        object_type: t.name.clone(),
        dn: o.dn.clone(),
        new_dn: o.new_dn.clone(),
        changes,
    }
}

/// The changes that take an attribute of an existing object from its confirmed value `old` to
/// `new` (none when they are the same).
pub fn attr_ops(old: &Value, new: &Value, multi: bool) -> Vec<AttrOp> {
    // A flow result that leaves the attribute as it is.
    if matches!(new, Value::IgnoreThisFlow) || same_values(old, new) {
        return Vec::new();
    }
    if new.is_null() {
        return vec![AttrOp::Clear];
    }
    if !multi {
        return vec![AttrOp::Replace(new.clone())];
    }
    let mut out = Vec::new();
    let removed = difference(old.values(), new.values());
    if !removed.is_empty() {
        out.push(AttrOp::Remove(removed));
    }
    let added = difference(new.values(), old.values());
    if !added.is_empty() {
        out.push(AttrOp::Add(added));
    }
    out
}

/// Whether two values of an attribute are the same for export: equal, or two collections
/// holding the same values in any order.
pub fn same_values(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::Many(x), Value::Many(y)) => {
            difference(x, y).is_empty() && difference(y, x).is_empty()
        }
        _ => false,
    }
}

/// The values of `a` that are not in `b`, each once, in `a`'s order.
fn difference(a: &[Value], b: &[Value]) -> Vec<Value> {
    // Small collections: a scan is cheaper than hashing.
    if a.len().saturating_mul(b.len()) <= 256 {
        let mut out: Vec<Value> = Vec::new();
        for v in a {
            if !b.contains(v) && !out.contains(v) {
                out.push(v.clone());
            }
        }
        return out;
    }
    let other: HashSet<Exact<'_>> = b.iter().map(Exact::of).collect();
    let mut seen: HashSet<Exact<'_>> = HashSet::new();
    let mut out = Vec::new();
    for v in a {
        let k = Exact::of(v);
        if !other.contains(&k) && seen.insert(k) {
            out.push(v.clone());
        }
    }
    out
}

/// A hashable view of a scalar that is equal exactly when the values are (`Value` equality:
/// the kind counts, so a string never equals a reference with the same text).
#[derive(Debug, PartialEq, Eq, Hash)]
enum Exact<'a> {
    Null(u8),
    Str(&'a str),
    Ref(&'a str),
    Num(i64),
    Bool(bool),
    Bin(&'a [u8]),
    Dt(crate::value::DateTime),
    /// A nested collection (never in a well-formed value): compared by its items.
    Many(Vec<Exact<'a>>),
}

impl<'a> Exact<'a> {
    fn of(v: &'a Value) -> Exact<'a> {
        match v {
            Value::Null => Exact::Null(0),
            Value::AuthoritativeNull => Exact::Null(1),
            Value::IgnoreThisFlow => Exact::Null(2),
            Value::Str(s) => Exact::Str(s),
            Value::Ref(s) => Exact::Ref(s),
            Value::Num(n) => Exact::Num(*n),
            Value::Bool(b) => Exact::Bool(*b),
            Value::Bin(b) => Exact::Bin(b),
            Value::Dt(d) => Exact::Dt(*d),
            Value::Many(items) => Exact::Many(items.iter().map(Exact::of).collect()),
        }
    }
}

/// Applies one attribute change to a value of the attribute (as a directory holding `value`
/// would): the value the attribute holds afterwards.
pub fn apply(value: &Value, op: &AttrOp) -> Value {
    match op {
        AttrOp::Replace(v) => v.clone(),
        AttrOp::Clear => Value::Null,
        AttrOp::Add(add) => {
            let mut all = value.values().to_vec();
            for v in add {
                if !all.contains(v) {
                    all.push(v.clone());
                }
            }
            Value::many(all)
        }
        AttrOp::Remove(remove) => {
            let gone: HashSet<Exact<'_>> = remove.iter().map(Exact::of).collect();
            Value::many(
                value
                    .values()
                    .iter()
                    .filter(|v| !gone.contains(&Exact::of(v)))
                    .cloned()
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    fn members(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| Value::Ref(format!("CN=u{i},OU=Users,DC=contoso,DC=com").into()))
            .collect()
    }

    #[test]
    fn one_member_added_to_a_large_group_is_one_value_add() {
        let old = members(50_000);
        let extra = Value::Ref("CN=new,OU=Users,DC=contoso,DC=com".into());
        // The new member in the middle: order is not a change.
        let mut new = old.clone();
        new.insert(25_000, extra.clone());
        let ops = attr_ops(&Value::many(old), &Value::many(new), true);
        assert_eq!(ops, vec![AttrOp::Add(vec![extra])]);
    }

    #[test]
    fn one_member_removed_from_a_large_group_is_one_value_remove() {
        let old = members(50_000);
        let mut new = old.clone();
        let gone = new.remove(17);
        let ops = attr_ops(&Value::many(old), &Value::many(new), true);
        assert_eq!(ops, vec![AttrOp::Remove(vec![gone])]);
    }

    #[test]
    fn multi_valued_changes_keep_order_and_compare_exactly() {
        let old = Value::many(vec![s("a"), s("B"), s("c")]);
        let new = Value::many(vec![s("d"), s("a"), s("b"), s("e")]);
        // `B` and `b` differ (values compare exactly); removes in confirmed order, adds in
        // current order.
        assert_eq!(
            attr_ops(&old, &new, true),
            vec![
                AttrOp::Remove(vec![s("B"), s("c")]),
                AttrOp::Add(vec![s("d"), s("b"), s("e")]),
            ]
        );
        // A string is not a reference with the same text.
        let refs = Value::many(vec![Value::Ref("a".into())]);
        assert_eq!(
            attr_ops(&Value::many(vec![s("a")]), &refs, true),
            vec![
                AttrOp::Remove(vec![s("a")]),
                AttrOp::Add(vec![Value::Ref("a".into())])
            ]
        );
        // Reordered values: no change.
        let reordered = Value::many(vec![s("c"), s("a"), s("B")]);
        assert!(attr_ops(&old, &reordered, true).is_empty());
        assert!(same_values(&old, &reordered));
        // First values of an absent attribute, and the last ones removed.
        assert_eq!(
            attr_ops(&Value::Null, &old, true),
            vec![AttrOp::Add(vec![s("a"), s("B"), s("c")])]
        );
        assert_eq!(attr_ops(&old, &Value::Null, true), vec![AttrOp::Clear]);
    }

    #[test]
    fn single_valued_changes_replace_or_clear() {
        assert_eq!(
            attr_ops(&s("Sales"), &s("Finance"), false),
            vec![AttrOp::Replace(s("Finance"))]
        );
        assert_eq!(
            attr_ops(&Value::Null, &Value::Num(3), false),
            vec![AttrOp::Replace(Value::Num(3))]
        );
        assert_eq!(
            attr_ops(&s("Sales"), &Value::Null, false),
            vec![AttrOp::Clear]
        );
        assert_eq!(
            attr_ops(&s("Sales"), &Value::AuthoritativeNull, false),
            vec![AttrOp::Clear]
        );
        assert!(attr_ops(&s("Sales"), &s("Sales"), false).is_empty());
        assert!(attr_ops(&s("Sales"), &Value::IgnoreThisFlow, false).is_empty());
    }

    #[test]
    fn applying_changes() {
        let v = Value::many(vec![s("a"), s("b")]);
        assert_eq!(
            apply(&v, &AttrOp::Add(vec![s("b"), s("c")])),
            Value::many(vec![s("a"), s("b"), s("c")])
        );
        assert_eq!(
            apply(&v, &AttrOp::Remove(vec![s("a")])),
            Value::many(vec![s("b")])
        );
        assert_eq!(
            apply(&v, &AttrOp::Remove(vec![s("a"), s("b")])),
            Value::Null
        );
        assert_eq!(apply(&v, &AttrOp::Clear), Value::Null);
        assert_eq!(apply(&v, &AttrOp::Replace(s("x"))), s("x"));
    }

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
    member     reference multi
  }
}
"#;

    /// A plan with one connector type (`user`: its slots by name order: dn, member,
    /// objectGUID, title) and a state holding `o`.
    fn state_with(o: impl FnOnce(&TypePlan) -> CsObject) -> (Plan, State, CsId) {
        let mut map = crate::source::SourceMap::new();
        map.add("t.idf", BUNDLE);
        let checked = crate::frontend::check(&map);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        let plan = Plan::with_engine(&checked.bundle, crate::eval::EngineKind::Interp);
        let mut state = State::new(plan.connectors.len());
        let obj = o(&plan.connectors[0].types[0]);
        let id = state.add_cs(obj);
        (plan, state, id)
    }

    fn object(t: &TypePlan, export: Option<ExportOp>, anchor: bool) -> CsObject {
        let mut values = vec![Value::Null; t.len()];
        let dn = "CN=A,OU=Users,DC=contoso,DC=com";
        if let Some(s) = t.dn {
            values[s] = s_(dn);
        }
        CsObject {
            connector: 0,
            object_type: 0,
            dn: dn.into(),
            anchor: anchor.then(|| Value::bin(vec![1, 2])),
            imported: values.clone().into(),
            current: values.into(),
            pending_import: None,
            export,
            new_dn: None,
            link: None,
            provisioned_by: None,
            placeholder: false,
            gone: false,
            read_as: None,
        }
    }

    fn s_(x: &str) -> Value {
        Value::from(x)
    }

    fn slot(t: &TypePlan, name: &str) -> usize {
        t.slot(name).unwrap()
    }

    #[test]
    fn an_add_replaces_every_attribute_with_a_value_but_the_dn() {
        let (plan, state, id) = state_with(|t| {
            let mut o = object(t, Some(ExportOp::Add), false);
            o.current.set(slot(t, "title"), s_("Engineer"));
            o.current.set(
                slot(t, "member"),
                Value::many(vec![Value::Ref("CN=B".into())]),
            );
            o
        });
        let d = delta(&plan, &state, id).unwrap();
        assert_eq!(
            (d.kind, d.anchor.clone(), d.new_dn.clone()),
            (ExportOp::Add, None, None)
        );
        assert_eq!(&*d.dn, "CN=A,OU=Users,DC=contoso,DC=com");
        assert_eq!(&*d.object_type, "user");
        assert_eq!(
            d.changes,
            vec![
                AttrChange {
                    attr: "member".into(),
                    op: AttrOp::Replace(Value::many(vec![Value::Ref("CN=B".into())])),
                },
                AttrChange {
                    attr: "title".into(),
                    op: AttrOp::Replace(s_("Engineer")),
                },
            ]
        );
        assert_eq!(deltas(&plan, &state, 0).collect::<Vec<_>>(), vec![d]);
    }

    #[test]
    fn a_delete_carries_no_attribute() {
        let (plan, state, id) = state_with(|t| {
            let mut o = object(t, Some(ExportOp::Delete), true);
            o.imported.set(slot(t, "title"), s_("Engineer"));
            o
        });
        let d = delta(&plan, &state, id).unwrap();
        assert_eq!(d.kind, ExportOp::Delete);
        assert_eq!(d.anchor, Some(Value::bin(vec![1, 2])));
        assert!(d.changes.is_empty());
    }

    #[test]
    fn a_rename_is_an_update_with_a_new_dn() {
        let (plan, state, id) = state_with(|t| {
            let mut o = object(t, None, true);
            o.new_dn = Some("CN=A2,OU=Users,DC=contoso,DC=com".into());
            o.imported.set(slot(t, "title"), s_("Engineer"));
            o.current.set(slot(t, "title"), Value::Null);
            o
        });
        let d = delta(&plan, &state, id).unwrap();
        assert_eq!(d.kind, ExportOp::Update);
        assert_eq!(
            d.new_dn.as_deref(),
            Some("CN=A2,OU=Users,DC=contoso,DC=com")
        );
        assert_eq!(d.target_dn(), "CN=A2,OU=Users,DC=contoso,DC=com");
        assert_eq!(
            d.changes,
            vec![AttrChange {
                attr: "title".into(),
                op: AttrOp::Clear,
            }]
        );
    }

    #[test]
    fn an_update_of_a_large_group_is_one_value_add_and_reordering_is_no_export() {
        let many = members(50_000);
        let extra = Value::Ref("CN=new,OU=Users,DC=contoso,DC=com".into());
        let (plan, mut state, id) = state_with(|t| {
            let mut o = object(t, None, true);
            o.imported.set(slot(t, "member"), Value::many(many.clone()));
            let mut grown = many.clone();
            grown.insert(3, extra.clone());
            o.current.set(slot(t, "member"), Value::many(grown));
            o
        });
        let d = delta(&plan, &state, id).unwrap();
        assert_eq!(d.kind, ExportOp::Update);
        assert_eq!(
            d.changes,
            vec![AttrChange {
                attr: "member".into(),
                op: AttrOp::Add(vec![extra]),
            }]
        );
        // The same values in another order: nothing to export.
        let t = &plan.connectors[0].types[0];
        let mut reversed = many.clone();
        reversed.reverse();
        state.cs_mut()[id as usize]
            .current
            .set(slot(t, "member"), Value::many(reversed));
        assert_eq!(delta(&plan, &state, id), None);
        assert_eq!(deltas(&plan, &state, 0).count(), 0);
    }

    #[test]
    fn a_confirmed_add_takes_the_assigned_anchor_and_confirms_the_values() {
        let (plan, mut state, id) = state_with(|t| {
            let mut o = object(t, Some(ExportOp::Add), false);
            o.current.set(slot(t, "title"), s_("Engineer"));
            o
        });
        let t = plan.connectors[0].types[0].clone();
        let d = delta(&plan, &state, id).unwrap();
        // Without an anchor from the system or of its own, an add needs an import.
        assert_eq!(confirm(&mut state, &plan, &d, None), Confirmed::NeedsImport);
        assert_eq!(state.cs()[id as usize].export, Some(ExportOp::Add));
        let guid = Value::bin(vec![9, 9]);
        assert_eq!(confirm(&mut state, &plan, &d, Some(&guid)), Confirmed::Done);
        let o = &state.cs()[id as usize];
        assert_eq!(o.anchor.as_ref(), Some(&guid));
        assert_eq!(o.export, None);
        assert_eq!(o.imported[slot(&t, "title")], s_("Engineer"));
        assert_eq!(o.imported[slot(&t, "objectGUID")], guid);
        assert_eq!(o.current, o.imported);
        assert_eq!(o.pending_import, Some(PendingImport::Update));
        assert_eq!(
            state.cs_by_anchor(0, &Key::exact(&guid).unwrap()).as_ref(),
            Some(&id)
        );
        // Nothing is left to export, and a second confirmation of the same delta records
        // nothing.
        assert_eq!(delta(&plan, &state, id), None);
        assert_eq!(
            confirm(&mut state, &plan, &d, Some(&guid)),
            Confirmed::NeedsImport
        );
    }

    #[test]
    fn a_confirmed_update_takes_the_new_dn_and_values() {
        let new_dn = "CN=A2,OU=Users,DC=contoso,DC=com";
        let (plan, mut state, id) = state_with(|t| {
            let mut o = object(t, None, true);
            o.new_dn = Some(new_dn.into());
            o.imported.set(slot(t, "title"), s_("Engineer"));
            o.current.set(slot(t, "title"), s_("Lead"));
            o
        });
        let t = plan.connectors[0].types[0].clone();
        let d = delta(&plan, &state, id).unwrap();
        // A delta that is no longer the staged export is not recorded.
        let mut stale = d.clone();
        stale.changes.clear();
        assert_eq!(
            confirm(&mut state, &plan, &stale, None),
            Confirmed::NeedsImport
        );
        assert_eq!(confirm(&mut state, &plan, &d, None), Confirmed::Done);
        let o = &state.cs()[id as usize];
        assert_eq!(&*o.dn, new_dn);
        assert_eq!(o.new_dn, None);
        assert_eq!(o.imported[slot(&t, "title")], s_("Lead"));
        assert_eq!(o.imported[t.dn.unwrap()], s_(new_dn));
        assert_eq!(o.pending_import, Some(PendingImport::Update));
        assert_eq!(state.cs_by_dn(0, new_dn), Some(id));
        assert_eq!(state.cs_by_dn(0, "CN=A,OU=Users,DC=contoso,DC=com"), None);
        assert_eq!(delta(&plan, &state, id), None);
    }

    #[test]
    fn a_confirmed_delete_stages_the_delete() {
        let (plan, mut state, id) = state_with(|t| object(t, Some(ExportOp::Delete), true));
        let d = delta(&plan, &state, id).unwrap();
        assert_eq!(confirm(&mut state, &plan, &d, None), Confirmed::Done);
        assert_eq!(
            state.cs()[id as usize].pending_import,
            Some(PendingImport::Delete)
        );
    }
}
