//! Synchronization: inbound (scope, join, projection, attribute flow with precedence,
//! metaverse deletion) and outbound (scope, join, provisioning, deprovisioning, export flow).
//!
//! Consumes: the [`Plan`], the [`State`] with staged imports, and one evaluation context per
//! connector. Produces: the updated metaverse, connector-space objects with staged exports
//! (derived from their current vs. confirmed values), and a [`SyncReport`] with counts and
//! categorized per-object [`SyncError`]s (errors never abort the run; past the error limit the
//! run stops with `stopped-error-limit`).
//!
//! Order (deterministic): connectors in bundle order, objects in id order; each object is
//! joined or projected and the metaverse objects it touched are recomputed before the next
//! object, so later objects join against current metaverse values (references to objects not
//! linked yet are re-resolved when those are linked); outbound runs last over every touched
//! metaverse object. A full sync processes every object; a delta sync only
//! objects with a pending import, the metaverse objects they touch, and objects whose
//! references point at newly linked objects.

use super::compile::{ConnIdx, Plan, RuleIdx, RulePlan, TypeIdx};
use super::flow::{self, Outcome};
use super::model::{
    CsId, CsObject, ErrorCategory, ExportOp, Key, Link, MvId, MvObject, PendingImport, State,
    SyncError,
};
use super::scope;
use crate::eval::Ctx;
use crate::eval::interp::{EvalError, Object};
use crate::ir::MergeType;
use crate::sema::rules::LinkType;
use crate::sema::types::Base;
use crate::value::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Which objects a sync processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Delta,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Success,
    CompletedWithErrors,
    StoppedErrorLimit,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "success",
            RunStatus::CompletedWithErrors => "completed-sync-errors",
            RunStatus::StoppedErrorLimit => "stopped-error-limit",
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReport {
    pub status: RunStatus,
    pub processed: usize,
    pub projections: usize,
    pub joins: usize,
    pub disconnects: usize,
    pub deletes: usize,
    pub mv_updates: usize,
    pub mv_deletes: usize,
    pub provisions: usize,
    pub deprovisions: usize,
    pub errors: Vec<SyncError>,
    /// References that could not be carried (the referenced object is not in the target).
    pub unresolved_references: Vec<String>,
}

impl Default for SyncReport {
    fn default() -> Self {
        SyncReport {
            status: RunStatus::Success,
            processed: 0,
            projections: 0,
            joins: 0,
            disconnects: 0,
            deletes: 0,
            mv_updates: 0,
            mv_deletes: 0,
            provisions: 0,
            deprovisions: 0,
            errors: Vec::new(),
            unresolved_references: Vec::new(),
        }
    }
}

/// A lineage recorder for one connector-space object (previews).
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub focus: Option<CsId>,
    pub lines: Vec<String>,
}

/// The metaverse value of a reference to metaverse object `id`.
pub fn mv_ref(id: MvId) -> Value {
    Value::Ref(format!("mv:{id}").into())
}

fn parse_mv_ref(v: &Value) -> Option<MvId> {
    v.as_str()?.strip_prefix("mv:")?.parse().ok()
}

/// Runs a sync. `trace` records the lineage of its focus object.
pub fn run(
    plan: &Plan,
    state: &mut State,
    ctxs: &mut [Ctx],
    mode: Mode,
    error_limit: usize,
    trace: Option<&mut Trace>,
) -> SyncReport {
    let mut run = Run {
        plan,
        state,
        ctxs,
        report: SyncReport::default(),
        dirty: BTreeSet::new(),
        outbound: BTreeSet::new(),
        created_mv: HashSet::new(),
        created_cs: HashSet::new(),
        inscope: HashMap::new(),
        error_limit,
        trace,
        stopped: false,
        revisit: BTreeSet::new(),
        unresolved: Vec::new(),
    };
    // Objects in error are tried again.
    let in_error: Vec<MvId> = run.state.in_error_mv().iter().copied().collect();
    for mv in in_error {
        if run.state.mv().contains_key(&mv) {
            run.dirty.insert(mv);
            run.outbound.insert(mv);
        }
    }
    // A full sync looks at every object; a delta sync at the objects changed since the last
    // sync, the objects in error and the disconnectors (a new object elsewhere may now join
    // them, as in Entra's sync engine): the state keeps that list as objects change. Each
    // connector's list is taken when its turn comes, so objects changed by an earlier
    // connector's objects are seen, as a scan of the whole connector space would see them.
    for c in 0..plan.connectors.len() {
        let candidates: Vec<CsId> = match mode {
            Mode::Full => (0..run.state.cs().len() as CsId).collect(),
            Mode::Delta => run.state.take_sync_candidates(),
        };
        let mut ids = Vec::new();
        for i in candidates {
            let Some(o) = run.state.cs().get(i as usize) else {
                continue;
            };
            if o.gone || o.placeholder {
                continue;
            }
            if o.connector != c {
                if mode == Mode::Delta {
                    run.state.keep_for_sync(i);
                }
                continue;
            }
            if mode == Mode::Full
                || o.pending_import.is_some()
                || o.link.is_none()
                || run.state.in_error_cs().contains(&i)
            {
                ids.push(i);
            }
        }
        // Each object is processed completely (join or projection, then the values of the
        // metaverse objects it touched) before the next, so later objects join against
        // current values.
        for (n, &id) in ids.iter().enumerate() {
            run.inbound_object(id);
            run.recompute_dirty();
            // A disconnector is looked at again by the next delta sync.
            if run.state.cs()[id as usize].link.is_none() {
                run.state.keep_for_sync(id);
            }
            if run.stopped {
                // What this sync did not reach, the next one does.
                for &rest in &ids[n + 1..] {
                    run.state.keep_for_sync(rest);
                }
                break;
            }
        }
        if run.stopped {
            break;
        }
    }
    if !run.stopped {
        let targets: Vec<MvId> = match mode {
            Mode::Full => run.state.mv().keys().copied().collect(),
            Mode::Delta => {
                let withheld = if run.state.withheld().is_empty() {
                    BTreeSet::new()
                } else {
                    std::mem::take(run.state.withheld_mut())
                };
                run.outbound
                    .iter()
                    .chain(withheld.iter())
                    .copied()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            }
        };
        if mode == Mode::Full && !run.state.withheld().is_empty() {
            run.state.withheld_mut().clear();
        }
        for mv in targets {
            run.outbound_mv(mv);
            if run.stopped {
                break;
            }
        }
        // References to objects provisioned later in this pass resolve now.
        let mut rounds = 0;
        while !run.revisit.is_empty() && !run.stopped && rounds < 16 {
            for mv in std::mem::take(&mut run.revisit) {
                run.outbound_mv(mv);
            }
            rounds += 1;
        }
    }
    // Only the references still waiting are unresolved.
    let unresolved = std::mem::take(&mut run.unresolved);
    for (msg, target, referrer) in unresolved {
        if run
            .state
            .awaiting_refs()
            .get(&target)
            .is_some_and(|r| r.contains(&referrer))
            && !run.report.unresolved_references.contains(&msg)
        {
            run.report.unresolved_references.push(msg);
        }
    }
    let in_error_cs = run
        .report
        .errors
        .iter()
        .filter_map(|e| e.cs)
        .filter(|&c| run.state.cs().get(c as usize).is_some_and(|o| !o.gone))
        .collect();
    let in_error_mv = run
        .report
        .errors
        .iter()
        .filter_map(|e| e.mv)
        .filter(|m| run.state.mv().contains_key(m))
        .collect();
    run.state.set_in_error(in_error_cs, in_error_mv);
    let mut report = run.report;
    report.status = if run.stopped {
        RunStatus::StoppedErrorLimit
    } else if report.errors.is_empty() {
        RunStatus::Success
    } else {
        RunStatus::CompletedWithErrors
    };
    report
}

struct Run<'a> {
    plan: &'a Plan,
    state: &'a mut State,
    ctxs: &'a mut [Ctx],
    report: SyncReport,
    /// Metaverse objects whose inbound values must be recomputed.
    dirty: BTreeSet<MvId>,
    /// Metaverse objects outbound sync must visit (delta).
    outbound: BTreeSet<MvId>,
    created_mv: HashSet<MvId>,
    created_cs: HashSet<CsId>,
    /// In-scope inbound rules per object, computed once per run.
    inscope: HashMap<CsId, Vec<RuleIdx>>,
    error_limit: usize,
    trace: Option<&'a mut Trace>,
    stopped: bool,
    /// Metaverse objects to visit again in outbound (their references can now resolve).
    revisit: BTreeSet<MvId>,
    /// References dropped in this run: (message, referenced object, referrer).
    unresolved: Vec<(String, MvId, MvId)>,
}

/// One inbound flow that may contribute to a metaverse attribute: (target slot, precedence
/// key, source object, rule, flow index).
type Contribution = (usize, (i64, ConnIdx, RuleIdx), CsId, RuleIdx, usize);

/// The outcome of a join attempt.
enum Joined {
    To(MvId, RuleIdx),
    NoMatch,
    /// An error was recorded; the object is neither joined nor projected.
    Failed,
}

impl Run<'_> {
    fn traced(&self, cs: Option<CsId>, mv: Option<MvId>) -> bool {
        match &self.trace {
            Some(t) => match t.focus {
                None => true,
                Some(f) => {
                    cs == Some(f)
                        || mv.is_some_and(|m| {
                            self.state
                                .cs()
                                .get(f as usize)
                                .and_then(|o| o.link)
                                .is_some_and(|l| l.mv == m)
                        })
                }
            },
            None => false,
        }
    }

    fn note(&mut self, cs: Option<CsId>, mv: Option<MvId>, line: impl FnOnce() -> String) {
        if self.traced(cs, mv)
            && let Some(t) = self.trace.as_deref_mut()
        {
            t.lines.push(line());
        }
    }

    fn error(&mut self, e: SyncError) {
        self.report.errors.push(e);
        if self.report.errors.len() >= self.error_limit {
            self.stopped = true;
        }
    }

    fn eval_error(
        &mut self,
        cs: Option<CsId>,
        mv: Option<MvId>,
        rule: &RulePlan,
        target: &str,
        e: EvalError,
    ) {
        let category = match e.code {
            "E0501" => ErrorCategory::FunctionError,
            "E0510" | "E0511" => ErrorCategory::LargeAttribute,
            "E0512" | "E0513" => ErrorCategory::Other,
            _ => ErrorCategory::DataValidationFailure,
        };
        self.note(cs, mv, || {
            format!(
                "  flow {target} of \"{}\": error {}: {}",
                rule.name(),
                e.code,
                e.message
            )
        });
        self.error(SyncError {
            category,
            cs,
            mv,
            rule: Some(rule.name().to_string()),
            code: Some(e.code),
            message: format!("flow to {target}: {}", e.message),
        });
    }

    // ------------------------------------------------------------------ indexes

    /// Builds the join index of a metaverse attribute, the first time a join needs it (from
    /// then on the state keeps it current). A sync that joins nothing builds no index.
    fn ensure_mv_index(&mut self, attr: &str) {
        if self.state.mv_index().contains_key(attr) {
            return;
        }
        let mut map: super::model::FastMap<Key, Vec<MvId>> = Default::default();
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

    /// Builds the join or uniqueness index of a connector-space attribute, the first time a
    /// join or a uniqueness check needs it (from then on the state keeps it current).
    fn build_cs_index(&mut self, cc: ConnIdx, attr: &str) {
        let key = (cc, Box::<str>::from(attr));
        if self.state.cs_index().contains_key(&key) {
            return;
        }
        let mut map: super::model::FastMap<Key, Vec<CsId>> = Default::default();
        for (i, o) in self.state.cs().iter().enumerate() {
            if o.connector != cc || o.gone || o.placeholder {
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

    // ------------------------------------------------------------------ inbound

    fn inbound_rules(&mut self, id: CsId) -> Vec<RuleIdx> {
        if let Some(r) = self.inscope.get(&id) {
            return r.clone();
        }
        let (connector, ty) = {
            let o = &self.state.cs()[id as usize];
            (o.connector, o.object_type)
        };
        let candidates = self
            .plan
            .inbound
            .get(&(connector, ty))
            .cloned()
            .unwrap_or_default();
        let mut rules = Vec::new();
        for r in candidates {
            let rule = &self.plan.rules[r];
            let result = {
                let state = &*self.state;
                let o = &state.cs()[id as usize];
                let member_of = |group: &str| member_of(state, self.plan, connector, &o.dn, group);
                scope::in_scope(
                    &self.plan.program,
                    &rule.scope,
                    &o.current,
                    &o.imported,
                    &mut self.ctxs[connector],
                    &member_of,
                )
            };
            match result {
                Ok(()) => {
                    self.note(Some(id), None, || {
                        format!(
                            "in scope: \"{}\" (precedence {})",
                            rule.name(),
                            rule.def.precedence
                        )
                    });
                    rules.push(r);
                }
                Err(miss) => {
                    self.note(Some(id), None, || {
                        format!("not in scope: \"{}\": {}", rule.name(), miss.join("; "))
                    });
                }
            }
        }
        self.inscope.insert(id, rules.clone());
        rules
    }

    /// Starts the random sequences of one object's evaluations (`Ctx::seed_for`): what
    /// `Guid()` and `RandomNum()` give depends on the object, not on the order of the sync.
    fn seed_for(&mut self, stage: u64, id: u64) {
        for ctx in self.ctxs.iter_mut() {
            ctx.seed_for((stage << 60) ^ id);
        }
    }

    fn inbound_object(&mut self, id: CsId) {
        self.seed_for(1, u64::from(id));
        self.report.processed += 1;
        let pending = self.state.cs()[id as usize].pending_import;
        match pending {
            Some(PendingImport::Delete) => {
                self.note(Some(id), None, || "pending import: delete".into());
                if let Some(mv) = self.state.unlink(id) {
                    self.dirty.insert(mv);
                    // Provisioning runs again for it (a deleted target object is re-created).
                    self.outbound.insert(mv);
                    self.report.disconnects += 1;
                    self.unlinked(id, mv);
                }
                self.remove_cs(id);
                self.report.deletes += 1;
                return;
            }
            Some(PendingImport::DeleteAdd) => {
                if let Some(mv) = self.state.unlink(id) {
                    self.dirty.insert(mv);
                    self.report.disconnects += 1;
                }
            }
            _ => {}
        }
        if self.state.cs()[id as usize].pending_import.is_some() {
            self.state.cs_mut()[id as usize].pending_import = None;
        }
        // A linked object that changed in its directory: outbound recomputes what it should
        // hold (this corrects drift in a target), and exports naming it are revisited (rename).
        if pending.is_some()
            && let Some(l) = self.state.cs()[id as usize].link
        {
            self.outbound.insert(l.mv);
            self.target_changed(l.mv);
        }
        let rules = self.inbound_rules(id);
        if let Some(link) = self.state.cs()[id as usize].link {
            // Stickiness: an inbound link lasts while the rule that made it is in scope.
            if link.outbound || rules.contains(&link.rule) {
                let why = self.plan.rules[link.rule].name().to_string();
                let how = if link.outbound {
                    "provisioned or joined by"
                } else {
                    "joined by"
                };
                self.note(Some(id), Some(link.mv), || {
                    format!("linked to metaverse object {} ({how} \"{why}\")", link.mv)
                });
                self.dirty.insert(link.mv);
                return;
            }
            let name = self.plan.rules[link.rule].name().to_string();
            self.note(Some(id), Some(link.mv), || {
                format!("disconnected: \"{name}\" went out of scope")
            });
            self.state.unlink(id);
            self.dirty.insert(link.mv);
            self.report.disconnects += 1;
            self.unlinked(id, link.mv);
        }
        match self.join(id, &rules) {
            Joined::To(mv, rule) => {
                self.state.link(
                    id,
                    Link {
                        mv,
                        rule,
                        outbound: false,
                    },
                );
                self.dirty.insert(mv);
                self.report.joins += 1;
                self.linked(id);
            }
            Joined::Failed => {}
            Joined::NoMatch => self.project(id, &rules),
        }
    }

    /// Join groups of the in-scope rules with join conditions (docs/DECISIONS.md item 12).
    fn join(&mut self, id: CsId, rules: &[RuleIdx]) -> Joined {
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
    fn mv_candidates(
        &self,
        id: CsId,
        rule: &RulePlan,
        group: &[super::compile::JoinPlan],
    ) -> Vec<MvId> {
        let o = &self.state.cs()[id as usize];
        let mut result: Option<BTreeSet<MvId>> = None;
        for cond in group {
            let values = o.current.get(cond.source).map(Value::values).unwrap_or(&[]);
            if values.is_empty() {
                return Vec::new();
            }
            let mut matches = BTreeSet::new();
            let index = self.state.mv_index().get(cond.target.as_str());
            for v in values {
                let Some(k) = Key::folded(v) else { continue };
                for &mv in index
                    .and_then(|i| i.get(&k))
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    let Some(m) = self.state.mv().get(&mv) else {
                        continue;
                    };
                    if rule.target_type.is_some_and(|t| t != m.object_type) {
                        continue;
                    }
                    let Some(slot) = self.plan.metaverse[m.object_type].slot(&cond.target) else {
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

    fn project(&mut self, id: CsId, rules: &[RuleIdx]) {
        let Some(&r) = rules
            .iter()
            .find(|&&r| self.plan.rules[r].link() == LinkType::Provision)
        else {
            self.note(Some(id), None, || {
                "not joined, and no provision rule in scope: disconnector".into()
            });
            return;
        };
        let rule = &self.plan.rules[r];
        let Some(ty) = rule.target_type else { return };
        // Projection needs at least one join attribute present when the rule joins.
        if !rule.joins.is_empty() {
            let o = &self.state.cs()[id as usize];
            let present = rule
                .joins
                .iter()
                .flatten()
                .any(|j| !o.current[j.source].is_null());
            if !present {
                self.note(Some(id), None, || {
                    format!(
                        "not projected by \"{}\": no join attribute has a value",
                        rule.name()
                    )
                });
                return;
            }
        }
        let mv = self.state.allocate_mv();
        let attrs = vec![Value::Null; self.plan.metaverse[ty].len()];
        self.state.mv_mut().insert(
            mv,
            MvObject {
                id: mv,
                object_type: ty,
                attrs,
                links: Vec::new(),
            },
        );
        self.state.link(
            id,
            Link {
                mv,
                rule: r,
                outbound: false,
            },
        );
        self.created_mv.insert(mv);
        self.dirty.insert(mv);
        self.report.projections += 1;
        let name = rule.name().to_string();
        let tname = self.plan.metaverse[ty].name.clone();
        self.note(Some(id), Some(mv), || {
            format!("projected as metaverse {tname} {mv} by \"{name}\"")
        });
        self.linked(id);
    }

    /// An object was linked: objects referring to it re-resolve their references.
    fn linked(&mut self, id: CsId) {
        let Some(o) = self.state.cs().get(id as usize) else {
            return;
        };
        let key = (o.connector, super::model::dn_key(&o.dn));
        if let Some(referrers) = self.state.referenced_by(key.0, &key.1).cloned() {
            for r in referrers {
                if let Some(l) = self.state.cs().get(r as usize).and_then(|o| o.link) {
                    self.dirty.insert(l.mv);
                }
            }
        }
    }

    /// An object is gone from the metaverse (deleted, disconnected): references to it from
    /// other objects are resolved again, inbound and outbound.
    fn unlinked(&mut self, id: CsId, mv: MvId) {
        self.linked(id);
        self.target_changed(mv);
    }

    /// The target objects of a metaverse object changed (renamed, removed): exports that name
    /// it are computed again.
    fn target_changed(&mut self, mv: MvId) {
        if let Some(referrers) = self.state.outbound_refs().get(&mv) {
            self.revisit.extend(referrers.iter().copied());
        }
    }

    fn remove_cs(&mut self, id: CsId) {
        let (connector, dn, anchor) = {
            let o = &self.state.cs()[id as usize];
            (o.connector, o.dn.clone(), o.anchor.clone())
        };
        if let Some(k) = anchor.as_ref().and_then(Key::exact) {
            self.state.unindex_anchor(connector, &k, id);
        }
        self.state
            .unindex_dn(connector, &super::model::dn_key(&dn), id);
        let empty = vec![Value::Null; self.state.cs()[id as usize].current.len()];
        self.set_cs_current(id, empty);
        let o = &mut self.state.cs_mut()[id as usize];
        o.gone = true;
        o.pending_import = None;
        o.export = None;
        o.new_dn = None;
        o.imported = vec![Value::Null; o.imported.len()].into();
    }

    /// Recomputes every dirty metaverse object, in id order.
    fn recompute_dirty(&mut self) {
        while let Some(mv) = self.dirty.pop_first() {
            self.recompute(mv);
            if self.stopped {
                return;
            }
        }
    }

    fn recompute(&mut self, mv: MvId) {
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
                for fi in 0..rule.flows.len() {
                    if let Some(slot) = rule.flow_slot(fi, ty, &self.plan.metaverse[ty]) {
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
            if (!new[slot].is_null() || !old[slot].is_null()) && self.traced(None, Some(mv)) {
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

    /// Inbound reference values are DNs of the object's connector: they become metaverse ids.
    fn resolve_inbound_refs(&mut self, from: CsId, value: Value) -> Value {
        if value.is_null() {
            return value;
        }
        let connector = self.state.cs()[from as usize].connector;
        let mut out = Vec::new();
        for v in value.values() {
            let Some(dn) = v.as_str() else { continue };
            // References are DNs: resolved by their normalised key, so spelling, spacing and
            // escaping do not matter; a value that is not a DN is a sync error on the object.
            let key = match crate::dn::key(dn) {
                Ok(k) => k.into_boxed_str(),
                Err(e) => {
                    let mv = self.state.cs()[from as usize].link.map(|l| l.mv);
                    self.error(SyncError {
                        category: ErrorCategory::DataValidationFailure,
                        cs: Some(from),
                        mv,
                        rule: None,
                        code: None,
                        message: format!("the reference value {dn:?} is not a DN: {e}"),
                    });
                    continue;
                }
            };
            let found = self.state.cs_by_dn_key(connector, &key);
            let target = match found {
                Some(t) => t,
                None => {
                    // Not imported yet: a placeholder stands in until it is.
                    let ty = self.state.cs()[from as usize].object_type;
                    let width = self.plan.connectors[connector].types[ty].len();
                    self.state.add_cs(CsObject {
                        connector,
                        object_type: ty,
                        dn: dn.into(),
                        anchor: None,
                        imported: vec![Value::Null; width].into(),
                        current: vec![Value::Null; width].into(),
                        pending_import: None,
                        export: None,
                        new_dn: None,
                        link: None,
                        provisioned_by: None,
                        placeholder: true,
                        gone: false,
                    })
                }
            };
            self.state.add_reference(connector, key, from);
            match self.state.cs()[target as usize].link {
                Some(l) if !self.state.cs()[target as usize].gone => out.push(mv_ref(l.mv)),
                _ => {}
            }
        }
        Value::many(out)
    }

    fn set_mv_attrs(&mut self, mv: MvId, new: Vec<Value>) {
        self.state.set_mv_attrs(self.plan, mv, new);
    }

    fn set_cs_current(&mut self, id: CsId, new: Vec<Value>) {
        self.state.set_cs_current(self.plan, id, new);
    }

    fn delete_mv(&mut self, mv: MvId) {
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

    fn deprovision(&mut self, c: CsId) {
        let o = &mut self.state.cs_mut()[c as usize];
        o.provisioned_by = None;
        if o.anchor.is_none() {
            // Never exported: the export object simply disappears.
            self.remove_cs(c);
        } else {
            o.export = Some(ExportOp::Delete);
        }
        self.report.deprovisions += 1;
    }

    // ------------------------------------------------------------------ outbound

    fn outbound_mv(&mut self, mv: MvId) {
        self.seed_for(3, mv);
        let Some(m) = self.state.mv().get(&mv) else {
            return;
        };
        let ty = m.object_type;
        for cc in 0..self.plan.connectors.len() {
            let Some(all) = self.plan.outbound.get(&(cc, ty)) else {
                continue;
            };
            let mut rules = Vec::new();
            for &r in all {
                let rule = &self.plan.rules[r];
                let m = &self.state.mv()[&mv];
                let ok = scope::in_scope(
                    &self.plan.program,
                    &rule.scope,
                    &m.attrs,
                    &m.attrs,
                    &mut self.ctxs[cc],
                    &|_| false,
                );
                match ok {
                    Ok(()) => rules.push(r),
                    Err(miss) => self.note(None, Some(mv), || {
                        format!(
                            "outbound not in scope: \"{}\": {}",
                            rule.name(),
                            miss.join("; ")
                        )
                    }),
                }
            }
            let linked = self.state.linked_in(mv, cc);
            let cs = match linked {
                Some(c) => {
                    let obj_ty = self.state.cs()[c as usize].object_type;
                    let prov = rules.iter().copied().find(|&r| {
                        self.plan.rules[r].link() == LinkType::Provision
                            && self.plan.rules[r].target_type == Some(obj_ty)
                    });
                    let o = &self.state.cs()[c as usize];
                    if o.provisioned_by.is_some() && prov.is_none() {
                        self.note(Some(c), Some(mv), || {
                            format!(
                                "deprovisioned from {}: no provision rule in scope",
                                self.plan.connectors[cc].name
                            )
                        });
                        self.state.unlink(c);
                        self.deprovision(c);
                        self.target_changed(mv);
                        continue;
                    }
                    if let Some(l) = o.link
                        && l.outbound
                        && !rules.contains(&l.rule)
                        && prov.is_none()
                    {
                        self.state.unlink(c);
                        self.report.disconnects += 1;
                        self.target_changed(mv);
                        continue;
                    }
                    if prov.is_some() {
                        self.state.cs_mut()[c as usize].provisioned_by = prov;
                    }
                    c
                }
                None => match self.outbound_link(mv, cc, &rules) {
                    Some(c) => {
                        if let Some(waiting) = self.state.take_awaiting_refs(mv) {
                            self.revisit.extend(waiting);
                        }
                        c
                    }
                    None => continue,
                },
            };
            self.export_flows(mv, cs, &rules);
            if self.stopped {
                return;
            }
        }
    }

    /// The DN an in-scope provision rule computes for `mv`.
    fn provision_dn(&mut self, mv: MvId, rule: RuleIdx) -> Result<Option<String>, ()> {
        let r = &self.plan.rules[rule];
        let Some(f) = r.flows.iter().find(|f| f.target == "dn") else {
            return Ok(None);
        };
        let m = &self.state.mv()[&mv];
        match self.plan.program.eval(
            &mut self.ctxs[r.connector],
            f.id as usize,
            &f.expr,
            Object {
                attrs: &m.attrs,
                imported: &m.attrs,
            },
        ) {
            Ok(v) => {
                let dn = flow::shape(v, false).as_str().map(str::to_string);
                match dn {
                    Some(d) if !d.trim().is_empty() => {
                        if let Err(message) = self.check_dn(rule, f, mv, &d) {
                            self.error(SyncError {
                                category: ErrorCategory::DataValidationFailure,
                                cs: None,
                                mv: Some(mv),
                                rule: Some(r.name().to_string()),
                                code: None,
                                message,
                            });
                            return Err(());
                        }
                        Ok(Some(d))
                    }
                    other => Ok(other),
                }
            }
            Err(e) => {
                self.eval_error(None, Some(mv), r, "dn", *e);
                Err(())
            }
        }
    }

    /// Joins or provisions an object of connector `cc` for `mv`.
    fn outbound_link(&mut self, mv: MvId, cc: ConnIdx, rules: &[RuleIdx]) -> Option<CsId> {
        for &r in rules {
            for cond in self.plan.rules[r].joins.iter().flatten() {
                self.build_cs_index(cc, &cond.target);
            }
        }
        let prov = rules
            .iter()
            .copied()
            .find(|&r| self.plan.rules[r].link() == LinkType::Provision);
        let mut dn = None;
        if let Some(p) = prov {
            dn = self.provision_dn(mv, p).ok()?;
            // Reverse join on the DN first.
            if let Some(d) = &dn
                && let Some(c) = self.state.cs_by_dn(cc, d)
            {
                let o = &self.state.cs()[c as usize];
                if o.link.is_none()
                    && !o.gone
                    && !o.placeholder
                    && Some(o.object_type) == self.plan.rules[p].target_type
                {
                    self.state.link(
                        c,
                        Link {
                            mv,
                            rule: p,
                            outbound: true,
                        },
                    );
                    self.state.cs_mut()[c as usize].provisioned_by = Some(p);
                    self.report.joins += 1;
                    self.note(Some(c), Some(mv), || {
                        format!("outbound: joined {d} by its DN")
                    });
                    return Some(c);
                }
            }
        }
        for &r in rules {
            let rule = &self.plan.rules[r];
            let Some(tty) = rule.target_type else {
                continue;
            };
            for group in &rule.joins {
                let candidates = self.cs_candidates(mv, cc, tty, group);
                if candidates.len() == 1 {
                    let c = candidates[0];
                    self.state.link(
                        c,
                        Link {
                            mv,
                            rule: r,
                            outbound: true,
                        },
                    );
                    if let Some(p) = prov {
                        self.state.cs_mut()[c as usize].provisioned_by = Some(p);
                    }
                    self.report.joins += 1;
                    let dn = self.state.cs()[c as usize].dn.clone();
                    self.note(Some(c), Some(mv), || {
                        format!("outbound: joined {dn} by \"{}\"", rule.name())
                    });
                    return Some(c);
                }
            }
        }
        let p = prov?;
        let rule = &self.plan.rules[p];
        let tty = rule.target_type?;
        let Some(dn) = dn.filter(|d| !d.trim().is_empty()) else {
            self.error(SyncError {
                category: ErrorCategory::DataValidationFailure,
                cs: None,
                mv: Some(mv),
                rule: Some(rule.name().to_string()),
                code: None,
                message: "the dn flow gave no value: the object cannot be provisioned".into(),
            });
            return None;
        };
        if let Some(existing) = self.state.cs_by_dn(cc, &dn) {
            let holder = self.state.cs()[existing as usize].link.map(|l| l.mv);
            self.error(SyncError {
                category: ErrorCategory::DuplicateAttribute,
                cs: Some(existing),
                mv: Some(mv),
                rule: Some(rule.name().to_string()),
                code: None,
                message: format!(
                    "cannot provision {dn}: the DN is already held{}",
                    holder
                        .map(|h| format!(" by metaverse object {h}"))
                        .unwrap_or_default()
                ),
            });
            return None;
        }
        let width = self.plan.connectors[cc].types[tty].len();
        let mut current = vec![Value::Null; width];
        if let Some(s) = self.plan.connectors[cc].types[tty].dn {
            current[s] = Value::str(dn.as_str());
        }
        let c = self.state.add_cs(CsObject {
            connector: cc,
            object_type: tty,
            dn: dn.as_str().into(),
            anchor: None,
            imported: vec![Value::Null; width].into(),
            current: vec![Value::Null; width].into(),
            pending_import: None,
            export: Some(ExportOp::Add),
            new_dn: None,
            link: None,
            provisioned_by: Some(p),
            placeholder: false,
            gone: false,
        });
        self.set_cs_current(c, current);
        self.state.link(
            c,
            Link {
                mv,
                rule: p,
                outbound: true,
            },
        );
        self.created_cs.insert(c);
        self.report.provisions += 1;
        let cname = self.plan.connectors[cc].name.clone();
        self.note(Some(c), Some(mv), || {
            format!(
                "outbound: provisioned {dn} in {cname} by \"{}\"",
                self.plan.rules[p].name()
            )
        });
        Some(c)
    }

    fn cs_candidates(
        &self,
        mv: MvId,
        cc: ConnIdx,
        tty: TypeIdx,
        group: &[super::compile::JoinPlan],
    ) -> Vec<CsId> {
        let m = &self.state.mv()[&mv];
        let mut result: Option<BTreeSet<CsId>> = None;
        for cond in group {
            let values = m.attrs.get(cond.source).map(Value::values).unwrap_or(&[]);
            if values.is_empty() {
                return Vec::new();
            }
            let index = self
                .state
                .cs_index()
                .get(&(cc, Box::<str>::from(cond.target.as_str())));
            let mut matches = BTreeSet::new();
            for v in values {
                let Some(k) = Key::folded(v) else { continue };
                for &c in index
                    .and_then(|i| i.get(&k))
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    let o = &self.state.cs()[c as usize];
                    if o.gone || o.placeholder || o.link.is_some() || o.object_type != tty {
                        continue;
                    }
                    let Some(slot) = self.plan.connectors[cc].types[tty].slot(&cond.target) else {
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
        result.map(|r| r.into_iter().collect()).unwrap_or_default()
    }

    /// Export attribute flow for one linked target object.
    fn export_flows(&mut self, mv: MvId, c: CsId, rules: &[RuleIdx]) {
        let errors_before = self.report.errors.len();
        let (cc, tty) = {
            let o = &self.state.cs()[c as usize];
            (o.connector, o.object_type)
        };
        let tplan = &self.plan.connectors[cc].types[tty];
        let mvty = self.state.mv()[&mv].object_type;
        let plan = self.plan;
        let all: &[RuleIdx] = plan
            .outbound
            .get(&(cc, mvty))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        // Attributes any outbound rule of this target manages: without an in-scope
        // contribution their value is removed.
        let mut managed: BTreeSet<usize> = BTreeSet::new();
        for &r in all {
            let rule = &self.plan.rules[r];
            if rule.target_type == Some(tty) {
                managed.extend(
                    rule.flows
                        .iter()
                        .filter_map(|f| f.slot)
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
                } else if let Some(slot) = f.slot {
                    contributions.entry(slot).or_default().push((r, fi));
                }
            }
        }
        let created = self.created_cs.contains(&c);
        let mut new = self.state.cs()[c as usize].current.to_vec();
        for slot in managed {
            let list = contributions.remove(&slot).unwrap_or_default();
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
            if (!v.is_null() || !new[slot].is_null()) && self.traced(Some(c), Some(mv)) {
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
    fn withhold_duplicates(&mut self, mv: MvId, c: CsId, new: &mut [Value]) {
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

    /// Validates a DN the `dn` flow `f` of outbound rule `rule` produced for `mv` (DECISIONS
    /// 27): it must parse, and attribute values concatenated into RDN values must not change
    /// its structure. The error is the sync error's message.
    fn check_dn(
        &mut self,
        rule: RuleIdx,
        f: &super::compile::FlowPlan,
        mv: MvId,
        dn: &str,
    ) -> Result<(), String> {
        let r = &self.plan.rules[rule];
        let Some(m) = self.state.mv().get(&mv) else {
            return Ok(());
        };
        let names = &self.plan.metaverse[r.source_type].names;
        super::dnflow::check(
            f.dn_template.as_deref(),
            dn,
            &mut self.ctxs[r.connector],
            Object {
                attrs: &m.attrs,
                imported: &m.attrs,
            },
            names,
        )
        .map_err(|e| format!("flow to dn: {e}"))
    }

    /// A DN from the `dn` flow: an export object takes it, an existing object gets a rename.
    fn set_dn(&mut self, c: CsId, dn: &str) {
        let o = &self.state.cs()[c as usize];
        let before = o.new_dn.clone().unwrap_or_else(|| o.dn.clone());
        // DNs compare parsed: a new spelling of the same DN is not a rename.
        if !crate::dn::same(&before, dn)
            && let Some(l) = o.link
        {
            // Exports that name this object must name it by its new DN.
            self.target_changed(l.mv);
        }
        let o = &self.state.cs()[c as usize];
        if crate::dn::same(&o.dn, dn) {
            self.state.cs_mut()[c as usize].new_dn = None;
            return;
        }
        if o.export == Some(ExportOp::Add) {
            let connector = o.connector;
            let old = super::model::dn_key(&o.dn);
            self.state.unindex_dn(connector, &old, c);
            self.state.index_dn(connector, super::model::dn_key(dn), c);
            self.state.cs_mut()[c as usize].dn = dn.into();
        } else {
            self.state.cs_mut()[c as usize].new_dn = Some(dn.into());
        }
    }

    /// Outbound reference values are metaverse ids: they become DNs of the target connector;
    /// references to objects that are not in the target are dropped and reported.
    fn resolve_outbound_refs(&mut self, c: CsId, cc: ConnIdx, value: Value) -> Value {
        let mut out = Vec::new();
        for v in value.values() {
            match parse_mv_ref(v) {
                Some(target) => match self.state.linked_in(target, cc) {
                    Some(t) => {
                        let o = &self.state.cs()[t as usize];
                        out.push(Value::Ref(o.new_dn.clone().unwrap_or_else(|| o.dn.clone())));
                        if let Some(referrer) = self.state.cs()[c as usize].link.map(|l| l.mv) {
                            self.state.add_outbound_ref(target, referrer);
                        }
                    }
                    None => {
                        let dn = self.state.cs()[c as usize].dn.clone();
                        let msg = format!(
                            "{}: {dn}: metaverse object {target} is not in this connector",
                            self.plan.connectors[cc].name
                        );
                        if let Some(referrer) = self.state.cs()[c as usize].link.map(|l| l.mv) {
                            self.state.add_awaiting_ref(target, referrer);
                            self.unresolved.push((msg, target, referrer));
                        }
                    }
                },
                // Not a metaverse reference (computed text): kept as is.
                None => out.push(v.clone()),
            }
        }
        Value::many(out)
    }
}

/// Join value equality: case-insensitive for text unless the condition is case-sensitive.
fn join_equal(a: &Value, b: &Value, case_sensitive: bool) -> bool {
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

/// ISMEMBEROF: the group with DN `group` in the same connector lists `dn` in its `member`.
fn member_of(state: &State, plan: &Plan, connector: ConnIdx, dn: &Arc<str>, group: &str) -> bool {
    let Some(g) = state.cs_by_dn(connector, group) else {
        return false;
    };
    let o = &state.cs()[g as usize];
    let Some(slot) = plan.connectors[connector].types[o.object_type].slot("member") else {
        return false;
    };
    let Ok(key) = crate::dn::key(dn) else {
        return false;
    };
    // Strings equal but for ASCII case are the same DN; anything else is compared parsed.
    o.current[slot].values().iter().any(|m| {
        m.as_str().is_some_and(|s| {
            s.eq_ignore_ascii_case(dn) || crate::dn::key(s).is_ok_and(|k| k == key)
        })
    })
}

/// A short rendering of a value for lineage lines.
fn short(v: &Value) -> String {
    let s = crate::eval::json::to_json(v).to_string();
    if s.chars().count() > 120 {
        let cut: String = s.chars().take(117).collect();
        format!("{cut}...")
    } else {
        s
    }
}
