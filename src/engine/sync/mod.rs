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
//!
//! This module holds the driver ([`run`]: which objects, in which order) and what every
//! processor shares (the `Run` of one sync, errors, seeding, removing objects). The
//! processors: `inbound` (pending imports, scope, stickiness, projection), `join` (inbound and
//! outbound joins, join indexes), `recompute` (metaverse values by precedence and merge,
//! metaverse deletion), `outbound` (outbound scope, provisioning, deprovisioning, DNs),
//! `export_flows` (target values, withheld duplicates), `refs` (references and placeholders)
//! and `trace` (lineage notes).

mod eval;
mod export_flows;
mod inbound;
mod join;
mod outbound;
mod recompute;
mod refs;
mod trace;

pub use refs::mv_ref;
pub use trace::Trace;

use super::compile::{Plan, RuleIdx};
use super::model::{CsId, Key, MvId, State, SyncError};
use crate::eval::Ctx;
use crate::value::Value;
use eval::View;
use std::collections::{BTreeSet, HashMap, HashSet};
use trace::Tracer;

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

impl Run<'_> {
    /// What the processors read, and the evaluation contexts they evaluate with.
    fn split(&mut self) -> (View<'_>, &mut [Ctx]) {
        (
            View {
                plan: self.plan,
                state: self.state,
                created_mv: &self.created_mv,
                created_cs: &self.created_cs,
                inscope: &self.inscope,
                tracer: Tracer::new(self.trace.as_deref()),
            },
            self.ctxs,
        )
    }

    pub(super) fn error(&mut self, e: SyncError) {
        self.report.errors.push(e);
        if self.report.errors.len() >= self.error_limit {
            self.stopped = true;
        }
    }

    pub(super) fn remove_cs(&mut self, id: CsId) {
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

    pub(super) fn set_mv_attrs(&mut self, mv: MvId, new: Vec<Value>) {
        self.state.set_mv_attrs(self.plan, mv, new);
    }

    pub(super) fn set_cs_current(&mut self, id: CsId, new: Vec<Value>) {
        self.state.set_cs_current(self.plan, id, new);
    }
}
