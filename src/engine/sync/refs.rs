//! References: inbound reference values (DNs of the object's connector) become metaverse ids,
//! outbound ones (metaverse ids) become DNs of the target connector; placeholders stand in for
//! referenced objects not imported yet; referrers are revisited when their targets are
//! linked, unlinked or renamed.
//!
//! Consumes: reference values computed by inbound and export flows, and the state's DN index.
//! Produces: the resolved values, placeholders, the reference maps of the state, the
//! metaverse objects to recompute or revisit, and the references still unresolved.

use super::Run;
use crate::engine::compile::ConnIdx;
use crate::engine::model::{CsId, CsObject, ErrorCategory, MvId, SyncError};
use crate::value::Value;

/// The metaverse value of a reference to metaverse object `id`.
pub fn mv_ref(id: MvId) -> Value {
    Value::Ref(format!("mv:{id}").into())
}

pub(super) fn parse_mv_ref(v: &Value) -> Option<MvId> {
    v.as_str()?.strip_prefix("mv:")?.parse().ok()
}

impl Run<'_> {
    /// An object was linked: objects referring to it re-resolve their references.
    pub(super) fn linked(&mut self, id: CsId) {
        let Some(o) = self.state.cs().get(id as usize) else {
            return;
        };
        let key = (o.connector, crate::engine::model::dn_key(&o.dn));
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
    pub(super) fn unlinked(&mut self, id: CsId, mv: MvId) {
        self.linked(id);
        self.target_changed(mv);
    }

    /// The target objects of a metaverse object changed (renamed, removed): exports that name
    /// it are computed again.
    pub(super) fn target_changed(&mut self, mv: MvId) {
        if let Some(referrers) = self.state.outbound_refs().get(&mv) {
            self.revisit.extend(referrers.iter().copied());
        }
    }

    /// Inbound reference values are DNs of the object's connector: they become metaverse ids.
    pub(super) fn resolve_inbound_refs(&mut self, from: CsId, value: Value) -> Value {
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

    /// Outbound reference values are metaverse ids: they become DNs of the target connector;
    /// references to objects that are not in the target are dropped and reported.
    pub(super) fn resolve_outbound_refs(&mut self, c: CsId, cc: ConnIdx, value: Value) -> Value {
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
