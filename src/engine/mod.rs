//! The synchronization engine: connector spaces, metaverse, import staging, inbound and
//! outbound sync, previews.
//!
//! Consumes: a checked bundle ([`crate::sema::Bundle`]) and imported objects. Produces: the
//! metaverse, staged exports and run reports. The engine computes changes and does no I/O:
//! connectors feed [`import::ImportChange`]s in, and read staged exports out of the
//! [`model::State`] as [`export::ExportDelta`]s; `store` persists the state.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod compile;
pub mod dnflow;
pub mod dump;
pub mod export;
pub mod flow;
pub mod import;
pub mod model;
pub mod preview;
pub mod scope;
pub mod sync;
pub mod values;

use crate::eval::{Ctx, EngineKind};
use crate::sema::Bundle;
use crate::value::Value;
use compile::Plan;
use model::State;

/// Default number of per-object errors after which a run stops (`stopped-error-limit`).
pub const DEFAULT_ERROR_LIMIT: usize = 5000;

/// A compiled bundle with its state.
#[derive(Debug, Clone)]
pub struct Engine {
    pub plan: Plan,
    pub state: State,
    /// One evaluation context per connector (its parameters, the run's `now`).
    pub ctxs: Vec<Ctx>,
    pub error_limit: usize,
    /// Threads a sync computes on (default: one per core; 1: all on the calling thread). The
    /// result does not depend on it.
    pub threads: usize,
}

impl Engine {
    /// An engine with empty connector spaces and metaverse. Parameter values are set per
    /// connector with [`Engine::set_params`]; `now` is the run's single notion of time.
    pub fn new(bundle: &Bundle, now: crate::value::DateTime) -> Engine {
        Engine::with_engine(bundle, now, EngineKind::preferred())
    }

    /// An engine whose expressions run on `kind` (the interpreter or the JIT).
    pub fn with_engine(bundle: &Bundle, now: crate::value::DateTime, kind: EngineKind) -> Engine {
        Engine::from_plan(Plan::with_engine(bundle, kind), now)
    }

    /// An engine over an already compiled plan (its program is shared, not recompiled).
    pub fn from_plan(plan: Plan, now: crate::value::DateTime) -> Engine {
        let state = State::new(plan.connectors.len());
        let ctxs = plan.connectors.iter().map(|_| Ctx::new(now, 0)).collect();
        Engine {
            plan,
            state,
            ctxs,
            error_limit: DEFAULT_ERROR_LIMIT,
            threads: sync::default_threads(),
        }
    }

    /// Sets the parameter values of a connector (`Domain.FQDN`, ...); `Connector.ID` is the
    /// connector's name unless given.
    pub fn set_params(&mut self, connector: usize, params: Vec<(String, Value)>) {
        let Some(ctx) = self.ctxs.get_mut(connector) else {
            return;
        };
        let name = self.plan.connectors[connector].name.clone();
        ctx.params = params;
        if ctx.param("Connector.ID").is_none() {
            ctx.params.push(("Connector.ID".into(), Value::from(name)));
        }
    }

    /// Stages imported objects of one connector.
    pub fn import(
        &mut self,
        connector: usize,
        changes: Vec<import::ImportChange>,
        full: bool,
    ) -> import::ImportReport {
        import::import(&mut self.state, &self.plan, connector, changes, full)
    }

    /// Classifies a read of `connector` given whole against the connector space, for
    /// [`Engine::preview_read`] and [`Engine::stage`].
    pub fn read(&self, connector: usize, changes: Vec<import::ImportChange>) -> import::Read {
        import::read(&self.state, &self.plan, connector, changes)
    }

    /// An empty read of `connector`, to classify page by page ([`Engine::read_page`]) as a
    /// connector delivers them.
    pub fn begin_read(&self, connector: usize) -> import::Read {
        import::Read::new(&self.state, connector)
    }

    /// Classifies one page of a read.
    pub fn read_page(&self, read: &mut import::Read, changes: Vec<import::ImportChange>) {
        read.page(&self.state, &self.plan, changes);
    }

    /// Stages the records of a read classified so far (see [`import::stage_ahead`]).
    pub fn stage_ahead(&mut self, read: &mut import::Read) {
        import::stage_ahead(&mut self.state, &self.plan, read);
    }

    /// What staging a read would do (deletes, objects), without staging anything.
    pub fn preview_read(&self, read: &import::Read, full: bool) -> import::ReadPreview {
        import::preview(&self.state, read, full)
    }

    /// Stages a classified read (see [`Engine::import`]).
    pub fn stage(&mut self, read: import::Read, full: bool) -> import::ImportReport {
        import::stage(&mut self.state, &self.plan, read, full)
    }

    /// Records an export the connected system confirmed as applied (see
    /// [`export::confirm`]).
    pub fn confirm_export(
        &mut self,
        sent: &export::ExportDelta,
        assigned: Option<&Value>,
    ) -> export::Confirmed {
        export::confirm(&mut self.state, &self.plan, sent, assigned)
    }

    /// How syncs run: the error limit and the threads.
    pub fn sync_options(&self) -> sync::Options {
        sync::Options {
            error_limit: self.error_limit,
            threads: self.threads,
        }
    }

    /// Records that the connected system no longer holds the object of an export delta (an
    /// update answered "no such object"): its deletion is staged, as an import that no longer
    /// shows it would, so the next sync provisions it again where a rule says so. False when
    /// nothing was staged.
    pub fn object_gone(&mut self, sent: &export::ExportDelta) -> bool {
        import::stage_delete(&mut self.state, sent.cs)
    }

    /// Runs a full or delta sync.
    pub fn sync(&mut self, mode: sync::Mode) -> sync::SyncReport {
        let options = self.sync_options();
        sync::run(
            &self.plan,
            &mut self.state,
            &mut self.ctxs,
            mode,
            options,
            None,
        )
    }

    /// Runs a sync recording the lineage of one object (or of everything with no focus).
    pub fn sync_traced(&mut self, mode: sync::Mode, trace: &mut sync::Trace) -> sync::SyncReport {
        let options = self.sync_options();
        sync::run(
            &self.plan,
            &mut self.state,
            &mut self.ctxs,
            mode,
            options,
            Some(trace),
        )
    }
}
