//! References: inbound reference values (DNs of the object's connector) become metaverse ids,
//! outbound ones (metaverse ids) become DNs of the target connector; placeholders stand in for
//! referenced objects not imported yet; referrers are revisited when their targets are
//! linked, unlinked or renamed.
//!
//! Consumes: reference values computed by inbound and export flows, and the state's DN index.
//! Produces, computed from `&State`: the resolved values and what resolving them must change
//! ([`InboundRef`], [`OutboundRef`]); applied: placeholders, the reference maps of the state,
//! the metaverse objects to recompute or revisit, and the references still unresolved.

use super::Run;
use super::eval::{Log, View};
use crate::engine::compile::ConnIdx;
use crate::engine::model::{CsId, CsObject, ErrorCategory, MvId, State, SyncError};
use crate::value::Value;
use std::sync::Arc;

/// The metaverse value of a reference to metaverse object `id`.
pub fn mv_ref(id: MvId) -> Value {
    Value::Ref(format!("mv:{id}").into())
}

pub(super) fn parse_mv_ref(v: &Value) -> Option<MvId> {
    v.as_str()?.strip_prefix("mv:")?.parse().ok()
}

impl Run<'_> {
    /// An object was linked: objects referring to it re-resolve their references. One whose
    /// last recomputation still holds (`recompute::Memo`) can only change its references, and
    /// nothing reads those before the outbound pass: it resolves them once, when every inbound
    /// change is made, not each time one of its targets is linked.
    pub(super) fn linked(&mut self, id: CsId) {
        let Some(o) = self.state.cs().get(id as usize) else {
            return;
        };
        let key = (o.connector, crate::engine::model::dn_key(&o.dn));
        if let Some(referrers) = self.state.referenced_by(key.0, &key.1).cloned() {
            for r in referrers {
                if let Some(l) = self.state.cs().get(r as usize).and_then(|o| o.link) {
                    if !self.outbound_pass && self.memo.contains_key(&l.mv) {
                        self.deferred.insert(l.mv);
                    } else {
                        self.dirty.insert(l.mv);
                    }
                }
            }
        }
    }

    /// An object is gone from the metaverse (deleted, disconnected): references to it from
    /// other objects are resolved again, inbound and outbound.
    pub(super) fn unlinked(&mut self, id: CsId, mv: MvId) {
        self.linked(id);
        self.target_changed(mv);
    }

    /// The target objects of a metaverse object changed (renamed, removed): exports that name
    /// it are computed again, by the outbound pass when it has not begun (it sees every
    /// inbound change), after it otherwise.
    pub(super) fn target_changed(&mut self, mv: MvId) {
        if let Some(referrers) = self.state.outbound_refs().get(&mv) {
            let to = if self.outbound_pass {
                &mut self.revisit
            } else {
                &mut self.outbound
            };
            to.extend(referrers.iter().copied());
        }
    }
}

/// An inbound reference value resolved from `&State`: applying it records the reference and
/// creates a placeholder for a target not imported yet.
#[derive(Debug)]
pub(super) struct InboundRef {
    connector: ConnIdx,
    /// The normalised DN key of the referenced object.
    key: Box<str>,
    dn: Arc<str>,
    from: CsId,
    /// The metaverse object it resolved to (None: no target, or one not linked).
    resolved: Option<MvId>,
}

/// What an inbound reference to the object of `connector` with DN key `key` resolves to.
fn resolve(state: &State, connector: ConnIdx, key: &str) -> Option<MvId> {
    let t = state.cs_by_dn_key(connector, key)?;
    let o = &state.cs()[t as usize];
    o.link.filter(|_| !o.gone).map(|l| l.mv)
}

/// Whether an inbound reference resolved ahead of its turn still resolves the same.
pub(super) fn still_resolves(state: &State, r: &InboundRef) -> bool {
    resolve(state, r.connector, &r.key) == r.resolved
}

/// Inbound reference values are DNs of the object's connector: they become metaverse ids. A
/// value that is not a DN is a sync error on the object (logged). The references to record
/// (and the placeholders to create) are added to `refs`.
pub(super) fn inbound_values(
    v: &View,
    log: &mut Log,
    refs: &mut Vec<InboundRef>,
    from: CsId,
    value: Value,
) -> Value {
    if value.is_null() {
        return value;
    }
    let connector = v.state.cs()[from as usize].connector;
    let mut out = Vec::new();
    for x in value.values() {
        let Some(dn) = x.as_str() else { continue };
        // References are DNs: resolved by their normalised key, so spelling, spacing and
        // escaping do not matter; a value that is not a DN is a sync error on the object.
        let key = match crate::dn::key(dn) {
            Ok(k) => k.into_boxed_str(),
            Err(e) => {
                let mv = v.state.cs()[from as usize].link.map(|l| l.mv);
                log.errors.push(SyncError {
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
        // A target not imported yet gets a placeholder when this is applied: never linked.
        let resolved = resolve(v.state, connector, &key);
        if let Some(mv) = resolved {
            out.push(mv_ref(mv));
        }
        refs.push(InboundRef {
            connector,
            key,
            dn: dn.into(),
            from,
            resolved,
        });
    }
    Value::many(out)
}

/// An outbound reference value resolved from `&State`, for the apply step.
#[derive(Debug)]
pub(super) enum OutboundRef {
    /// The exports of `referrer` name `target`.
    Carried { target: MvId, referrer: MvId },
    /// `target` is not in the connector: the reference is dropped until it is.
    Dropped {
        message: String,
        target: MvId,
        referrer: MvId,
    },
}

/// Outbound reference values are metaverse ids: they become DNs of the target connector `cc`
/// (as object `o` is exported); references to objects that are not in the target are dropped
/// and reported. What to record is added to `refs`; the metaverse objects whose target
/// objects were read, to `read`.
pub(super) fn outbound_values(
    v: &View,
    refs: &mut Vec<OutboundRef>,
    read: &mut Vec<MvId>,
    o: &CsObject,
    cc: ConnIdx,
    value: Value,
) -> Value {
    let mut out = Vec::new();
    for x in value.values() {
        match parse_mv_ref(x) {
            Some(target) => {
                read.push(target);
                let referrer = o.link.map(|l| l.mv);
                match v.state.linked_in(target, cc) {
                    Some(t) => {
                        let o = &v.state.cs()[t as usize];
                        out.push(Value::Ref(o.new_dn.clone().unwrap_or_else(|| o.dn.clone())));
                        if let Some(referrer) = referrer {
                            refs.push(OutboundRef::Carried { target, referrer });
                        }
                    }
                    None => {
                        let dn = &o.dn;
                        let message = format!(
                            "{}: {dn}: metaverse object {target} is not in this connector",
                            v.plan.connectors[cc].name
                        );
                        if let Some(referrer) = referrer {
                            refs.push(OutboundRef::Dropped {
                                message,
                                target,
                                referrer,
                            });
                        }
                    }
                }
            }
            // Not a metaverse reference (computed text): kept as is.
            None => out.push(x.clone()),
        }
    }
    Value::many(out)
}

impl Run<'_> {
    /// Records resolved inbound references, creating a placeholder for each target not
    /// imported yet (in the order they were resolved, so placeholder ids are deterministic).
    pub(super) fn apply_inbound_refs(&mut self, refs: Vec<InboundRef>) {
        for r in refs {
            if self.state.cs_by_dn_key(r.connector, &r.key).is_none() {
                // Not imported yet: a placeholder stands in until it is.
                let ty = self.state.cs()[r.from as usize].object_type;
                let width = self.plan.connectors[r.connector].types[ty].len();
                self.state.add_cs(CsObject {
                    connector: r.connector,
                    object_type: ty,
                    dn: r.dn,
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
                    read_as: None,
                });
            }
            self.state.add_reference(r.connector, r.key, r.from);
        }
    }

    /// Records resolved outbound references.
    pub(super) fn apply_outbound_refs(&mut self, refs: Vec<OutboundRef>) {
        for r in refs {
            match r {
                OutboundRef::Carried { target, referrer } => {
                    self.state.add_outbound_ref(target, referrer);
                }
                OutboundRef::Dropped {
                    message,
                    target,
                    referrer,
                } => {
                    self.state.add_awaiting_ref(target, referrer);
                    self.unresolved.push((message, target, referrer));
                }
            }
        }
    }
}
