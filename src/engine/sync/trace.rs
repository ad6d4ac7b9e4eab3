//! Lineage notes (previews and `idflow preview`): which rules were in scope, what joined,
//! every flow's value and what won.
//!
//! Consumes: the [`Trace`] a traced sync was given (its focus object, if any) and the notes
//! the other processors make. Produces: the trace's lines. Nothing here changes the state.

use super::Run;
use crate::engine::model::{CsId, MvId};
use crate::value::Value;

/// A lineage recorder for one connector-space object (previews).
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub focus: Option<CsId>,
    pub lines: Vec<String>,
}

impl Run<'_> {
    pub(super) fn traced(&self, cs: Option<CsId>, mv: Option<MvId>) -> bool {
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

    pub(super) fn note(
        &mut self,
        cs: Option<CsId>,
        mv: Option<MvId>,
        line: impl FnOnce() -> String,
    ) {
        if self.traced(cs, mv)
            && let Some(t) = self.trace.as_deref_mut()
        {
            t.lines.push(line());
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
