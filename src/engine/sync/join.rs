//! Joins: inbound (a connector-space object to a metaverse object) and outbound (a metaverse
//! object to a connector-space object of a target), with the join indexes they need.
//!
//! Consumes: the in-scope rules' join groups and the state's values. Produces: the join
//! outcome ([`Joined`], or the candidates of a group), the join indexes (built the first time
//! a join needs them), and Ambiguous Join and Multiple Join Rules errors.

use super::Run;
use crate::engine::compile::{ConnIdx, Plan, RuleIdx, RulePlan, TypeIdx};
use crate::engine::model::{CsId, CsObject, ErrorCategory, Key, MvId, State, SyncError};
use crate::value::Value;
use std::collections::BTreeSet;

/// The outcome of a join attempt.
pub(super) enum Joined {
    To(MvId, RuleIdx),
    NoMatch,
    /// An error was recorded; the object is neither joined nor projected.
    Failed,
}

impl Run<'_> {
    /// Builds the join index of a metaverse attribute, the first time a join needs it (from
    /// then on the state keeps it current). A sync that joins nothing builds no index.
    pub(super) fn ensure_mv_index(&mut self, attr: &str) {
        if self.state.mv_index().contains_key(attr) {
            return;
        }
        // Sized for one key per object: no rehashing as it fills.
        let mut map: crate::engine::model::FastMap<Key, Vec<MvId>> =
            crate::engine::model::FastMap::with_capacity_and_hasher(
                self.state.mv().len(),
                Default::default(),
            );
        for m in self.state.mv().values() {
            if let Some(s) = self.plan.metaverse[m.object_type].slot(attr) {
                for v in m.attrs[s].values() {
                    if let Some(k) = Key::folded(v) {
                        map.entry(k).or_default().push(m.id);
                    }
                }
            }
        }
        self.state.set_mv_index(attr.into(), map);
    }

    /// Builds the uniqueness indexes the export of object `c` reads: of each unique
    /// attribute among its first `n` slots (see `export_flows::withhold`).
    pub(super) fn build_unique_indexes(&mut self, c: CsId, n: usize) {
        let (cc, tty) = {
            let o = &self.state.cs()[c as usize];
            (o.connector, o.object_type)
        };
        let tplan = &self.plan.connectors[cc].types[tty];
        for slot in (0..n).filter(|&s| tplan.unique[s]) {
            let name = tplan.names[slot].clone();
            self.build_cs_index(cc, &name);
        }
    }

    /// Builds the join or uniqueness index of a connector-space attribute, the first time a
    /// join or a uniqueness check needs it (from then on the state keeps it current).
    pub(super) fn build_cs_index(&mut self, cc: ConnIdx, attr: &str) {
        let key = (cc, Box::<str>::from(attr));
        if self.state.cs_index().contains_key(&key) {
            return;
        }
        let indexed = |o: &&CsObject| o.connector == cc && !o.gone && !o.placeholder;
        // Sized for one key per object of the connector: no rehashing as it fills.
        let objects = self.state.cs().iter().filter(indexed).count();
        let mut map: crate::engine::model::FastMap<Key, Vec<CsId>> =
            crate::engine::model::FastMap::with_capacity_and_hasher(objects, Default::default());
        for (i, o) in self.state.cs().iter().enumerate() {
            if !indexed(&o) {
                continue;
            }
            if let Some(s) = self.plan.connectors[cc].types[o.object_type].slot(attr) {
                for v in o.current[s].values() {
                    if let Some(k) = Key::folded(v) {
                        map.entry(k).or_default().push(i as CsId);
                    }
                }
            }
        }
        self.state.set_cs_index(key, map);
    }

    /// Join groups of the in-scope rules with join conditions (docs/DECISIONS.md item 12).
    pub(super) fn join(&mut self, id: CsId, rules: &[RuleIdx]) -> Joined {
        for &r in rules {
            for cond in self.plan.rules[r].joins.iter().flatten() {
                self.ensure_mv_index(&cond.target);
            }
        }
        let connector = self.state.cs()[id as usize].connector;
        let mut found: Vec<(RuleIdx, MvId)> = Vec::new();
        for &r in rules {
            let rule = &self.plan.rules[r];
            for (gi, group) in rule.joins.iter().enumerate() {
                let candidates = self.mv_candidates(id, rule, group);
                let n = candidates.len();
                self.note(Some(id), None, || {
                    format!("join \"{}\" group {}: {n} match(es)", rule.name(), gi + 1)
                });
                if n == 1 {
                    found.push((r, candidates[0]));
                    break;
                }
            }
        }
        let Some(&(rule, mv)) = found.first() else {
            return Joined::NoMatch;
        };
        if found.iter().any(|(_, m)| *m != mv) {
            let names: Vec<&str> = found
                .iter()
                .map(|(r, _)| self.plan.rules[*r].name())
                .collect();
            self.error(SyncError {
                category: ErrorCategory::MultipleJoinRules,
                cs: Some(id),
                mv: None,
                rule: None,
                code: None,
                message: format!(
                    "join rules {} match different metaverse objects",
                    names.join(", ")
                ),
            });
            return Joined::Failed;
        }
        if let Some(other) = self.state.linked_in(mv, connector)
            && other != id
        {
            let other_dn = self.state.cs()[other as usize].dn.clone();
            self.error(SyncError {
                category: ErrorCategory::AmbiguousJoin,
                cs: Some(id),
                mv: Some(mv),
                rule: Some(self.plan.rules[rule].name().to_string()),
                code: None,
                message: format!(
                    "metaverse object {mv} is already joined to {other_dn} of the same connector"
                ),
            });
            return Joined::Failed;
        }
        self.note(Some(id), Some(mv), || {
            format!(
                "joined to metaverse object {mv} by \"{}\"",
                self.plan.rules[rule].name()
            )
        });
        Joined::To(mv, rule)
    }

    /// Metaverse objects matching every condition of a join group.
    pub(super) fn mv_candidates(
        &self,
        id: CsId,
        rule: &RulePlan,
        group: &[crate::engine::compile::JoinPlan],
    ) -> Vec<MvId> {
        candidates(self.state, self.plan, id, rule, group)
    }
}

/// The metaverse objects join group `group` of inbound rule `rule` finds for object `id`,
/// from the state's join indexes (a missing index finds none).
pub(super) fn candidates(
    state: &State,
    plan: &Plan,
    id: CsId,
    rule: &RulePlan,
    group: &[crate::engine::compile::JoinPlan],
) -> Vec<MvId> {
    let o = &state.cs()[id as usize];
    let mut result: Option<BTreeSet<MvId>> = None;
    for cond in group {
        let values = o.current.get(cond.source).map(Value::values).unwrap_or(&[]);
        if values.is_empty() {
            return Vec::new();
        }
        let mut matches = BTreeSet::new();
        let index = state.mv_index().get(cond.target.as_str());
        for v in values {
            let Some(k) = Key::folded(v) else { continue };
            for &mv in index
                .and_then(|i| i.get(&k))
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                let Some(m) = state.mv().get(&mv) else {
                    continue;
                };
                if rule.target_type.is_some_and(|t| t != m.object_type) {
                    continue;
                }
                let Some(slot) = plan.metaverse[m.object_type].slot(&cond.target) else {
                    continue;
                };
                let hit = m.attrs[slot]
                    .values()
                    .iter()
                    .any(|x| join_equal(v, x, cond.case_sensitive));
                if hit {
                    matches.insert(mv);
                }
            }
        }
        result = Some(match result {
            None => matches,
            Some(r) => r.intersection(&matches).copied().collect(),
        });
    }
    result.map(|r| r.into_iter().collect()).unwrap_or_default()
}

/// The unlinked objects of type `tty` in connector `cc` that a join group of an outbound rule
/// matches for `mv`, from the connector's join indexes; None when one of them is not built
/// (none is then a candidate, as a missing index holds no key).
pub(super) fn cs_candidates(
    state: &State,
    plan: &Plan,
    mv: MvId,
    cc: ConnIdx,
    tty: TypeIdx,
    group: &[crate::engine::compile::JoinPlan],
) -> Option<Vec<CsId>> {
    let m = &state.mv()[&mv];
    let mut result: Option<BTreeSet<CsId>> = None;
    let mut built = true;
    for cond in group {
        let values = m.attrs.get(cond.source).map(Value::values).unwrap_or(&[]);
        if values.is_empty() {
            return Some(Vec::new());
        }
        let index = state
            .cs_index()
            .get(&(cc, Box::<str>::from(cond.target.as_str())));
        built &= index.is_some();
        let mut matches = BTreeSet::new();
        for v in values {
            let Some(k) = Key::folded(v) else { continue };
            for &c in index
                .and_then(|i| i.get(&k))
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                let o = &state.cs()[c as usize];
                if o.gone || o.placeholder || o.link.is_some() || o.object_type != tty {
                    continue;
                }
                let Some(slot) = plan.connectors[cc].types[tty].slot(&cond.target) else {
                    continue;
                };
                if o.current[slot]
                    .values()
                    .iter()
                    .any(|x| join_equal(v, x, cond.case_sensitive))
                {
                    matches.insert(c);
                }
            }
        }
        result = Some(match result {
            None => matches,
            Some(r) => r.intersection(&matches).copied().collect(),
        });
    }
    built.then(|| result.map(|r| r.into_iter().collect()).unwrap_or_default())
}

/// Join value equality: case-insensitive for text unless the condition is case-sensitive.
pub(super) fn join_equal(a: &Value, b: &Value, case_sensitive: bool) -> bool {
    match (a, b) {
        (Value::Str(x) | Value::Ref(x), Value::Str(y) | Value::Ref(y)) => {
            if case_sensitive {
                x == y
            } else {
                x.to_lowercase() == y.to_lowercase()
            }
        }
        _ => Key::exact(a) == Key::exact(b),
    }
}
