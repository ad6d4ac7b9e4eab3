//! Outbound processing of one metaverse object: scope of the outbound rules per target
//! connector, provisioning (with the DN its `dn` flow computes), outbound join,
//! deprovisioning, and DN changes (renames).
//!
//! Consumes: a metaverse object and the outbound rules of its type. Produces, per target
//! connector and computed from `&State` ([`step`]): a [`Step`] — the in-scope rules and what
//! to do: nothing, deprovision, disconnect, export (the export flows of the linked object,
//! `export_flows`), or join or provision (done when applied: [`Run::outbound_link`]).
//! Applied ([`Run::apply_step`]): links to target objects, new export objects, staged deletes
//! and renames, and the export flows' changes. [`compute`] makes every step of one object at
//! once, for a parallel sync; [`Run::outbound_mv`] computes and applies them one at a time.

use super::Run;
use super::eval::{FlowOutcome, Log, View, seed};
use super::export_flows::{self, Export, check_dn};
use super::join::cs_candidates;
use crate::engine::compile::{ConnIdx, Plan, RuleIdx, TypeIdx};
use crate::engine::flow;
use crate::engine::model::{CsId, CsObject, ErrorCategory, ExportOp, Link, MvId, State, SyncError};
use crate::eval::Ctx;
use crate::eval::interp::Object;
use crate::sema::rules::LinkType;
use crate::value::Value;

/// What outbound sync does for one metaverse object in one target connector.
#[derive(Debug)]
pub(super) enum Action {
    /// Not linked, and no in-scope rule joins or provisions: nothing.
    Skip,
    /// The linked object was provisioned and no provision rule is in scope any more.
    Deprovision(CsId),
    /// The linked object was joined by an outbound rule no longer in scope.
    Disconnect(CsId),
    /// Export flows for the linked object; `prov` (the in-scope provision rule) is kept on
    /// it. `export` is computed ahead, or when applied if None.
    Export {
        c: CsId,
        prov: Option<RuleIdx>,
        export: Option<Box<Export>>,
    },
    /// Not linked: a join or a provisioning is tried when applied (it reads and changes the
    /// connector's objects and indexes), then the export flows.
    Link,
    /// Not linked, and only provision rule `rule` can link it (no join condition): the object
    /// it provisions at `dn`, with the export flows of that new object, computed ahead
    /// ([`provision_ahead`]). Taken in its turn when no object of the connector holds the DN
    /// by then and what the export read still holds (`Run::still_valid`).
    Provision {
        rule: RuleIdx,
        ty: TypeIdx,
        dn: String,
        /// The `dn` flow's notes.
        log: Log,
        export: Box<Export>,
    },
}

/// One target connector's part of outbound sync for a metaverse object.
#[derive(Debug)]
pub(super) struct Step {
    pub cc: ConnIdx,
    /// The in-scope outbound rules of the connector.
    pub rules: Vec<RuleIdx>,
    /// Scope notes (and the deprovisioning note).
    log: Log,
    pub action: Action,
}

/// The step of connector `cc` for `mv`, or None when no outbound rule of the connector takes
/// its type. An export is left to compute (`Action::Export` with no export).
pub(super) fn step(v: &View, ctxs: &mut [Ctx], mv: MvId, cc: ConnIdx) -> Option<Step> {
    let m = v.state.mv().get(&mv)?;
    let all = v.plan.outbound.get(&(cc, m.object_type))?;
    let mut log = Log::default();
    let mut rules = Vec::new();
    let attrs = m.attrs.dense();
    for &r in all {
        let rule = &v.plan.rules[r];
        match v.in_scope(ctxs, rule, &attrs, &attrs, &|_| false) {
            Ok(()) => rules.push(r),
            Err(miss) => v.note(&mut log, None, Some(mv), || {
                format!(
                    "outbound not in scope: \"{}\": {}",
                    rule.name(),
                    miss.join("; ")
                )
            }),
        }
    }
    let action = match v.state.linked_in(mv, cc) {
        Some(c) => {
            let o = &v.state.cs()[c as usize];
            let prov = rules.iter().copied().find(|&r| {
                v.plan.rules[r].link() == LinkType::Provision
                    && v.plan.rules[r].target_type == Some(o.object_type)
            });
            if o.provisioned_by.is_some() && prov.is_none() {
                v.note(&mut log, Some(c), Some(mv), || {
                    format!(
                        "deprovisioned from {}: no provision rule in scope",
                        v.plan.connectors[cc].name
                    )
                });
                Action::Deprovision(c)
            } else if let Some(l) = o.link
                && l.outbound
                && !rules.contains(&l.rule)
                && prov.is_none()
            {
                Action::Disconnect(c)
            } else {
                Action::Export {
                    c,
                    prov,
                    export: None,
                }
            }
        }
        // `outbound_link` finds nothing to do without a provision rule or a join condition.
        None if rules.iter().all(|&r| {
            v.plan.rules[r].link() != LinkType::Provision && v.plan.rules[r].joins.is_empty()
        }) =>
        {
            Action::Skip
        }
        None => Action::Link,
    };
    Some(Step {
        cc,
        rules,
        log,
        action,
    })
}

/// Every step of outbound sync for `mv` with its exports, computed from `&State`; None when
/// one of them can only be computed when applied (a join or a provisioning, a uniqueness index
/// not built). The steps come first, so an object that needs a join or a provisioning costs no
/// export computed in vain; each connector evaluates with its own context, so its random
/// numbers are the ones computing connector after connector draws.
pub(super) fn compute(v: &View, ctxs: &mut [Ctx], mv: MvId) -> Option<Vec<Step>> {
    seed(ctxs, 3, mv);
    let mut steps = Vec::new();
    for cc in 0..v.plan.connectors.len() {
        let Some(s) = step(v, ctxs, mv, cc) else {
            continue;
        };
        steps.push(s);
    }
    for s in &mut steps {
        match &mut s.action {
            Action::Export { c, export, .. } => {
                let mut e = export_flows::compute(v, ctxs, mv, *c, &s.rules);
                export_flows::withhold(v, mv, &mut e).ok()?;
                *export = Some(Box::new(e));
            }
            Action::Link => {
                s.action = provision_ahead(v, ctxs, mv, s.cc, &s.rules)?;
            }
            _ => {}
        }
    }
    Some(steps)
}

/// The id an object provisioned ahead of its turn has until it is created.
const NOT_YET: CsId = CsId::MAX;

/// A provisioning computed from `&State`: the DN of the provision rule's `dn` flow and the
/// export flows of the object it would create, as `Run::outbound_link` and
/// `Run::export_flows` make them in the object's turn. None when the turn must do it: a join
/// condition to try, no provision rule, a DN that gives no value, is held already or makes an
/// error, an export that makes an error, withholds a value or refers to the object itself, a
/// uniqueness index not built.
fn provision_ahead(
    v: &View,
    ctxs: &mut [Ctx],
    mv: MvId,
    cc: ConnIdx,
    rules: &[RuleIdx],
) -> Option<Action> {
    // A join the turn would make (or an index a join reads, not built yet) is left to it.
    if !joins_nothing(v.state, v.plan, mv, cc, rules) {
        return None;
    }
    let p = rules
        .iter()
        .copied()
        .find(|&r| v.plan.rules[r].link() == LinkType::Provision)?;
    let mut log = Log::default();
    let dn = dn_of(v, ctxs, &mut log, mv, p)
        .ok()
        .flatten()
        .filter(|d| !d.trim().is_empty() && log.errors.is_empty())?;
    if v.state.cs_by_dn(cc, &dn).is_some() {
        return None;
    }
    let tty = v.plan.rules[p].target_type?;
    let tplan = &v.plan.connectors[cc].types[tty];
    let mut current = vec![Value::Null; tplan.len()];
    if let Some(s) = tplan.dn {
        current[s] = Value::str(dn.as_str());
    }
    let o = new_object(cc, tty, &dn, p, vec![Value::Null; tplan.len()], Some(mv));
    let o = CsObject {
        current: current.into(),
        ..o
    };
    let mut e = export_flows::compute_of(v, ctxs, mv, NOT_YET, &o, true, rules);
    export_flows::withhold(v, mv, &mut e).ok()?;
    // A reference to itself names the object once it is created.
    if !e.clean() || e.read_targets.contains(&mv) {
        return None;
    }
    Some(Action::Provision {
        rule: p,
        ty: tty,
        dn,
        log,
        export: Box::new(e),
    })
}

/// Whether no join condition of the in-scope `rules` finds the one unlinked object of
/// connector `cc` that `Run::outbound_link` would join to `mv` (each index they read built).
pub(super) fn joins_nothing(
    state: &State,
    plan: &Plan,
    mv: MvId,
    cc: ConnIdx,
    rules: &[RuleIdx],
) -> bool {
    rules.iter().all(|&r| {
        let rule = &plan.rules[r];
        let Some(tty) = rule.target_type else {
            return true;
        };
        rule.joins.iter().all(|group| {
            cs_candidates(state, plan, mv, cc, tty, group).is_some_and(|c| c.len() != 1)
        })
    })
}

/// An object provisioned by rule `p` at `dn`, with `current` values (and no imported ones),
/// linked to `mv` when given.
fn new_object(
    cc: ConnIdx,
    tty: TypeIdx,
    dn: &str,
    p: RuleIdx,
    current: Vec<Value>,
    mv: Option<MvId>,
) -> CsObject {
    let width = current.len();
    CsObject {
        connector: cc,
        object_type: tty,
        dn: dn.into(),
        anchor: None,
        imported: vec![Value::Null; width].into(),
        current: current.into(),
        pending_import: None,
        export: Some(ExportOp::Add),
        new_dn: None,
        link: mv.map(|mv| Link {
            mv,
            rule: p,
            outbound: true,
        }),
        provisioned_by: Some(p),
        placeholder: false,
        gone: false,
        read_as: None,
    }
}

/// The DN provision rule `rule` computes for `mv` (its `dn` flow, checked); None when it has no
/// `dn` flow or the flow gives no text; Err when the flow fails or the DN is not valid (the
/// error is in `log`).
fn dn_of(
    v: &View,
    ctxs: &mut [Ctx],
    log: &mut Log,
    mv: MvId,
    rule: RuleIdx,
) -> Result<Option<String>, ()> {
    let r = &v.plan.rules[rule];
    let Some(f) = r.flows.iter().find(|f| f.target == "dn") else {
        return Ok(None);
    };
    let attrs = v.state.mv()[&mv].attrs.dense();
    let obj = Object {
        attrs: &attrs,
        imported: &attrs,
    };
    match v.eval_flow(ctxs, log, r, f, obj, None, Some(mv), true) {
        FlowOutcome::Value(x) => {
            let dn = flow::shape(x, false).as_str().map(str::to_string);
            match dn {
                Some(d) if !d.trim().is_empty() => match check_dn(v, ctxs, rule, f, mv, &d) {
                    Ok(()) => Ok(Some(d)),
                    Err(message) => {
                        log.errors.push(SyncError {
                            category: ErrorCategory::DataValidationFailure,
                            cs: None,
                            mv: Some(mv),
                            rule: Some(r.name().to_string()),
                            code: None,
                            message,
                        });
                        Err(())
                    }
                },
                other => Ok(other),
            }
        }
        FlowOutcome::Skipped | FlowOutcome::Failed => Err(()),
    }
}

impl Run<'_> {
    pub(super) fn deprovision(&mut self, c: CsId) {
        let o = &mut self.state.cs_mut()[c as usize];
        o.provisioned_by = None;
        if o.anchor.is_none() {
            // Never exported: the export object simply disappears.
            self.remove_cs(c);
        } else {
            o.export = Some(ExportOp::Delete);
        }
        self.report.deprovisions += 1;
    }

    /// Outbound sync of one metaverse object: each target connector's step computed and
    /// applied in turn.
    pub(super) fn outbound_mv(&mut self, mv: MvId) {
        seed(self.ctxs, 3, mv);
        for cc in 0..self.plan.connectors.len() {
            let (v, ctxs) = self.split();
            let Some(s) = step(&v, ctxs, mv, cc) else {
                continue;
            };
            if self.apply_step(mv, s) {
                return;
            }
        }
    }

    /// Applies one connector's step for `mv`; true when the run stopped (error limit).
    pub(super) fn apply_step(&mut self, mv: MvId, s: Step) -> bool {
        self.flush(s.log);
        match s.action {
            Action::Skip => false,
            Action::Deprovision(c) => {
                self.state.unlink(c);
                self.deprovision(c);
                self.target_changed(mv);
                self.moved(mv);
                false
            }
            Action::Disconnect(c) => {
                self.state.unlink(c);
                self.report.disconnects += 1;
                self.target_changed(mv);
                self.moved(mv);
                false
            }
            Action::Link => {
                self.moved(mv);
                let Some(c) = self.outbound_link(mv, s.cc, &s.rules) else {
                    return false;
                };
                if let Some(waiting) = self.state.take_awaiting_refs(mv) {
                    self.revisit.extend(waiting);
                }
                self.export_flows(mv, c, &s.rules);
                self.stopped
            }
            Action::Provision {
                rule,
                ty,
                dn,
                log,
                export,
            } => {
                self.flush(log);
                self.moved(mv);
                let c = self.provision(mv, s.cc, rule, ty, &dn);
                if let Some(waiting) = self.state.take_awaiting_refs(mv) {
                    self.revisit.extend(waiting);
                }
                let mut e = *export;
                e.c = c;
                self.apply_export(mv, e);
                self.stopped
            }
            Action::Export { c, prov, export } => {
                if prov.is_some() {
                    self.state.cs_mut()[c as usize].provisioned_by = prov;
                }
                match export {
                    Some(e) => self.apply_export(mv, *e),
                    None => self.export_flows(mv, c, &s.rules),
                }
                self.stopped
            }
        }
    }

    /// The DN an in-scope provision rule computes for `mv`.
    pub(super) fn provision_dn(&mut self, mv: MvId, rule: RuleIdx) -> Result<Option<String>, ()> {
        let mut log = Log::default();
        let (v, ctxs) = self.split();
        let result = dn_of(&v, ctxs, &mut log, mv, rule);
        self.flush(log);
        result
    }

    /// Joins or provisions an object of connector `cc` for `mv`.
    pub(super) fn outbound_link(
        &mut self,
        mv: MvId,
        cc: ConnIdx,
        rules: &[RuleIdx],
    ) -> Option<CsId> {
        for &r in rules {
            for cond in self.plan.rules[r].joins.iter().flatten() {
                self.build_cs_index(cc, &cond.target);
            }
        }
        let prov = rules
            .iter()
            .copied()
            .find(|&r| self.plan.rules[r].link() == LinkType::Provision);
        let mut dn = None;
        if let Some(p) = prov {
            dn = self.provision_dn(mv, p).ok()?;
            // Reverse join on the DN first.
            if let Some(d) = &dn
                && let Some(c) = self.state.cs_by_dn(cc, d)
            {
                let o = &self.state.cs()[c as usize];
                if o.link.is_none()
                    && !o.gone
                    && !o.placeholder
                    && Some(o.object_type) == self.plan.rules[p].target_type
                {
                    self.state.link(
                        c,
                        Link {
                            mv,
                            rule: p,
                            outbound: true,
                        },
                    );
                    self.state.cs_mut()[c as usize].provisioned_by = Some(p);
                    self.report.joins += 1;
                    self.note(Some(c), Some(mv), || {
                        format!("outbound: joined {d} by its DN")
                    });
                    return Some(c);
                }
            }
        }
        for &r in rules {
            let rule = &self.plan.rules[r];
            let Some(tty) = rule.target_type else {
                continue;
            };
            for group in &rule.joins {
                let candidates =
                    cs_candidates(self.state, self.plan, mv, cc, tty, group).unwrap_or_default();
                if candidates.len() == 1 {
                    let c = candidates[0];
                    self.state.link(
                        c,
                        Link {
                            mv,
                            rule: r,
                            outbound: true,
                        },
                    );
                    if let Some(p) = prov {
                        self.state.cs_mut()[c as usize].provisioned_by = Some(p);
                    }
                    self.report.joins += 1;
                    let dn = self.state.cs()[c as usize].dn.clone();
                    self.note(Some(c), Some(mv), || {
                        format!("outbound: joined {dn} by \"{}\"", rule.name())
                    });
                    return Some(c);
                }
            }
        }
        let p = prov?;
        let rule = &self.plan.rules[p];
        let tty = rule.target_type?;
        let Some(dn) = dn.filter(|d| !d.trim().is_empty()) else {
            self.error(SyncError {
                category: ErrorCategory::DataValidationFailure,
                cs: None,
                mv: Some(mv),
                rule: Some(rule.name().to_string()),
                code: None,
                message: "the dn flow gave no value: the object cannot be provisioned".into(),
            });
            return None;
        };
        if let Some(existing) = self.state.cs_by_dn(cc, &dn) {
            let holder = self.state.cs()[existing as usize].link.map(|l| l.mv);
            self.error(SyncError {
                category: ErrorCategory::DuplicateAttribute,
                cs: Some(existing),
                mv: Some(mv),
                rule: Some(rule.name().to_string()),
                code: None,
                message: format!(
                    "cannot provision {dn}: the DN is already held{}",
                    holder
                        .map(|h| format!(" by metaverse object {h}"))
                        .unwrap_or_default()
                ),
            });
            return None;
        }
        Some(self.provision(mv, cc, p, tty, &dn))
    }

    /// Creates the object provision rule `p` provisions for `mv` at `dn` in connector `cc`,
    /// linked to it.
    pub(super) fn provision(
        &mut self,
        mv: MvId,
        cc: ConnIdx,
        p: RuleIdx,
        tty: TypeIdx,
        dn: &str,
    ) -> CsId {
        let width = self.plan.connectors[cc].types[tty].len();
        let mut current = vec![Value::Null; width];
        if let Some(s) = self.plan.connectors[cc].types[tty].dn {
            current[s] = Value::str(dn);
        }
        let c = self
            .state
            .add_cs(new_object(cc, tty, dn, p, vec![Value::Null; width], None));
        self.set_cs_current(c, current);
        self.state.link(
            c,
            Link {
                mv,
                rule: p,
                outbound: true,
            },
        );
        self.created_cs.insert(c);
        self.report.provisions += 1;
        let cname = self.plan.connectors[cc].name.clone();
        self.note(Some(c), Some(mv), || {
            format!(
                "outbound: provisioned {dn} in {cname} by \"{}\"",
                self.plan.rules[p].name()
            )
        });
        c
    }

    /// A DN from the `dn` flow: an export object takes it, an existing object gets a rename.
    pub(super) fn set_dn(&mut self, c: CsId, dn: &str) {
        let o = &self.state.cs()[c as usize];
        let (dn_before, shown_before) = (o.dn.clone(), o.new_dn.clone());
        self.set_dn_unrecorded(c, dn);
        let o = &self.state.cs()[c as usize];
        // References to it carry the new DN (or the DN a rename stages).
        let shown =
            o.new_dn.as_ref().unwrap_or(&o.dn) != shown_before.as_ref().unwrap_or(&dn_before);
        let (link, renamed) = (o.link, o.dn != dn_before);
        if shown && let Some(l) = link {
            self.moved(l.mv);
        }
        if renamed {
            self.renamed(c);
        }
    }

    fn set_dn_unrecorded(&mut self, c: CsId, dn: &str) {
        let o = &self.state.cs()[c as usize];
        let before = o.new_dn.clone().unwrap_or_else(|| o.dn.clone());
        // DNs compare parsed: a new spelling of the same DN is not a rename.
        if !crate::dn::same(&before, dn)
            && let Some(l) = o.link
        {
            // Exports that name this object must name it by its new DN.
            self.target_changed(l.mv);
        }
        let o = &self.state.cs()[c as usize];
        if crate::dn::same(&o.dn, dn) {
            self.state.cs_mut()[c as usize].new_dn = None;
            return;
        }
        if o.export == Some(ExportOp::Add) {
            let connector = o.connector;
            let old = crate::engine::model::dn_key(&o.dn);
            self.state.unindex_dn(connector, &old, c);
            self.state
                .index_dn(connector, crate::engine::model::dn_key(dn), c);
            self.state.cs_mut()[c as usize].dn = dn.into();
        } else {
            self.state.cs_mut()[c as usize].new_dn = Some(dn.into());
        }
    }
}
