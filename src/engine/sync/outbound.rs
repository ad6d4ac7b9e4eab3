//! Outbound processing of one metaverse object: scope of the outbound rules per target
//! connector, provisioning (with the DN its `dn` flow computes), outbound join,
//! deprovisioning, and DN changes (renames).
//!
//! Consumes: a metaverse object and the outbound rules of its type. Produces: links to target
//! objects, new export objects, staged deletes and renames; then the export flows of every
//! linked target object (`export_flows`).

use super::Run;
use crate::engine::compile::{ConnIdx, RuleIdx};
use crate::engine::flow;
use crate::engine::model::{CsId, CsObject, ErrorCategory, ExportOp, Link, MvId, SyncError};
use crate::engine::scope;
use crate::eval::interp::Object;
use crate::sema::rules::LinkType;
use crate::value::Value;

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

    pub(super) fn outbound_mv(&mut self, mv: MvId) {
        self.seed_for(3, mv);
        let Some(m) = self.state.mv().get(&mv) else {
            return;
        };
        let ty = m.object_type;
        for cc in 0..self.plan.connectors.len() {
            let Some(all) = self.plan.outbound.get(&(cc, ty)) else {
                continue;
            };
            let mut rules = Vec::new();
            for &r in all {
                let rule = &self.plan.rules[r];
                let m = &self.state.mv()[&mv];
                let ok = scope::in_scope(
                    &self.plan.program,
                    &rule.scope,
                    &m.attrs,
                    &m.attrs,
                    &mut self.ctxs[cc],
                    &|_| false,
                );
                match ok {
                    Ok(()) => rules.push(r),
                    Err(miss) => self.note(None, Some(mv), || {
                        format!(
                            "outbound not in scope: \"{}\": {}",
                            rule.name(),
                            miss.join("; ")
                        )
                    }),
                }
            }
            let linked = self.state.linked_in(mv, cc);
            let cs = match linked {
                Some(c) => {
                    let obj_ty = self.state.cs()[c as usize].object_type;
                    let prov = rules.iter().copied().find(|&r| {
                        self.plan.rules[r].link() == LinkType::Provision
                            && self.plan.rules[r].target_type == Some(obj_ty)
                    });
                    let o = &self.state.cs()[c as usize];
                    if o.provisioned_by.is_some() && prov.is_none() {
                        self.note(Some(c), Some(mv), || {
                            format!(
                                "deprovisioned from {}: no provision rule in scope",
                                self.plan.connectors[cc].name
                            )
                        });
                        self.state.unlink(c);
                        self.deprovision(c);
                        self.target_changed(mv);
                        continue;
                    }
                    if let Some(l) = o.link
                        && l.outbound
                        && !rules.contains(&l.rule)
                        && prov.is_none()
                    {
                        self.state.unlink(c);
                        self.report.disconnects += 1;
                        self.target_changed(mv);
                        continue;
                    }
                    if prov.is_some() {
                        self.state.cs_mut()[c as usize].provisioned_by = prov;
                    }
                    c
                }
                None => match self.outbound_link(mv, cc, &rules) {
                    Some(c) => {
                        if let Some(waiting) = self.state.take_awaiting_refs(mv) {
                            self.revisit.extend(waiting);
                        }
                        c
                    }
                    None => continue,
                },
            };
            self.export_flows(mv, cs, &rules);
            if self.stopped {
                return;
            }
        }
    }

    /// The DN an in-scope provision rule computes for `mv`.
    pub(super) fn provision_dn(&mut self, mv: MvId, rule: RuleIdx) -> Result<Option<String>, ()> {
        let r = &self.plan.rules[rule];
        let Some(f) = r.flows.iter().find(|f| f.target == "dn") else {
            return Ok(None);
        };
        let m = &self.state.mv()[&mv];
        match self.plan.program.eval(
            &mut self.ctxs[r.connector],
            f.id as usize,
            &f.expr,
            Object {
                attrs: &m.attrs,
                imported: &m.attrs,
            },
        ) {
            Ok(v) => {
                let dn = flow::shape(v, false).as_str().map(str::to_string);
                match dn {
                    Some(d) if !d.trim().is_empty() => {
                        if let Err(message) = self.check_dn(rule, f, mv, &d) {
                            self.error(SyncError {
                                category: ErrorCategory::DataValidationFailure,
                                cs: None,
                                mv: Some(mv),
                                rule: Some(r.name().to_string()),
                                code: None,
                                message,
                            });
                            return Err(());
                        }
                        Ok(Some(d))
                    }
                    other => Ok(other),
                }
            }
            Err(e) => {
                self.eval_error(None, Some(mv), r, "dn", *e);
                Err(())
            }
        }
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
                let candidates = self.cs_candidates(mv, cc, tty, group);
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
        let width = self.plan.connectors[cc].types[tty].len();
        let mut current = vec![Value::Null; width];
        if let Some(s) = self.plan.connectors[cc].types[tty].dn {
            current[s] = Value::str(dn.as_str());
        }
        let c = self.state.add_cs(CsObject {
            connector: cc,
            object_type: tty,
            dn: dn.as_str().into(),
            anchor: None,
            imported: vec![Value::Null; width].into(),
            current: vec![Value::Null; width].into(),
            pending_import: None,
            export: Some(ExportOp::Add),
            new_dn: None,
            link: None,
            provisioned_by: Some(p),
            placeholder: false,
            gone: false,
        });
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
        Some(c)
    }

    /// Validates a DN the `dn` flow `f` of outbound rule `rule` produced for `mv` (DECISIONS
    /// 27): it must parse, and attribute values concatenated into RDN values must not change
    /// its structure. The error is the sync error's message.
    pub(super) fn check_dn(
        &mut self,
        rule: RuleIdx,
        f: &crate::engine::compile::FlowPlan,
        mv: MvId,
        dn: &str,
    ) -> Result<(), String> {
        let r = &self.plan.rules[rule];
        let Some(m) = self.state.mv().get(&mv) else {
            return Ok(());
        };
        let names = &self.plan.metaverse[r.source_type].names;
        crate::engine::dnflow::check(
            f.dn_template.as_deref(),
            dn,
            &mut self.ctxs[r.connector],
            Object {
                attrs: &m.attrs,
                imported: &m.attrs,
            },
            names,
        )
        .map_err(|e| format!("flow to dn: {e}"))
    }

    /// A DN from the `dn` flow: an export object takes it, an existing object gets a rename.
    pub(super) fn set_dn(&mut self, c: CsId, dn: &str) {
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
