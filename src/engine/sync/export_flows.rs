//! Export attribute flow: the values one linked target object should hold, from the in-scope
//! outbound rules, and duplicate attribute resiliency for `unique` attributes.
//!
//! Consumes: a metaverse object, one linked target object and the in-scope outbound rules.
//! Produces, computed from `&State` ([`compute`], then [`withhold`]): an [`Export`] — the
//! target object's new values (its staged export is their difference from the confirmed
//! ones), its DN from the `dn` flow, the references it carries or drops, withheld duplicate
//! values with their Duplicate Attribute errors, and what it read of other objects (for
//! checking a computation made ahead of its turn). Applied ([`Run::apply_export`]): the
//! object's values and DN, the reference maps, the withheld set, and the removal of an export
//! object created by this sync that is in error.

use super::Run;
use super::eval::{FlowOutcome, Log, View};
use super::join::join_equal;
use super::refs::{self, OutboundRef};
use super::trace::short;
use crate::engine::compile::{ConnIdx, FlowPlan, RuleIdx, TypeIdx};
use crate::engine::flow::{self, Outcome};
use crate::engine::model::{CsId, CsObject, ErrorCategory, ExportOp, Key, MvId, SyncError};
use crate::eval::Ctx;
use crate::eval::interp::Object;
use crate::ir::MergeType;
use crate::sema::types::Base;
use crate::value::Value;
use std::sync::Arc;

/// The export flows of one linked target object, computed from `&State`.
#[derive(Debug)]
pub(super) struct Export {
    pub c: CsId,
    /// The object's connector and type.
    ty: (ConnIdx, TypeIdx),
    refs: Vec<OutboundRef>,
    log: Log,
    /// The DN the `dn` flow gave (checked).
    dn: Option<String>,
    /// The object's DN once `dn` is applied.
    dn_after: Arc<str>,
    /// The object's new values; None when a flow or the DN made an error (the object is not
    /// changed).
    new: Option<Vec<Value>>,
    /// A duplicate value was withheld.
    withheld: bool,
    /// The metaverse objects whose target objects a reference value was resolved against.
    pub read_targets: Vec<MvId>,
    /// The keys of the unique values looked up in the connector's uniqueness indexes.
    pub read_keys: Vec<(ConnIdx, Key)>,
    /// The objects found holding a withheld value (their DNs are in the errors).
    pub read_holders: Vec<CsId>,
}

impl Export {
    /// Whether it made no error and withheld no value.
    pub(super) fn clean(&self) -> bool {
        self.log.errors.is_empty() && self.new.is_some() && !self.withheld
    }
}

/// The DN object `o` has once the DN `dn` is set: an export object takes it, an existing object
/// keeps its DN (and gets a rename); see `Run::set_dn`.
pub(super) fn dn_after(o: &CsObject, dn: &str) -> Arc<str> {
    if !crate::dn::same(&o.dn, dn) && o.export == Some(ExportOp::Add) {
        dn.into()
    } else {
        o.dn.clone()
    }
}

/// Export attribute flow for target object `c` of metaverse object `mv`: every attribute an
/// outbound rule of the target manages, from the in-scope `rules` by precedence and merge
/// type, and the DN from the first `dn` flow. Duplicates are not withheld yet ([`withhold`]).
pub(super) fn compute(v: &View, ctxs: &mut [Ctx], mv: MvId, c: CsId, rules: &[RuleIdx]) -> Export {
    let o = &v.state.cs()[c as usize];
    compute_of(v, ctxs, mv, c, o, v.created_cs.contains(&c), rules)
}

/// [`compute`] for object `o` with id `c`, which need not be in the state yet: an object a
/// provisioning will create (`created`), computed ahead of its turn
/// (`outbound::Action::Provision`).
pub(super) fn compute_of(
    v: &View,
    ctxs: &mut [Ctx],
    mv: MvId,
    c: CsId,
    o: &CsObject,
    created: bool,
    rules: &[RuleIdx],
) -> Export {
    let mut log = Log::default();
    let mut refs = Vec::new();
    let mut read_targets = Vec::new();
    let (cc, tty) = (o.connector, o.object_type);
    let tplan = &v.plan.connectors[cc].types[tty];
    let m = &v.state.mv()[&mv];
    let attrs = m.attrs.dense();
    let obj = Object {
        attrs: &attrs,
        imported: &attrs,
    };
    // Attributes any outbound rule of this target manages: without an in-scope contribution
    // their value is removed.
    let managed = v
        .plan
        .managed
        .get(&(cc, m.object_type, tty))
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    // (slot, rule, flow), in precedence order within a slot once grouped by slot.
    let mut contributions: Vec<(usize, RuleIdx, usize)> = Vec::new();
    let mut dn_flow: Option<(RuleIdx, usize)> = None;
    for &r in rules {
        let rule = &v.plan.rules[r];
        if rule.target_type != Some(tty) {
            continue;
        }
        for (fi, f) in rule.flows.iter().enumerate() {
            if f.slot == tplan.dn && f.target == "dn" {
                if dn_flow.is_none() {
                    dn_flow = Some((r, fi));
                }
            } else if let Some(slot) = f.slot {
                contributions.push((slot, r, fi));
            }
        }
    }
    let mut new = o.current.to_vec();
    let contributions = flow::by_slot(&contributions, tplan.len(), |c| c.0);
    // One slot's contributions, in precedence order (reused from slot to slot).
    let mut values = Vec::new();
    let mut at = 0;
    for &slot in managed {
        while contributions.get(at).is_some_and(|c| c.0 < slot) {
            at += 1;
        }
        let end = contributions[at..]
            .iter()
            .position(|c| c.0 != slot)
            .map_or(contributions.len(), |p| at + p);
        let list = &contributions[at..end];
        at = end;
        let merge = list
            .first()
            .map(|&(_, r, fi)| v.plan.rules[r].flows[fi].merge)
            .unwrap_or_default();
        values.clear();
        // An outbound merge adds to what the target holds (the target keeps its own values).
        if matches!(merge, MergeType::Merge | MergeType::MergeCaseInsensitive) {
            values.push(o.imported[slot].clone());
        }
        for &(_, r, fi) in list {
            let rule = &v.plan.rules[r];
            let f = &rule.flows[fi];
            let value = v
                .eval_flow(ctxs, &mut log, rule, f, obj, Some(c), Some(mv), created)
                .contribution();
            let decided = !matches!(value, Value::Null | Value::IgnoreThisFlow)
                && !matches!(merge, MergeType::Merge | MergeType::MergeCaseInsensitive);
            values.push(value);
            if decided {
                break;
            }
        }
        let (base, multi) = tplan.kinds[slot];
        let x = match flow::resolve(merge, &values) {
            Outcome::Set(x) => {
                let x = if base == Base::Ref {
                    refs::outbound_values(v, &mut refs, &mut read_targets, o, cc, x)
                } else {
                    x
                };
                flow::shape(x, multi)
            }
            Outcome::Remove => Value::Null,
            Outcome::Keep => new[slot].clone(),
        };
        if !x.is_null() || !new[slot].is_null() {
            let name = &tplan.names[slot];
            v.note(&mut log, Some(c), Some(mv), || {
                format!("  export {name} = {}", short(&x))
            });
        }
        new[slot] = x;
    }
    let mut dn = None;
    if let Some((r, fi)) = dn_flow {
        let rule = &v.plan.rules[r];
        let f = &rule.flows[fi];
        // A `dn` flow is evaluated for every object, `once` or not.
        if let FlowOutcome::Value(x) =
            v.eval_flow(ctxs, &mut log, rule, f, obj, Some(c), Some(mv), true)
            && let Some(d) = flow::shape(x, false).as_str().map(str::to_string)
        {
            match check_dn(v, ctxs, r, f, mv, &d) {
                Ok(()) => dn = Some(d),
                Err(message) => log.errors.push(SyncError {
                    category: ErrorCategory::DataValidationFailure,
                    cs: Some(c),
                    mv: Some(mv),
                    rule: Some(rule.name().to_string()),
                    code: None,
                    message,
                }),
            }
        }
    }
    let dn_after = match &dn {
        Some(d) => dn_after(o, d),
        None => o.dn.clone(),
    };
    if let Some(s) = tplan.dn {
        new[s] = Value::Str(dn_after.clone());
    }
    // An object in error is not changed.
    let new = log.errors.is_empty().then_some(new);
    Export {
        c,
        ty: (cc, tty),
        refs,
        log,
        dn,
        dn_after,
        new,
        withheld: false,
        read_targets,
        read_keys: Vec::new(),
        read_holders: Vec::new(),
    }
}

/// Validates a DN the `dn` flow `f` of outbound rule `rule` produced for `mv` (DECISIONS 27):
/// it must parse, and attribute values concatenated into RDN values must not change its
/// structure. The error is the sync error's message.
pub(super) fn check_dn(
    v: &View,
    ctxs: &mut [Ctx],
    rule: RuleIdx,
    f: &FlowPlan,
    mv: MvId,
    dn: &str,
) -> Result<(), String> {
    let r = &v.plan.rules[rule];
    let Some(m) = v.state.mv().get(&mv) else {
        return Ok(());
    };
    let names = &v.plan.metaverse[r.source_type].names;
    let attrs = m.attrs.dense();
    crate::engine::dnflow::check(
        f.dn_template.as_deref(),
        dn,
        &mut ctxs[r.connector],
        Object {
            attrs: &attrs,
            imported: &attrs,
        },
        names,
    )
    .map_err(|e| format!("flow to dn: {e}"))
}

/// Duplicate attribute resiliency: a value of a `unique` attribute already held by another
/// object of the connector is withheld from the export (which gets a Duplicate Attribute
/// error naming both); its other values still export, and the metaverse object is revisited
/// by every sync until the holder releases the value. Reads the connector's uniqueness
/// indexes; `Err` when one is not built (`Run::build_unique_indexes` builds them).
pub(super) fn withhold(v: &View, mv: MvId, e: &mut Export) -> Result<(), ()> {
    let Some(new) = e.new.as_mut() else {
        return Ok(());
    };
    let c = e.c;
    let (cc, tty) = e.ty;
    let tplan = &v.plan.connectors[cc].types[tty];
    for slot in (0..new.len()).filter(|&s| tplan.unique[s]) {
        let name = &tplan.names[slot];
        let Some(index) = v.state.cs_index().get(&(cc, Box::<str>::from(&**name))) else {
            return Err(());
        };
        let mut kept = Vec::new();
        let mut conflicts = Vec::new();
        for x in new[slot].values() {
            let key = Key::folded(x);
            let holder = key.as_ref().and_then(|k| index.get(k)).and_then(|ids| {
                ids.iter().copied().find(|&h| {
                    h != c && {
                        let o = &v.state.cs()[h as usize];
                        !o.gone
                            && v.plan.connectors[cc].types[o.object_type]
                                .slot(name)
                                .is_some_and(|hs| {
                                    o.current[hs]
                                        .values()
                                        .iter()
                                        .any(|y| join_equal(x, y, false))
                                })
                    }
                })
            });
            if let Some(k) = key {
                e.read_keys.push((cc, k));
            }
            match holder {
                Some(h) => conflicts.push((x.clone(), h)),
                None => kept.push(x.clone()),
            }
        }
        if conflicts.is_empty() {
            continue;
        }
        let (_, multi) = tplan.kinds[slot];
        new[slot] = flow::shape(Value::many(kept), multi);
        let dn = &e.dn_after;
        for (x, h) in conflicts {
            e.read_holders.push(h);
            let holder = &v.state.cs()[h as usize].dn;
            let shown = short(&x);
            v.note(&mut e.log, Some(c), Some(mv), || {
                format!("  withheld {name} = {shown}: held by {holder}")
            });
            e.log.errors.push(SyncError {
                category: ErrorCategory::DuplicateAttribute,
                cs: Some(c),
                mv: Some(mv),
                rule: None,
                code: None,
                message: format!(
                    "{name} {shown} of {dn} is already held by {holder}; the value is withheld"
                ),
            });
        }
        e.withheld = true;
    }
    Ok(())
}

impl Run<'_> {
    /// Export attribute flow for one linked target object, computed and applied at once.
    pub(super) fn export_flows(&mut self, mv: MvId, c: CsId, rules: &[RuleIdx]) {
        let (v, ctxs) = self.split();
        let mut e = compute(&v, ctxs, mv, c, rules);
        if let Some(n) = e.new.as_ref().map(Vec::len) {
            self.build_unique_indexes(c, n);
            let (v, _) = self.split();
            // The indexes are built: nothing is missing.
            let _ = withhold(&v, mv, &mut e);
        }
        self.apply_export(mv, e);
    }

    /// Applies the export flows of one target object of `mv`: the references it carries or
    /// drops, its errors and notes, its DN, then (unless it is in error) its withheld
    /// duplicates and values. An export object created by this sync that is in error is
    /// removed again.
    pub(super) fn apply_export(&mut self, mv: MvId, e: Export) {
        let c = e.c;
        self.apply_outbound_refs(e.refs);
        self.flush(e.log);
        if let Some(d) = &e.dn {
            self.set_dn(c, d);
        }
        match e.new {
            None => {
                // An object in error is not changed: a new export object is not created.
                if self.created_cs.remove(&c) {
                    self.state.unlink(c);
                    self.remove_cs(c);
                    self.report.provisions = self.report.provisions.saturating_sub(1);
                    self.moved(mv);
                }
            }
            Some(new) => {
                if e.withheld {
                    self.state.withheld_mut().insert(mv);
                }
                self.set_cs_current(c, new);
            }
        }
    }
}
