//! Evaluation for the processors: one routine evaluates every flow (inbound contributions,
//! export flows, `dn` flows) and one every scope (inbound and outbound rules), reading the
//! state and changing nothing.
//!
//! Consumes: a [`View`] (the plan, the state and what the sync did so far), the evaluation
//! context of each connector, a rule and one of its flows (or its scope), and the source
//! object's values. Produces: a flow's [`FlowOutcome`] (its value; skipped for a `once` flow
//! of an object this sync did not create; failed) or a scope's verdict, and the [`Log`] of the
//! sync errors and lineage notes they made, in order, which the apply step records. A failed
//! flow's error is categorized by its code: E0501 Function Error, E0510 and E0511 Large
//! Attribute, E0512 and E0513 Other, any other Data Validation Failure.

use super::trace::Tracer;
use crate::engine::compile::{FlowPlan, Plan, RuleIdx, RulePlan};
use crate::engine::model::{CsId, ErrorCategory, MvId, State, SyncError};
use crate::engine::scope::{self, ScopeMiss};
use crate::eval::Ctx;
use crate::eval::interp::{EvalError, Object};
use crate::value::Value;
use std::collections::{HashMap, HashSet};

/// The sync errors and lineage notes a computation made, in the order it made them.
#[derive(Debug, Default)]
pub(super) struct Log {
    pub errors: Vec<SyncError>,
    pub notes: Vec<String>,
}

/// What evaluating one flow gave.
#[derive(Debug)]
pub(super) enum FlowOutcome {
    /// The flow's value (NULL, AuthoritativeNull and IgnoreThisFlow included).
    Value(Value),
    /// A `once` flow of an object this sync did not create: as if the flow did not exist.
    Skipped,
    /// The flow failed; its error and note are in the log.
    Failed,
}

impl FlowOutcome {
    /// The flow's contribution to its target: IgnoreThisFlow when it was skipped or failed.
    pub fn contribution(self) -> Value {
        match self {
            FlowOutcome::Value(v) => v,
            FlowOutcome::Skipped | FlowOutcome::Failed => Value::IgnoreThisFlow,
        }
    }
}

/// What the processors read while they compute: the plan, the state and what this sync did
/// so far. Nothing changes while a view exists; the apply step changes the state afterwards.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub plan: &'a Plan,
    pub state: &'a State,
    /// Metaverse objects projected by this sync.
    pub created_mv: &'a HashSet<MvId>,
    /// Connector-space objects provisioned by this sync.
    pub created_cs: &'a HashSet<CsId>,
    /// In-scope inbound rules of the objects whose scope this sync evaluated.
    pub inscope: &'a HashMap<CsId, Vec<RuleIdx>>,
    /// The in-scope inbound rules of one more object, computed ahead and not kept yet.
    pub overlay: Option<(CsId, &'a [RuleIdx])>,
    pub tracer: Tracer,
}

impl View<'_> {
    /// The in-scope inbound rules of `c` the run knows (None: not evaluated yet).
    pub fn known_scope(&self, c: CsId) -> Option<&[RuleIdx]> {
        match self.overlay {
            Some((o, rules)) if o == c => Some(rules),
            _ => self.inscope.get(&c).map(Vec::as_slice),
        }
    }

    /// Records a lineage note when the trace follows `cs` or `mv`.
    pub fn note(
        &self,
        log: &mut Log,
        cs: Option<CsId>,
        mv: Option<MvId>,
        line: impl FnOnce() -> String,
    ) {
        if self.tracer.traced(self.state, cs, mv) {
            log.notes.push(line());
        }
    }

    /// Evaluates flow `f` of `rule` over `obj`, with the context of the rule's connector. A
    /// `once` flow is skipped unless the target object was `created` by this sync (`dn` flows
    /// are evaluated for every object: their callers pass true). A failure is logged against
    /// `cs` and `mv`.
    #[allow(clippy::too_many_arguments)]
    pub fn eval_flow(
        &self,
        ctxs: &mut [Ctx],
        log: &mut Log,
        rule: &RulePlan,
        f: &FlowPlan,
        obj: Object<'_>,
        cs: Option<CsId>,
        mv: Option<MvId>,
        created: bool,
    ) -> FlowOutcome {
        if f.once && !created {
            return FlowOutcome::Skipped;
        }
        match self
            .plan
            .program
            .eval(&mut ctxs[rule.connector], f.id as usize, &f.expr, obj)
        {
            Ok(v) => FlowOutcome::Value(v),
            Err(e) => {
                self.eval_error(log, cs, mv, rule, &f.target, *e);
                FlowOutcome::Failed
            }
        }
    }

    /// Logs a failed flow: a note and a sync error categorized by the error's code.
    fn eval_error(
        &self,
        log: &mut Log,
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
        self.note(log, cs, mv, || {
            format!(
                "  flow {target} of \"{}\": error {}: {}",
                rule.name(),
                e.code,
                e.message
            )
        });
        log.errors.push(SyncError {
            category,
            cs,
            mv,
            rule: Some(rule.name().to_string()),
            code: Some(e.code),
            message: format!("flow to {target}: {}", e.message),
        });
    }

    /// Evaluates the scope of `rule` over an object's values, with the context of the rule's
    /// connector; `member_of` answers ISMEMBEROF clauses.
    pub fn in_scope(
        &self,
        ctxs: &mut [Ctx],
        rule: &RulePlan,
        values: &[Value],
        imported: &[Value],
        member_of: &dyn Fn(&str) -> bool,
    ) -> Result<(), ScopeMiss> {
        scope::in_scope(
            &self.plan.program,
            &rule.scope,
            values,
            imported,
            &mut ctxs[rule.connector],
            member_of,
        )
    }
}

/// Starts the random sequences of one object's evaluations (`Ctx::seed_for`): what `Guid()`
/// and `RandomNum()` give depends on the object and the stage, not on the order of the sync
/// or on the thread that computes it.
pub(super) fn seed(ctxs: &mut [Ctx], stage: u64, id: u64) {
    for ctx in ctxs.iter_mut() {
        ctx.seed_for((stage << 60) ^ id);
    }
}
