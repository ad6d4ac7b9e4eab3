//! Inbound processing of one connector-space object: its pending import (delete,
//! delete-add), scope of the inbound rules, stickiness of its link, join or projection.
//!
//! Consumes: a connector-space object with its staged import. Produces: its in-scope rules
//! (computed from `&State`, [`scope_rules`], and kept for the run), links, new metaverse
//! objects, tombstones of deleted objects, and the metaverse objects to recompute
//! (`Run::dirty`) and to visit in outbound (`Run::outbound`).

use super::Run;
use super::eval::{Log, View, seed};
use super::join::Joined;
use crate::engine::compile::{ConnIdx, Plan, RuleIdx};
use crate::engine::model::{CsId, Link, MvObject, PendingImport, State};
use crate::eval::Ctx;
use crate::sema::rules::LinkType;
use crate::value::Value;
use std::sync::Arc;

/// The in-scope inbound rules of object `id` (its scope evaluated from `&State`; notes in
/// `log`).
pub(super) fn scope_rules(v: &View, ctxs: &mut [Ctx], log: &mut Log, id: CsId) -> Vec<RuleIdx> {
    let o = &v.state.cs()[id as usize];
    let connector = o.connector;
    let candidates = v
        .plan
        .inbound
        .get(&(connector, o.object_type))
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let member_of = |group: &str| member_of(v.state, v.plan, connector, &o.dn, group);
    let mut rules = Vec::new();
    for &r in candidates {
        let rule = &v.plan.rules[r];
        match v.in_scope(ctxs, rule, &o.current, &o.imported, &member_of) {
            Ok(()) => {
                v.note(log, Some(id), None, || {
                    format!(
                        "in scope: \"{}\" (precedence {})",
                        rule.name(),
                        rule.def.precedence
                    )
                });
                rules.push(r);
            }
            Err(miss) => {
                v.note(log, Some(id), None, || {
                    format!("not in scope: \"{}\": {}", rule.name(), miss.join("; "))
                });
            }
        }
    }
    rules
}

impl Run<'_> {
    /// The in-scope inbound rules of an object, evaluated once per run.
    pub(super) fn inbound_rules(&mut self, id: CsId) -> Vec<RuleIdx> {
        if let Some(r) = self.inscope.get(&id) {
            return r.clone();
        }
        let mut log = Log::default();
        let (v, ctxs) = self.split();
        let rules = scope_rules(&v, ctxs, &mut log, id);
        self.flush(log);
        self.inscope.insert(id, rules.clone());
        rules
    }

    pub(super) fn inbound_object(&mut self, id: CsId) {
        seed(self.ctxs, 1, u64::from(id));
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
        self.state.cs_mut()[id as usize].pending_import = None;
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

    pub(super) fn project(&mut self, id: CsId, rules: &[RuleIdx]) {
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
}

/// ISMEMBEROF: the group with DN `group` in the same connector lists `dn` in its `member`.
pub(super) fn member_of(
    state: &State,
    plan: &Plan,
    connector: ConnIdx,
    dn: &Arc<str>,
    group: &str,
) -> bool {
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
