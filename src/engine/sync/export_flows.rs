//! Export attribute flow: the values one linked target object should hold, from the in-scope
//! outbound rules, and duplicate attribute resiliency for `unique` attributes.
//!
//! Consumes: a metaverse object, one linked target object and the in-scope outbound rules.
//! Produces: the target object's current values (its staged export is their difference from
//! the confirmed ones), its DN from the `dn` flow, withheld duplicate values and their
//! Duplicate Attribute errors.

use super::Run;
use super::join::join_equal;
use super::trace::short;
use crate::engine::compile::RuleIdx;
use crate::engine::flow::{self, Outcome};
use crate::engine::model::{CsId, ErrorCategory, Key, MvId, SyncError};
use crate::eval::interp::Object;
use crate::ir::MergeType;
use crate::sema::types::Base;
use crate::value::Value;
use std::collections::{BTreeMap, BTreeSet};

impl Run<'_> {
    /// Export attribute flow for one linked target object.
    pub(super) fn export_flows(&mut self, mv: MvId, c: CsId, rules: &[RuleIdx]) {
        let errors_before = self.report.errors.len();
        let (cc, tty) = {
            let o = &self.state.cs()[c as usize];
            (o.connector, o.object_type)
        };
        let tplan = &self.plan.connectors[cc].types[tty];
        let mvty = self.state.mv()[&mv].object_type;
        let all = self
            .plan
            .outbound
            .get(&(cc, mvty))
            .cloned()
            .unwrap_or_default();
        // Attributes any outbound rule of this target manages: without an in-scope
        // contribution their value is removed.
        let mut managed: BTreeSet<usize> = BTreeSet::new();
        for &r in &all {
            let rule = &self.plan.rules[r];
            if rule.target_type == Some(tty) {
                managed.extend(
                    rule.flows
                        .iter()
                        .filter_map(|f| tplan.slot(&f.target))
                        .filter(|&s| Some(s) != tplan.dn),
                );
            }
        }
        let mut contributions: BTreeMap<usize, Vec<(RuleIdx, usize)>> = BTreeMap::new();
        let mut dn_flow: Option<(RuleIdx, usize)> = None;
        for &r in rules {
            let rule = &self.plan.rules[r];
            if rule.target_type != Some(tty) {
                continue;
            }
            for (fi, f) in rule.flows.iter().enumerate() {
                if f.target == "dn" {
                    if dn_flow.is_none() {
                        dn_flow = Some((r, fi));
                    }
                } else if let Some(slot) = tplan.slot(&f.target) {
                    contributions.entry(slot).or_default().push((r, fi));
                }
            }
        }
        let created = self.created_cs.contains(&c);
        let mut new = self.state.cs()[c as usize].current.to_vec();
        for slot in managed {
            let list = contributions.get(&slot).cloned().unwrap_or_default();
            let merge = list
                .first()
                .map(|&(r, fi)| self.plan.rules[r].flows[fi].merge)
                .unwrap_or_default();
            let mut values = Vec::new();
            // An outbound merge adds to what the target holds (the target keeps its own values).
            if matches!(merge, MergeType::Merge | MergeType::MergeCaseInsensitive) {
                values.push(self.state.cs()[c as usize].imported[slot].clone());
            }
            for (r, fi) in list {
                let rule = &self.plan.rules[r];
                let f = &rule.flows[fi];
                let value = if f.once && !created {
                    Value::IgnoreThisFlow
                } else {
                    let m = &self.state.mv()[&mv];
                    match self.plan.program.eval(
                        &mut self.ctxs[cc],
                        f.id as usize,
                        &f.expr,
                        Object {
                            attrs: &m.attrs,
                            imported: &m.attrs,
                        },
                    ) {
                        Ok(v) => v,
                        Err(e) => {
                            self.eval_error(Some(c), Some(mv), rule, &f.target, *e);
                            Value::IgnoreThisFlow
                        }
                    }
                };
                let decided = !matches!(value, Value::Null | Value::IgnoreThisFlow)
                    && !matches!(merge, MergeType::Merge | MergeType::MergeCaseInsensitive);
                values.push(value);
                if decided {
                    break;
                }
            }
            let (base, multi) = tplan.kinds[slot];
            let outcome = flow::resolve(merge, &values);
            let v = match outcome {
                Outcome::Set(v) => {
                    let v = if base == Base::Ref {
                        self.resolve_outbound_refs(c, cc, v)
                    } else {
                        v
                    };
                    flow::shape(v, multi)
                }
                Outcome::Remove => Value::Null,
                Outcome::Keep => new[slot].clone(),
            };
            if !v.is_null() || !new[slot].is_null() {
                let name = tplan.names[slot].clone();
                let shown = short(&v);
                self.note(Some(c), Some(mv), || format!("  export {name} = {shown}"));
            }
            new[slot] = v;
        }
        if let Some((r, fi)) = dn_flow {
            let rule = &self.plan.rules[r];
            let m = &self.state.mv()[&mv];
            match self.plan.program.eval(
                &mut self.ctxs[cc],
                rule.flows[fi].id as usize,
                &rule.flows[fi].expr,
                Object {
                    attrs: &m.attrs,
                    imported: &m.attrs,
                },
            ) {
                Ok(v) => {
                    if let Some(d) = flow::shape(v, false).as_str().map(str::to_string) {
                        match self.check_dn(r, &rule.flows[fi], mv, &d) {
                            Ok(()) => self.set_dn(c, &d),
                            Err(message) => self.error(SyncError {
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
                Err(e) => self.eval_error(Some(c), Some(mv), rule, "dn", *e),
            }
        }
        if let Some(s) = tplan.dn {
            new[s] = Value::Str(self.state.cs()[c as usize].dn.clone());
        }
        if self.report.errors.len() > errors_before {
            // An object in error is not changed: a new export object is not created.
            if self.created_cs.remove(&c) {
                self.state.unlink(c);
                self.remove_cs(c);
                self.report.provisions = self.report.provisions.saturating_sub(1);
            }
            return;
        }
        self.withhold_duplicates(mv, c, &mut new);
        self.set_cs_current(c, new);
    }

    /// Duplicate attribute resiliency: a value of a `unique` attribute already held by
    /// another object of the connector is withheld from this one (which gets a Duplicate
    /// Attribute error naming both); its other values still export, and the object is
    /// revisited by every sync until the holder releases the value.
    pub(super) fn withhold_duplicates(&mut self, mv: MvId, c: CsId, new: &mut [Value]) {
        let (cc, tty) = {
            let o = &self.state.cs()[c as usize];
            (o.connector, o.object_type)
        };
        let tplan = &self.plan.connectors[cc].types[tty];
        for slot in (0..new.len()).filter(|&s| tplan.unique[s]) {
            let name = tplan.names[slot].clone();
            self.build_cs_index(cc, &name);
            let index = self
                .state
                .cs_index()
                .get(&(cc, Box::<str>::from(name.as_str())));
            let mut kept = Vec::new();
            let mut conflicts = Vec::new();
            for v in new[slot].values() {
                let holder = Key::folded(v)
                    .and_then(|k| index.and_then(|i| i.get(&k)))
                    .and_then(|ids| {
                        ids.iter().copied().find(|&h| {
                            h != c && {
                                let o = &self.state.cs()[h as usize];
                                !o.gone
                                    && self.plan.connectors[cc].types[o.object_type]
                                        .slot(&name)
                                        .is_some_and(|hs| {
                                            o.current[hs]
                                                .values()
                                                .iter()
                                                .any(|x| join_equal(v, x, false))
                                        })
                            }
                        })
                    });
                match holder {
                    Some(h) => conflicts.push((v.clone(), h)),
                    None => kept.push(v.clone()),
                }
            }
            if conflicts.is_empty() {
                continue;
            }
            let (_, multi) = tplan.kinds[slot];
            new[slot] = flow::shape(Value::many(kept), multi);
            let dn = self.state.cs()[c as usize].dn.clone();
            for (v, h) in conflicts {
                let holder = self.state.cs()[h as usize].dn.clone();
                let shown = short(&v);
                self.note(Some(c), Some(mv), || {
                    format!("  withheld {name} = {shown}: held by {holder}")
                });
                self.error(SyncError {
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
            self.state.withheld_mut().insert(mv);
        }
    }
}
