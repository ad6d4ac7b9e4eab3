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
//! With more than one thread (`Options::threads`), work is computed ahead in parallel and
//! applied in the serial order. Inbound: for a group of connector-space objects, each one's
//! scope and the recomputation of the metaverse object it stays linked to are computed ahead
//! from `&State` on every thread; each object's turn (join or projection, which stay serial)
//! takes them if nothing they read changed since (checked by value: linked objects' values
//! and links, metaverse values set in the group, scopes, ISMEMBEROF answers, references),
//! and computes them again otherwise. Outbound: groups of metaverse objects are computed
//! ahead and applied one after the other in id order; an update that read what an earlier one
//! in its group changed is computed again in its turn. So the result is the serial one.
//!
//! This module holds the driver ([`run`]: which objects, in which order; the parallel
//! outbound pass) and what the apply steps share (the `Run` of one sync, errors, removing
//! objects, recording mutators). `eval` evaluates flows and scopes for every processor. The
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

use super::compile::{ConnIdx, Plan, RuleIdx};
use super::model::{CsId, Key, MvId, PendingImport, State, SyncError};
use crate::eval::Ctx;
use crate::value::Value;
use eval::View;
use outbound::Step;
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

/// How a sync runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Number of per-object errors after which the run stops (`stopped-error-limit`).
    pub error_limit: usize,
    /// Threads that compute ahead what a sync evaluates; 1 computes everything on the calling
    /// thread. Whatever the number, the result is the same (updates are applied in one order).
    pub threads: usize,
}

/// The number of threads a sync uses by default: one per available core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Runs a sync. `trace` records the lineage of its focus object.
pub fn run(
    plan: &Plan,
    state: &mut State,
    ctxs: &mut [Ctx],
    mode: Mode,
    options: Options,
    trace: Option<&mut Trace>,
) -> SyncReport {
    let error_limit = options.error_limit;
    let mut run = Run {
        plan,
        state,
        ctxs,
        report: SyncReport::default(),
        dirty: BTreeSet::new(),
        outbound: BTreeSet::new(),
        outbound_pass: false,
        created_mv: HashSet::new(),
        created_cs: HashSet::new(),
        inscope: HashMap::new(),
        memo: HashMap::new(),
        deferred: BTreeSet::new(),
        error_limit,
        trace,
        stopped: false,
        revisit: BTreeSet::new(),
        unresolved: Vec::new(),
        threads: options.threads.max(1),
        pool: None,
        footprint: None,
        ahead_scope: None,
        ahead_recompute: None,
        recomputed_ahead: 0,
        recomputed_again: 0,
        ahead: 0,
        again: 0,
        in_turn: 0,
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
        // Imported objects that take unique values (a new target object holding an address):
        // the objects of the connector whose values they now collide with are revisited.
        let imported: Vec<CsId> = match mode {
            Mode::Full => Vec::new(),
            Mode::Delta => ids
                .iter()
                .copied()
                .filter(|&i| {
                    let o = &run.state.cs()[i as usize];
                    matches!(
                        o.pending_import,
                        Some(PendingImport::Add | PendingImport::Update | PendingImport::DeleteAdd)
                    ) && plan.connectors[c].types[o.object_type]
                        .unique
                        .contains(&true)
                })
                .collect(),
        };
        // Each object is processed completely (join or projection, then the values of the
        // metaverse objects it touched) before the next, so later objects join against
        // current values. With more than one thread, what the objects of a group will
        // evaluate (their scope, the recomputation of the metaverse object they stay linked
        // to) is computed ahead on every thread; an object's turn takes it when nothing it
        // read has changed since, and computes it again otherwise.
        let parallel = run.parallel();
        let (mut start, mut size) = (0, FIRST_GROUP);
        while start < ids.len() {
            let end = if parallel {
                (start + size).min(ids.len())
            } else {
                ids.len()
            };
            size = (size * 4).min(GROUP);
            let mut ahead = if parallel {
                run.compute_ahead(&ids[start..end], inbound::ahead)
            } else {
                Vec::new()
            };
            run.footprint = parallel.then(Footprint::default);
            for n in start..end {
                let id = ids[n];
                if let Some(a) = ahead.get_mut(n - start) {
                    run.ahead_scope = a.scope.take();
                    run.ahead_recompute = a.recompute.take();
                }
                run.inbound_object(id);
                run.recompute_dirty();
                run.ahead_scope = None;
                run.ahead_recompute = None;
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
            run.footprint = None;
            if run.stopped {
                break;
            }
            start = end;
        }
        if run.stopped {
            break;
        }
        run.revisit_colliding(&imported);
    }
    // References whose resolution waited for every inbound change. (Also after a stop: they
    // are what the objects already processed made, and resolving them cannot fail.)
    run.recompute_deferred();
    if run.stopped {
        // Outbound sync visits none of them in this run, and the metaverse objects still to
        // recompute were not: the next delta sync does both.
        let mut unvisited = std::mem::take(&mut run.outbound);
        unvisited.extend(std::mem::take(&mut run.dirty));
        run.leave_for_next_sync(unvisited);
    } else {
        run.outbound_pass = true;
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
        let reached = run.outbound_all(&targets);
        // References to objects provisioned later in this pass resolve now, in rounds computed
        // ahead like the pass (in a first sync, about half the users: those whose manager
        // comes after them).
        let mut rounds = 0;
        while !run.revisit.is_empty() && !run.stopped && rounds < 16 {
            let revisit: Vec<MvId> = std::mem::take(&mut run.revisit).into_iter().collect();
            let reached = run.outbound_all(&revisit);
            if run.stopped {
                run.revisit
                    .extend(revisit[reached.min(revisit.len())..].iter().copied());
            }
            rounds += 1;
        }
        if run.stopped {
            // What the pass did not reach (and the object it stopped at), the next delta sync
            // visits.
            let mut unvisited: BTreeSet<MvId> = targets[reached.min(targets.len())..]
                .iter()
                .copied()
                .collect();
            unvisited.extend(std::mem::take(&mut run.revisit));
            run.leave_for_next_sync(unvisited);
        }
    }
    if run.parallel() {
        tracing::debug!(
            threads = run.threads,
            recomputed_ahead = run.recomputed_ahead,
            recomputed_again = run.recomputed_again,
            outbound_ahead = run.ahead,
            outbound_again = run.again,
            outbound_in_turn = run.in_turn,
            "sync computed ahead"
        );
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
    /// Whether the outbound pass has begun. Before it, the referrers of a target that changed
    /// join the pass (`outbound`), which visits them after every inbound change; during it,
    /// they are visited again after it (`revisit`).
    outbound_pass: bool,
    created_mv: HashSet<MvId>,
    created_cs: HashSet<CsId>,
    /// In-scope inbound rules per object, computed once per run.
    inscope: HashMap<CsId, Vec<RuleIdx>>,
    /// What the last recomputation of each metaverse object read (`recompute::Memo`).
    memo: HashMap<MvId, recompute::Memo>,
    /// Metaverse objects whose references are resolved again before the outbound pass.
    deferred: BTreeSet<MvId>,
    error_limit: usize,
    trace: Option<&'a mut Trace>,
    stopped: bool,
    /// Metaverse objects to visit again in outbound (their references can now resolve).
    revisit: BTreeSet<MvId>,
    /// References dropped in this run: (message, referenced object, referrer).
    unresolved: Vec<(String, MvId, MvId)>,
    /// Threads computing ahead.
    threads: usize,
    /// Their pool, made the first time something is computed ahead. Its threads live as long
    /// as the run: threads started for each group made a parallel sync slower than a serial
    /// one (every new thread starts with cold allocator caches).
    pool: Option<rayon::ThreadPool>,
    /// While updates computed ahead are applied: what applying changed so far.
    footprint: Option<Footprint>,
    /// The scope and recomputation computed ahead for the object whose turn it is.
    ahead_scope: Option<inbound::ScopeAhead>,
    ahead_recompute: Option<Box<recompute::Recomputed>>,
    /// Recomputations computed ahead and applied; computed ahead, then again in their turn.
    recomputed_ahead: usize,
    recomputed_again: usize,
    /// Outbound updates computed ahead and applied; computed ahead, then again in their
    /// turn (they read what an earlier one changed); computed in their turn only (a join or
    /// provisioning, a uniqueness index not built).
    ahead: usize,
    again: usize,
    in_turn: usize,
}

/// What applying outbound updates changed since the updates being applied were computed:
/// an update that read any of it is computed again, in its turn.
#[derive(Debug, Default)]
struct Footprint {
    /// Metaverse objects whose target objects were linked, unlinked, removed or renamed
    /// (references to them resolve differently).
    moved: HashSet<MvId>,
    /// Connector-space objects whose DN changed.
    renamed: HashSet<CsId>,
    /// Keys of unique values whose holders changed (by connector).
    keys: HashSet<(ConnIdx, Key)>,
    /// Metaverse objects whose values were set (or that were deleted).
    values: HashSet<MvId>,
}

/// Objects whose sync is computed ahead at once: the first group is small (the first exports
/// build the uniqueness indexes the others read), later ones larger, up to a size whose
/// computed updates hold little memory (groups of 4,096 held 25 to 30 MB more at the peak of a
/// first sync of 107,005 objects, and were no faster).
const FIRST_GROUP: usize = 64;
const GROUP: usize = 1024;

impl Run<'_> {
    /// Metaverse objects that outbound sync was to visit when the run stopped (error limit):
    /// a linked object of each is staged as changed (unless a change is staged already)
    /// and kept for the next delta sync, which recomputes the metaverse object and visits it
    /// outbound (docs/DECISIONS.md 39).
    fn leave_for_next_sync(&mut self, unvisited: BTreeSet<MvId>) {
        for mv in unvisited {
            let Some(&c) = self.state.mv().get(&mv).and_then(|m| m.links.first()) else {
                continue;
            };
            let pending = self.state.cs()[c as usize].pending_import;
            if pending.is_none_or(|p| p == PendingImport::InboundUpdate) {
                self.state.cs_mut()[c as usize].pending_import = Some(PendingImport::Update);
            }
            self.state.keep_for_sync(c);
        }
    }

    /// Duplicate attribute resiliency in a delta sync: the metaverse objects of the other
    /// objects of the connector that hold a unique value one of `imported` now holds are
    /// synchronized outbound, so the value is withheld from their exports as a full sync
    /// would (`export_flows::withhold`).
    fn revisit_colliding(&mut self, imported: &[CsId]) {
        for &id in imported {
            let (cc, tty) = {
                let o = &self.state.cs()[id as usize];
                if o.gone {
                    continue;
                }
                (o.connector, o.object_type)
            };
            let tplan = &self.plan.connectors[cc].types[tty];
            for slot in (0..tplan.len()).filter(|&s| tplan.unique[s]) {
                let name = &*tplan.names[slot];
                self.build_cs_index(cc, name);
                let Some(index) = self.state.cs_index().get(&(cc, Box::<str>::from(name))) else {
                    continue;
                };
                let o = &self.state.cs()[id as usize];
                let holders: Vec<MvId> = o.current[slot]
                    .values()
                    .iter()
                    .filter_map(Key::folded)
                    .filter_map(|k| index.get(&k))
                    .flatten()
                    .filter(|&&h| h != id)
                    .filter_map(|&h| {
                        let other = &self.state.cs()[h as usize];
                        (!other.gone).then_some(other.link?.mv)
                    })
                    .collect();
                self.outbound.extend(holders);
            }
        }
    }

    /// What the processors read, and the evaluation contexts they evaluate with.
    fn split(&mut self) -> (View<'_>, &mut [Ctx]) {
        (
            View {
                plan: self.plan,
                state: self.state,
                created_mv: &self.created_mv,
                created_cs: &self.created_cs,
                inscope: &self.inscope,
                overlay: None,
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

    /// Whether updates are computed ahead on several threads (not with a trace: lineage notes
    /// follow the focus object's link as it changes).
    fn parallel(&self) -> bool {
        self.threads > 1 && !Tracer::new(self.trace.as_deref()).on()
    }

    /// Computes `f` of each of `items` from the current state, on up to `threads` threads of
    /// the run's pool (each part with its own copy of the evaluation contexts), in the order
    /// of `items`. Without a pool (it could not be made), on the calling thread.
    fn compute_ahead<I: Copy + Sync, T: Send>(
        &mut self,
        items: &[I],
        f: impl Fn(&View, &mut [Ctx], I) -> T + Sync,
    ) -> Vec<T> {
        use rayon::prelude::*;
        let threads = self.threads.min(items.len()).max(1);
        let per = items.len().div_ceil(threads).max(1);
        if self.pool.is_none() && threads > 1 {
            self.pool = rayon::ThreadPoolBuilder::new()
                .num_threads(self.threads)
                .build()
                .ok();
        }
        let pool = self.pool.take();
        let (v, ctxs) = self.split();
        let ctxs: &[Ctx] = ctxs;
        let (v, f) = (&v, &f);
        let part = move |items: &[I]| {
            let mut ctxs = ctxs.to_vec();
            items
                .iter()
                .map(|&i| f(v, &mut ctxs, i))
                .collect::<Vec<_>>()
        };
        let out = match &pool {
            Some(pool) => pool
                .install(|| items.par_chunks(per).map(part).collect::<Vec<_>>())
                .into_iter()
                .flatten()
                .collect(),
            None => part(items),
        };
        self.pool = pool;
        out
    }

    /// Outbound sync of `targets`, in their order. With more than one thread (and no trace),
    /// groups of objects are computed ahead on every thread from the state as it is, then
    /// applied in order; an update that read something an earlier one in its group changed
    /// is computed again in its turn, so the result is the serial one. Returns how many were
    /// visited before the run stopped (the one where it stopped may be visited in part), or
    /// all of them.
    fn outbound_all(&mut self, targets: &[MvId]) -> usize {
        if !self.parallel() || targets.len() < 2 {
            for (n, &mv) in targets.iter().enumerate() {
                self.outbound_mv(mv);
                if self.stopped {
                    return n;
                }
            }
            return targets.len();
        }
        let mut done = 0;
        self.build_empty_indexes();
        let mut rest = targets;
        let mut size = FIRST_GROUP;
        let mut first = true;
        // After a group where most objects needed a join (or an index not built yet),
        // computing ahead would mostly be thrown away: the rest of the pass is computed in
        // turn.
        let mut ahead_pays = true;
        while !rest.is_empty() {
            let (group, later) = rest.split_at(size.min(rest.len()));
            rest = later;
            size = (size * 4).min(GROUP);
            if !ahead_pays {
                for &mv in group {
                    self.outbound_mv(mv);
                    if self.stopped {
                        return done;
                    }
                    done += 1;
                }
                continue;
            }
            let updates = self.compute_ahead(group, outbound::compute);
            // The first group builds the indexes the others read (uniqueness, joins) when
            // they are not built yet: it does not judge.
            ahead_pays = first || updates.iter().filter(|u| u.is_none()).count() * 2 <= group.len();
            first = false;
            self.footprint = Some(Footprint::default());
            for (&mv, steps) in group.iter().zip(updates) {
                match steps {
                    Some(steps) if self.still_valid(mv, &steps) => {
                        self.ahead += 1;
                        for s in steps {
                            if self.apply_step(mv, s) {
                                break;
                            }
                        }
                    }
                    other => {
                        if other.is_some() {
                            self.again += 1;
                        } else {
                            self.in_turn += 1;
                        }
                        self.outbound_mv(mv)
                    }
                }
                if self.stopped {
                    break;
                }
                done += 1;
            }
            self.footprint = None;
            if self.stopped {
                return done;
            }
        }
        done
    }

    /// The uniqueness indexes and the indexes outbound join conditions read, of the
    /// connectors that hold no object yet (a first sync), built empty before a parallel
    /// outbound pass: provisionings computed ahead read them (`export_flows::withhold`,
    /// `outbound::joins_nothing`). Any other index is built by the first export or join that
    /// needs it.
    fn build_empty_indexes(&mut self) {
        for cc in 0..self.plan.connectors.len() {
            let held = self
                .state
                .cs()
                .iter()
                .any(|o| o.connector == cc && !o.gone && !o.placeholder);
            if held {
                continue;
            }
            let names: Vec<String> = self.plan.connectors[cc]
                .types
                .iter()
                .flat_map(|t| {
                    (0..t.len())
                        .filter(|&s| t.unique[s])
                        .map(|s| t.names[s].to_string())
                })
                .chain(
                    self.plan
                        .rules
                        .iter()
                        .filter(|r| {
                            r.connector == cc && r.def.direction == crate::ir::Direction::Outbound
                        })
                        .flat_map(|r| r.joins.iter().flatten().map(|j| j.target.clone())),
                )
                .collect();
            for name in names {
                self.build_cs_index(cc, &name);
            }
        }
    }

    /// Whether outbound steps computed ahead read nothing that was changed since.
    fn still_valid(&self, mv: MvId, steps: &[Step]) -> bool {
        let read = |e: &export_flows::Export| {
            self.footprint.as_ref().is_none_or(|f| {
                !e.read_targets.iter().any(|t| f.moved.contains(t))
                    && !e.read_holders.iter().any(|h| f.renamed.contains(h))
                    && !e.read_keys.iter().any(|k| f.keys.contains(k))
            })
        };
        steps.iter().all(|s| match &s.action {
            outbound::Action::Export {
                export: Some(e), ..
            } => read(e),
            // A provisioning whose DN an object took since is a join or a duplicate; one
            // that a join condition now finds an object for is a join.
            outbound::Action::Provision { dn, export, .. } => {
                self.state.cs_by_dn(s.cc, dn).is_none()
                    && read(export)
                    && outbound::joins_nothing(self.state, self.plan, mv, s.cc, &s.rules)
            }
            _ => true,
        })
    }

    /// The target objects of `mv` were linked, unlinked, removed or renamed.
    pub(super) fn moved(&mut self, mv: MvId) {
        if let Some(f) = &mut self.footprint {
            f.moved.insert(mv);
        }
    }

    /// The DN of `c` changed.
    pub(super) fn renamed(&mut self, c: CsId) {
        if let Some(f) = &mut self.footprint {
            f.renamed.insert(c);
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
        if let Some(f) = &mut self.footprint {
            f.values.insert(mv);
        }
        self.state.set_mv_attrs(self.plan, mv, new);
    }

    pub(super) fn set_cs_current(&mut self, id: CsId, new: Vec<Value>) {
        if let Some(f) = &mut self.footprint
            && let Some(o) = self.state.cs().get(id as usize)
        {
            // The values it leaves and takes in an index (the uniqueness indexes a computed
            // export read among them) change their holders.
            let tplan = &self.plan.connectors[o.connector].types[o.object_type];
            for (conn, name) in self.state.cs_index().keys() {
                let Some(s) = tplan.slot(name).filter(|_| *conn == o.connector) else {
                    continue;
                };
                let (old, x) = (&o.current[s], &new[s]);
                if old != x {
                    for y in old.values().iter().chain(x.values()) {
                        if let Some(k) = Key::folded(y) {
                            f.keys.insert((o.connector, k));
                        }
                    }
                }
            }
        }
        self.state.set_cs_current(self.plan, id, new);
    }
}
