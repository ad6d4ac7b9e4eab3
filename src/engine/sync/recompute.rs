//! Recompute: the values of one metaverse object from the inbound flows of its linked
//! objects, by precedence and merge type; deletion of a metaverse object no object keeps.
//!
//! Consumes: a metaverse object and the in-scope inbound rules of its linked objects.
//! Produces: its new values (or none, for an object in error), or its deletion with the
//! deprovisioning of the objects provisioned from it.

use super::Run;
use super::trace::short;
use crate::engine::compile::{ConnIdx, RuleIdx};
use crate::engine::flow::{self, Outcome};
use crate::engine::model::{CsId, MvId};
use crate::eval::interp::Object;
use crate::ir::MergeType;
use crate::sema::rules::LinkType;
use crate::value::Value;

/// One inbound flow that may contribute to a metaverse attribute: (target slot, precedence
/// key, source object, rule, flow index).
type Contribution = (usize, (i64, ConnIdx, RuleIdx), CsId, RuleIdx, usize);

impl Run<'_> {
    /// Recomputes every dirty metaverse object, in id order.
    pub(super) fn recompute_dirty(&mut self) {
        while let Some(mv) = self.dirty.pop_first() {
            self.recompute(mv);
            if self.stopped {
                return;
            }
        }
    }

    pub(super) fn recompute(&mut self, mv: MvId) {
        self.seed_for(2, mv);
        let Some(m) = self.state.mv().get(&mv) else {
            return;
        };
        let ty = m.object_type;
        let mut links = m.links.clone();
        links.sort_by_key(|&c| (self.state.cs()[c as usize].connector, c));
        // Contributions: (slot, precedence key, object, rule, flow index).
        let mut contributions: Vec<Contribution> = Vec::new();
        let mut keep = false;
        for &c in &links {
            let rules = self.inbound_rules(c);
            for r in rules {
                let rule = &self.plan.rules[r];
                if matches!(rule.link(), LinkType::Provision | LinkType::StickyJoin)
                    && !self.state.cs()[c as usize].link.is_some_and(|l| l.outbound)
                {
                    keep = true;
                }
                if rule.target_type.is_some_and(|t| t != ty) {
                    continue;
                }
                for (fi, f) in rule.flows.iter().enumerate() {
                    if let Some(slot) = self.plan.metaverse[ty].slot(&f.target) {
                        contributions.push((
                            slot,
                            (rule.def.precedence, rule.connector, r),
                            c,
                            r,
                            fi,
                        ));
                    }
                }
            }
        }
        if !keep {
            self.note(None, Some(mv), || format!("metaverse object {mv} deleted: no joined object has an in-scope provision or stickyjoin rule"));
            self.delete_mv(mv);
            return;
        }
        contributions.sort_by_key(|c| (c.0, c.1));
        let errors_before = self.report.errors.len();
        let tplan = &self.plan.metaverse[ty];
        let old = self.state.mv()[&mv].attrs.clone();
        let mut new = vec![Value::Null; tplan.len()];
        let created = self.created_mv.contains(&mv);
        let mut i = 0;
        while i < contributions.len() {
            let slot = contributions[i].0;
            let end = contributions[i..]
                .iter()
                .position(|c| c.0 != slot)
                .map_or(contributions.len(), |p| i + p);
            let merge = self.plan.rules[contributions[i].3].flows[contributions[i].4].merge;
            let mut values: Vec<Value> = Vec::new();
            for &(_, _, c, r, fi) in &contributions[i..end] {
                let rule = &self.plan.rules[r];
                let f = &rule.flows[fi];
                let value = if f.once && !created {
                    Value::IgnoreThisFlow
                } else {
                    let o = &self.state.cs()[c as usize];
                    match self.plan.program.eval(
                        &mut self.ctxs[rule.connector],
                        f.id as usize,
                        &f.expr,
                        Object {
                            attrs: &o.current,
                            imported: &o.imported,
                        },
                    ) {
                        Ok(v) => v,
                        Err(e) => {
                            self.eval_error(Some(c), Some(mv), rule, &f.target, *e);
                            Value::IgnoreThisFlow
                        }
                    }
                };
                let target = &tplan.names[slot];
                if !matches!(value, Value::Null) {
                    self.note(Some(c), Some(mv), || {
                        format!(
                            "  flow {target} <- {} from \"{}\"",
                            short(&value),
                            rule.name()
                        )
                    });
                }
                let decided = !matches!(value, Value::Null | Value::IgnoreThisFlow)
                    && !matches!(merge, MergeType::Merge | MergeType::MergeCaseInsensitive);
                let value = if tplan.is_ref(slot) {
                    self.resolve_inbound_refs(c, value)
                } else {
                    value
                };
                values.push(value);
                if decided {
                    break;
                }
            }
            let (_, multi) = tplan.kinds[slot];
            new[slot] = match flow::resolve(merge, &values) {
                Outcome::Set(v) => flow::shape(v, multi),
                Outcome::Remove => Value::Null,
                Outcome::Keep => old[slot].clone(),
            };
            if !new[slot].is_null() || !old[slot].is_null() {
                let target = tplan.names[slot].clone();
                let shown = short(&new[slot]);
                self.note(None, Some(mv), || format!("  => {target} = {shown}"));
            }
            i = end;
        }
        if self.report.errors.len() > errors_before {
            // An object in error is not changed: a new one is not projected.
            if created {
                self.note(None, Some(mv), || {
                    format!("not projected: metaverse object {mv} has a sync error")
                });
                let links = self
                    .state
                    .mv()
                    .get(&mv)
                    .map(|m| m.links.clone())
                    .unwrap_or_default();
                for c in links {
                    self.state.unlink(c);
                }
                self.state.mv_mut().remove(&mv);
                self.created_mv.remove(&mv);
                self.outbound.remove(&mv);
                self.report.projections = self.report.projections.saturating_sub(1);
            } else {
                self.note(None, Some(mv), || {
                    format!("metaverse object {mv} not changed: it has a sync error")
                });
            }
            return;
        }
        if new != old || created {
            self.set_mv_attrs(mv, new);
            self.outbound.insert(mv);
            self.report.mv_updates += 1;
        }
    }

    pub(super) fn delete_mv(&mut self, mv: MvId) {
        let Some(m) = self.state.mv().get(&mv) else {
            return;
        };
        let links = m.links.clone();
        for c in links {
            let provisioned = self.state.cs()[c as usize].provisioned_by.is_some();
            self.state.unlink(c);
            self.unlinked(c, mv);
            if provisioned && !self.state.cs()[c as usize].gone {
                self.deprovision(c);
            }
        }
        let empty = vec![Value::Null; self.state.mv()[&mv].attrs.len()];
        self.set_mv_attrs(mv, empty);
        self.state.mv_mut().remove(&mv);
        self.outbound.remove(&mv);
        self.report.mv_deletes += 1;
    }
}
