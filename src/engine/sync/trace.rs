//! Lineage notes (previews and `idflow preview`): which rules were in scope, what joined,
//! every flow's value and what won.
//!
//! Consumes: the [`Trace`] a traced sync was given (its focus object, if any) and the notes
//! the other processors make. Produces: the trace's lines. Nothing here changes the state.

use super::Run;
use super::eval::Log;
use crate::engine::model::{CsId, MvId, State};
use crate::value::Value;

/// A lineage recorder for one connector-space object (previews).
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub focus: Option<CsId>,
    pub lines: Vec<String>,
}

/// Whom a sync's lineage notes follow: nobody (no trace), everything, or one object (and the
/// metaverse object it is linked to).
#[derive(Debug, Clone, Copy)]
pub(super) struct Tracer {
    on: bool,
    focus: Option<CsId>,
}

impl Tracer {
    pub fn new(trace: Option<&Trace>) -> Tracer {
        Tracer {
            on: trace.is_some(),
            focus: trace.and_then(|t| t.focus),
        }
    }

    /// Whether a sync traces anything.
    pub fn on(&self) -> bool {
        self.on
    }

    /// Whether notes about `cs` or `mv` are recorded.
    pub fn traced(&self, state: &State, cs: Option<CsId>, mv: Option<MvId>) -> bool {
        if !self.on {
            return false;
        }
        match self.focus {
            None => true,
            Some(f) => {
                cs == Some(f)
                    || mv.is_some_and(|m| {
                        state
                            .cs()
                            .get(f as usize)
                            .and_then(|o| o.link)
                            .is_some_and(|l| l.mv == m)
                    })
            }
        }
    }
}

impl Run<'_> {
    /// Records a lineage note made while applying.
    pub(super) fn note(
        &mut self,
        cs: Option<CsId>,
        mv: Option<MvId>,
        line: impl FnOnce() -> String,
    ) {
        if Tracer::new(self.trace.as_deref()).traced(self.state, cs, mv)
            && let Some(t) = self.trace.as_deref_mut()
        {
            t.lines.push(line());
        }
    }

    /// Records what a computation logged: its notes in the trace, its errors in the report.
    pub(super) fn flush(&mut self, log: Log) {
        if let Some(t) = self.trace.as_deref_mut() {
            t.lines.extend(log.notes);
        }
        for e in log.errors {
            self.error(e);
        }
    }
}

/// A short rendering of a value for lineage lines.
pub(super) fn short(v: &Value) -> String {
    let s = crate::eval::json::to_json(v).to_string();
    if s.chars().count() > 120 {
        let cut: String = s.chars().take(117).collect();
        format!("{cut}...")
    } else {
        s
    }
}
