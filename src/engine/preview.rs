//! Per-object preview: the lineage of one connector-space object, without committing anything.
//!
//! Consumes: an [`Engine`] and one connector-space object. Produces: a [`Preview`] — which
//! inbound rules were in scope and why the others were not, which join group matched what,
//! every flow's value per rule and the value that won, the resulting metaverse object, and the
//! exports it would stage (the [`ExportDelta`]s of its linked objects) — computed on a copy of
//! the engine, so the engine itself is unchanged.

use super::Engine;
use super::dump;
use super::export::{self, ExportDelta};
use super::model::{CsId, PendingImport, SyncError};
use super::sync::{Mode, Trace};

/// The lineage of one object.
#[derive(Debug, Clone)]
pub struct Preview {
    pub lines: Vec<String>,
    /// The metaverse object the object is linked to afterwards (canonical dump), if any.
    pub metaverse: String,
    /// The exports staged for that metaverse object (canonical dump of [`Preview::deltas`]).
    pub exports: String,
    /// The export deltas of the objects linked to that metaverse object.
    pub deltas: Vec<ExportDelta>,
    pub errors: Vec<SyncError>,
}

/// Previews a sync of `cs` as if it had just been imported.
pub fn preview(engine: &Engine, cs: CsId) -> Preview {
    let mut e = engine.clone();
    if let Some(o) = e.state.cs_mut().get_mut(cs as usize) {
        // As if imported with a change: outbound visits it too (a confirmation would not).
        if o.pending_import
            .is_none_or(|p| p == PendingImport::InboundUpdate)
        {
            o.pending_import = Some(PendingImport::Update);
        }
    }
    let mut trace = Trace {
        focus: Some(cs),
        lines: Vec::new(),
    };
    let report = e.sync_traced(Mode::Delta, &mut trace);
    let mv = e
        .state
        .cs()
        .get(cs as usize)
        .and_then(|o| o.link)
        .map(|l| l.mv);
    let (metaverse, exports, deltas) = match mv.and_then(|id| e.state.mv().get(&id)) {
        Some(m) => {
            let id = m.id;
            let linked = m.links.clone();
            (
                dump::metaverse_of(&e.plan, &e.state, |x| x == id),
                dump::exports_of(&e.plan, &e.state, |c| linked.contains(&c)),
                linked
                    .iter()
                    .filter_map(|&c| export::delta(&e.plan, &e.state, c))
                    .collect(),
            )
        }
        None => (String::new(), String::new(), Vec::new()),
    };
    let errors = report
        .errors
        .into_iter()
        .filter(|x| x.cs == Some(cs) || (mv.is_some() && x.mv == mv))
        .collect();
    Preview {
        lines: trace.lines,
        metaverse,
        exports,
        deltas,
        errors,
    }
}
