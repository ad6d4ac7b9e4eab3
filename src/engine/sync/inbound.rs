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
use super::recompute::{self, Recomputed};
use crate::engine::compile::{ConnIdx, Plan, RuleIdx};
use crate::engine::model::{CsId, CsObject, Link, MvObject, PendingImport, State, Values};
use crate::eval::Ctx;
use crate::sema::rules::LinkType;
use std::sync::Arc;

/// An ISMEMBEROF answer a scope evaluation used: the object's connector and DN, the group's
/// DN, the answer.
pub(super) type MemberOf = (ConnIdx, Arc<str>, String, bool);

/// The in-scope inbound rules of object `id` (its scope evaluated from `&State`; notes in
/// `log`, the ISMEMBEROF answers it used in `asked`).
pub(super) fn scope_rules(
    v: &View,
    ctxs: &mut [Ctx],
    log: &mut Log,
    asked: &mut Vec<MemberOf>,
    id: CsId,
) -> Vec<RuleIdx> {
    let o = &v.state.cs()[id as usize];
    let connector = o.connector;
    let candidates = v
        .plan
        .inbound
        .get(&(connector, o.object_type))
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let answers = std::cell::RefCell::new(std::mem::take(asked));
    let member_of = |group: &str| {
        let answer = member_of(v.state, v.plan, connector, &o.dn, group);
        answers
            .borrow_mut()
            .push((connector, o.dn.clone(), group.to_string(), answer));
        answer
    };
    let mut rules = Vec::new();
    let (current, imported) = (o.current.dense(), o.imported.dense());
    for &r in candidates {
        let rule = &v.plan.rules[r];
        match v.in_scope(ctxs, rule, &current, &imported, &member_of) {
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
    *asked = answers.into_inner();
    rules
}

/// The scope of an object evaluated ahead of its turn (a parallel sync), with what it read.
#[derive(Debug)]
pub(super) struct ScopeAhead {
    id: CsId,
    rules: Vec<RuleIdx>,
    log: Log,
    current: Values,
    imported: Values,
    asked: Vec<MemberOf>,
}

/// What inbound processing of one object will compute, computed ahead from `&State`: its
/// scope (unless the run knows it already) and, when it is linked and stays linked, the
/// recomputation of its metaverse object.
#[derive(Debug, Default)]
pub(super) struct Ahead {
    pub scope: Option<ScopeAhead>,
    pub recompute: Option<Box<Recomputed>>,
}

/// Computes ahead, from `&State`, what processing object `id` will evaluate (see [`Ahead`]).
pub(super) fn ahead(v: &View, ctxs: &mut [Ctx], id: CsId) -> Ahead {
    let mut out = Ahead::default();
    let Some(o) = v.state.cs().get(id as usize) else {
        return out;
    };
    if o.gone || o.placeholder {
        return out;
    }
    let rules = match v.inscope.get(&id) {
        Some(rules) => rules.clone(),
        None => {
            seed(ctxs, 1, u64::from(id));
            let mut log = Log::default();
            let mut asked = Vec::new();
            let rules = scope_rules(v, ctxs, &mut log, &mut asked, id);
            out.scope = Some(ScopeAhead {
                id,
                rules: rules.clone(),
                log,
                current: o.current.clone(),
                imported: o.imported.clone(),
                asked,
            });
            rules
        }
    };
    // A delete (or a type change) unlinks it first; otherwise a link that stays makes its
    // metaverse object recomputed (see `Run::inbound_object`).
    if matches!(
        o.pending_import,
        Some(PendingImport::Delete | PendingImport::DeleteAdd)
    ) {
        return out;
    }
    if let Some(l) = o.link
        && (l.outbound || rules.contains(&l.rule))
    {
        let view = View {
            overlay: Some((id, &rules)),
            ..*v
        };
        out.recompute = Some(Box::new(recompute::compute(&view, ctxs, l.mv, true)));
    } else if o.link.is_none()
        && !v.plan.inbound_random
        && let Some((rule, ty)) = projects(v, id, &rules)
    {
        // Not linked, and no join finds a metaverse object now: its turn will project it (if
        // an object before it in its group makes a join find one, the turn joins instead and
        // this goes unused).
        let view = View {
            overlay: Some((id, &rules)),
            ..*v
        };
        out.recompute = Some(Box::new(recompute::compute_projection(
            &view, ctxs, id, rule, ty,
        )));
    }
    out
}

/// The rule and metaverse type that would project object `id` with in-scope `rules` if its
/// turn came now: no join group of a rule finds a candidate, and [`projection`] gives them.
fn projects(v: &View, id: CsId, rules: &[RuleIdx]) -> Option<(RuleIdx, usize)> {
    let joins = rules.iter().any(|&r| {
        let rule = &v.plan.rules[r];
        rule.joins
            .iter()
            .any(|group| !super::join::candidates(v.state, v.plan, id, rule, group).is_empty())
    });
    if joins {
        return None;
    }
    projection(v.plan, &v.state.cs()[id as usize], rules).ok()
}

/// Why an object that no join finds is not projected.
enum NotProjected {
    /// No provision rule is in scope: the object is a disconnector.
    Disconnector,
    /// The provision rule names no metaverse type.
    Untyped,
    /// The provision rule joins, and none of its join attributes has a value.
    JoinValuesAbsent(RuleIdx),
}

/// The rule and metaverse type that project object `o` with in-scope `rules`: the first
/// provision rule, when it names a type and, if it joins, one of its join attributes has a
/// value.
fn projection(
    plan: &Plan,
    o: &CsObject,
    rules: &[RuleIdx],
) -> Result<(RuleIdx, usize), NotProjected> {
    let &r = rules
        .iter()
        .find(|&&r| plan.rules[r].link() == LinkType::Provision)
        .ok_or(NotProjected::Disconnector)?;
    let rule = &plan.rules[r];
    let ty = rule.target_type.ok_or(NotProjected::Untyped)?;
    let present = rule.joins.is_empty()
        || rule
            .joins
            .iter()
            .flatten()
            .any(|j| !o.current[j.source].is_null());
    if !present {
        return Err(NotProjected::JoinValuesAbsent(r));
    }
    Ok((r, ty))
}

/// Whether the ISMEMBEROF answers a scope used are still the answers.
pub(super) fn same_answers(state: &State, plan: &Plan, asked: &[MemberOf]) -> bool {
    asked
        .iter()
        .all(|(c, dn, group, answer)| member_of(state, plan, *c, dn, group) == *answer)
}

impl Run<'_> {
    /// The in-scope inbound rules of an object, evaluated once per run.
    pub(super) fn inbound_rules(&mut self, id: CsId) -> Vec<RuleIdx> {
        if let Some(r) = self.inscope.get(&id) {
            return r.clone();
        }
        if let Some(s) = self.ahead_scope.take_if(|s| s.id == id)
            && self.scope_still_valid(&s)
        {
            self.flush(s.log);
            self.inscope.insert(id, s.rules.clone());
            return s.rules;
        }
        let mut log = Log::default();
        let (v, ctxs) = self.split();
        let rules = scope_rules(&v, ctxs, &mut log, &mut Vec::new(), id);
        self.flush(log);
        self.inscope.insert(id, rules.clone());
        rules
    }

    /// Whether a scope computed ahead read nothing that changed since: the object's values
    /// and the groups it asked about.
    fn scope_still_valid(&self, s: &ScopeAhead) -> bool {
        let o = &self.state.cs()[s.id as usize];
        Values::ptr_eq(&o.current, &s.current)
            && Values::ptr_eq(&o.imported, &s.imported)
            && same_answers(self.state, self.plan, &s.asked)
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
        if self.state.cs()[id as usize].pending_import.is_some() {
            self.state.cs_mut()[id as usize].pending_import = None;
        }
        // A linked object that changed in its directory: outbound recomputes what it should
        // hold (this corrects drift in a target), and exports naming it are revisited (rename).
        // A confirmation of what was exported changed neither what it holds nor its DN: the
        // metaverse object is recomputed below, and outbound visits it if that changes it
        // (DECISIONS 38).
        if pending.is_some_and(|p| p != PendingImport::InboundUpdate)
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
        let (r, ty) = match projection(self.plan, &self.state.cs()[id as usize], rules) {
            Ok(p) => p,
            Err(NotProjected::Disconnector) => {
                self.note(Some(id), None, || {
                    "not joined, and no provision rule in scope: disconnector".into()
                });
                return;
            }
            Err(NotProjected::Untyped) => return,
            Err(NotProjected::JoinValuesAbsent(r)) => {
                let name = self.plan.rules[r].name();
                self.note(Some(id), None, || {
                    format!("not projected by \"{name}\": no join attribute has a value")
                });
                return;
            }
        };
        let rule = &self.plan.rules[r];
        let mv = self.state.allocate_mv();
        // The recomputation computed ahead for this projection, if any, now names the object.
        if let Some(mut r) = self.ahead_recompute.take()
            && r.rekey(mv)
        {
            self.ahead_recompute = Some(r);
        }
        let attrs = Values::new(self.plan.metaverse[ty].len());
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
