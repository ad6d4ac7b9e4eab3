//! Recompute: the values of one metaverse object from the inbound flows of its linked
//! objects, by precedence and merge type; deletion of a metaverse object no object keeps.
//!
//! Consumes: a metaverse object and the in-scope inbound rules of its linked objects.
//! Produces, computed from `&State` ([`compute`]): a [`Recomputed`] — the object's new values
//! (none for an object in error) or its deletion, the scopes evaluated on the way, the
//! references resolved and the errors and notes made. Applied ([`Run::apply_recompute`]): the
//! metaverse values, placeholders for references to objects not imported yet, or the deletion
//! with the deprovisioning of the objects provisioned from it.

use super::Run;
use super::eval::{Log, View, seed};
use super::inbound::{MemberOf, same_answers, scope_rules};
use super::refs::{self, InboundRef};
use super::trace::short;
use crate::engine::compile::{ConnIdx, RuleIdx};
use crate::engine::flow::{self, Outcome};
use crate::engine::model::{CsId, Link, MvId, State, Values};
use crate::engine::values::Dense;
use crate::eval::Ctx;
use crate::eval::interp::Object;
use crate::ir::MergeType;
use crate::sema::rules::LinkType;
use crate::value::Value;

/// One inbound flow that may contribute to a metaverse attribute: (target slot, precedence
/// key, source object, rule, flow index).
type Contribution = (usize, Precedence, CsId, RuleIdx, usize);

/// The order of inbound rules: precedence number, then connector, then rule.
type Precedence = (i64, ConnIdx, RuleIdx);

/// What recomputing one metaverse object gives.
#[derive(Debug)]
pub(super) enum Change {
    /// The object is not in the metaverse (any more).
    Absent,
    /// No linked object keeps it (no in-scope provision or stickyjoin rule): it is deleted.
    Delete,
    /// A flow or a reference made an error: the object is not changed (a new one is not
    /// projected).
    InError,
    /// Its new values (changed, or a new object).
    Set(Vec<Value>),
    Unchanged,
}

/// A recomputation of one metaverse object, computed from `&State`.
#[derive(Debug)]
pub(super) struct Recomputed {
    pub mv: MvId,
    /// Scopes of linked objects evaluated for it (the run keeps them).
    scopes: Vec<(CsId, Vec<RuleIdx>)>,
    refs: Vec<InboundRef>,
    log: Log,
    change: Change,
    /// For a recomputation made ahead of its turn: what it read.
    reads: Option<Reads>,
}

impl Recomputed {
    /// A recomputation of `mv` that changes nothing and read nothing: what one of an object
    /// no longer there gives, and where one that computes starts.
    fn nothing(mv: MvId) -> Recomputed {
        Recomputed {
            mv,
            scopes: Vec::new(),
            refs: Vec::new(),
            log: Log::default(),
            change: Change::Absent,
            reads: None,
        }
    }

    /// Gives a recomputation made ahead for a projection ([`compute_projection`]) the id the
    /// projection made. False (and unchanged) for any other, and for one that made an error
    /// (its errors name the object): its turn computes it again.
    pub(super) fn rekey(&mut self, mv: MvId) -> bool {
        if self.mv != PROJECTED || !self.log.errors.is_empty() {
            return false;
        }
        self.mv = mv;
        if let Some(reads) = &mut self.reads {
            for (_, link, _, _) in &mut reads.links {
                if let Some(l) = link {
                    l.mv = mv;
                }
            }
        }
        true
    }
}

/// What a recomputation read, to check that it still holds when its turn comes: whether the
/// object was new, its linked objects in order (their links and values), the scope it took
/// from the view's overlay, and the ISMEMBEROF answers of the scopes it evaluated. (The
/// references it resolved are in its `refs`.)
#[derive(Debug)]
struct Reads {
    created: bool,
    links: Vec<(CsId, Option<Link>, Values, Values)>,
    overlay: Option<(CsId, Vec<RuleIdx>)>,
    asked: Vec<MemberOf>,
}

/// What a recomputation evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slots {
    /// Every attribute.
    All,
    /// The reference attributes only; the others keep their values. Only for an object whose
    /// other values were computed from what it reads now ([`Memo`]): they would come out the
    /// same.
    Refs,
}

/// What the last recomputation of a metaverse object in this run read, when it was applied
/// without errors: its linked objects in order (their links, values and the scopes it used).
/// While all of it holds, recomputing the object again can only change its references (whose
/// targets may have been linked or unlinked since): a target linked later recomputes each of
/// its referrers (a group, each time one of its members is projected), and those recompute
/// their references only ([`Slots::Refs`]).
#[derive(Debug)]
pub(super) struct Memo {
    created: bool,
    links: Vec<Read>,
}

/// One linked object as a recomputation read it: its id, link, current and imported values,
/// and the in-scope rules it used.
type Read = (CsId, Option<Link>, Values, Values, Vec<RuleIdx>);

impl Memo {
    /// What a recomputation of `mv` reads now; None when a linked object's scope is not known
    /// (a recomputation would evaluate it).
    fn of(v: &View, mv: MvId) -> Option<Memo> {
        let m = v.state.mv().get(&mv)?;
        let links = in_order(v.state, &m.links)
            .into_iter()
            .map(|c| {
                let o = &v.state.cs()[c as usize];
                let rules = v.known_scope(c)?.to_vec();
                Some((c, o.link, o.current.clone(), o.imported.clone(), rules))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Memo {
            created: v.created_mv.contains(&mv),
            links,
        })
    }

    /// Whether `mv` reads now what it read.
    fn holds(&self, v: &View, mv: MvId) -> bool {
        let Some(m) = v.state.mv().get(&mv) else {
            return false;
        };
        v.created_mv.contains(&mv) == self.created
            && m.links.len() == self.links.len()
            && in_order(v.state, &m.links).iter().zip(&self.links).all(
                |(&c, (rc, link, cur, imp, rules))| {
                    c == *rc
                        && unchanged(v.state, c, link, cur, imp)
                        && v.known_scope(c) == Some(rules.as_slice())
                },
            )
    }
}

/// A metaverse object's linked objects in the order a recomputation reads them: by connector,
/// then id.
fn in_order(state: &State, links: &[CsId]) -> Vec<CsId> {
    let mut links = links.to_vec();
    links.sort_by_key(|&c| (state.cs()[c as usize].connector, c));
    links
}

/// Whether linked object `c` still has the link and the value allocations a recomputation read.
fn unchanged(state: &State, c: CsId, link: &Option<Link>, cur: &Values, imp: &Values) -> bool {
    let o = &state.cs()[c as usize];
    o.link == *link && Values::ptr_eq(&o.current, cur) && Values::ptr_eq(&o.imported, imp)
}

/// Recomputes metaverse object `mv` from its linked objects' in-scope inbound flows. With
/// `reads`, what it read is kept, for `Run::recompute_still_valid`.
pub(super) fn compute(v: &View, ctxs: &mut [Ctx], mv: MvId, reads: bool) -> Recomputed {
    compute_slots(v, ctxs, mv, reads, Slots::All)
}

fn compute_slots(v: &View, ctxs: &mut [Ctx], mv: MvId, reads: bool, slots: Slots) -> Recomputed {
    let Some(m) = v.state.mv().get(&mv) else {
        return Recomputed::nothing(mv);
    };
    let links = in_order(v.state, &m.links);
    let subject = Subject {
        mv,
        ty: m.object_type,
        old: &m.attrs,
        created: v.created_mv.contains(&mv),
    };
    compute_subject(
        v,
        ctxs,
        subject,
        &links,
        reads.then_some(&|c| v.state.cs()[c as usize].link),
        slots,
    )
}

/// Where a recomputation made ahead for an object that its turn will project stands for the
/// metaverse object's id, not known yet ([`Recomputed::rekey`]).
pub(super) const PROJECTED: MvId = MvId::MAX;

/// The recomputation of the metaverse object that projecting object `id` by rule `rule` (to
/// type `ty`) will make, computed from `&State` ahead of the object's turn as if it were
/// projected: a new object, linked to `id` alone, with no values yet. Its id is
/// [`PROJECTED`] until the projection gives it one. Only for a plan whose inbound flows draw
/// no random numbers (they are seeded by the metaverse object's id).
pub(super) fn compute_projection(
    v: &View,
    ctxs: &mut [Ctx],
    id: CsId,
    rule: RuleIdx,
    ty: usize,
) -> Recomputed {
    let empty = Values::new(v.plan.metaverse[ty].len());
    let subject = Subject {
        mv: PROJECTED,
        ty,
        old: &empty,
        created: true,
    };
    let link = Link {
        mv: PROJECTED,
        rule,
        outbound: false,
    };
    compute_subject(v, ctxs, subject, &[id], Some(&|_| Some(link)), Slots::All)
}

/// The metaverse object a recomputation computes: its id, type, values and whether this sync
/// created it.
struct Subject<'a> {
    mv: MvId,
    ty: usize,
    old: &'a Values,
    created: bool,
}

/// Recomputes `subject` from `links` (in the order [`in_order`] gives). With `link_of` (the
/// link each linked object has as the recomputation reads it), what it read is kept.
fn compute_subject(
    v: &View,
    ctxs: &mut [Ctx],
    subject: Subject,
    links: &[CsId],
    link_of: Option<&dyn Fn(CsId) -> Option<Link>>,
    slots: Slots,
) -> Recomputed {
    let Subject {
        mv,
        ty,
        old,
        created,
    } = subject;
    seed(ctxs, 2, mv);
    let mut r = Recomputed::nothing(mv);
    let mut asked = Vec::new();
    if let Some(link_of) = link_of {
        r.reads = Some(Reads {
            created,
            links: links
                .iter()
                .map(|&c| {
                    let o = &v.state.cs()[c as usize];
                    (c, link_of(c), o.current.clone(), o.imported.clone())
                })
                .collect(),
            overlay: v
                .overlay
                .and_then(|(c, rules)| links.contains(&c).then(|| (c, rules.to_vec()))),
            asked: Vec::new(),
        });
    }
    // The in-scope rules of the links that flow to this type, in precedence order (then link
    // order), and their flows' contributions grouped by slot: (slot, precedence key, object,
    // rule, flow index) in the order a stable sort of every contribution by (slot, precedence)
    // gives.
    let mut ranked: Vec<(Precedence, usize, CsId, RuleIdx)> = Vec::new();
    let mut keep = false;
    for (at, &c) in links.iter().enumerate() {
        let scoped;
        let rules = match v.known_scope(c) {
            Some(rules) => rules,
            None => {
                scoped = scope_rules(v, ctxs, &mut r.log, &mut asked, c);
                r.scopes.push((c, scoped.clone()));
                &scoped[..]
            }
        };
        for &rx in rules {
            let rule = &v.plan.rules[rx];
            if matches!(rule.link(), LinkType::Provision | LinkType::StickyJoin)
                && !v.state.cs()[c as usize].link.is_some_and(|l| l.outbound)
            {
                keep = true;
            }
            if rule.target_type.is_some_and(|t| t != ty) {
                continue;
            }
            ranked.push(((rule.def.precedence, rule.connector, rx), at, c, rx));
        }
    }
    if !keep {
        if let Some(reads) = &mut r.reads {
            reads.asked = asked;
        }
        r.change = Change::Delete;
        return r;
    }
    ranked.sort_unstable_by_key(|x| (x.0, x.1));
    let mut contributions: Vec<Contribution> =
        Vec::with_capacity(ranked.iter().map(|x| v.plan.rules[x.3].flows.len()).sum());
    for &(key, _, c, rx) in &ranked {
        let rule = &v.plan.rules[rx];
        for (fi, f) in rule.flows.iter().enumerate() {
            // A rule for any type (`*`) flows to the attribute of this object's type.
            let slot = match rule.target_type {
                Some(_) => f.slot,
                None => v.plan.metaverse[ty].slot(&f.target),
            };
            if let Some(slot) = slot
                && (slots == Slots::All || v.plan.metaverse[ty].is_ref(slot))
            {
                contributions.push((slot, key, c, rx, fi));
            }
        }
    }
    let contributions = flow::by_slot(&contributions, v.plan.metaverse[ty].len(), |c| c.0);
    // The linked objects' values laid out for the evaluators, once per object.
    let dense: Vec<(CsId, Dense, Dense)> = links
        .iter()
        .filter(|&&c| contributions.iter().any(|x| x.2 == c))
        .map(|&c| {
            let o = &v.state.cs()[c as usize];
            (c, o.current.dense(), o.imported.dense())
        })
        .collect();
    let tplan = &v.plan.metaverse[ty];
    let mut new = match slots {
        Slots::All => vec![Value::Null; tplan.len()],
        Slots::Refs => old.to_vec(),
    };
    // One slot's contributions, in precedence order (reused from slot to slot).
    let mut values: Vec<Value> = Vec::new();
    let mut i = 0;
    while i < contributions.len() {
        let slot = contributions[i].0;
        let end = contributions[i..]
            .iter()
            .position(|c| c.0 != slot)
            .map_or(contributions.len(), |p| i + p);
        let merge = v.plan.rules[contributions[i].3].flows[contributions[i].4].merge;
        values.clear();
        for &(_, _, c, rx, fi) in &contributions[i..end] {
            let rule = &v.plan.rules[rx];
            let f = &rule.flows[fi];
            let Some((_, current, imported)) = dense.iter().find(|d| d.0 == c) else {
                continue;
            };
            let obj = Object {
                attrs: current,
                imported,
            };
            let value = v
                .eval_flow(ctxs, &mut r.log, rule, f, obj, Some(c), Some(mv), created)
                .contribution();
            let target = &tplan.names[slot];
            if !matches!(value, Value::Null) {
                v.note(&mut r.log, Some(c), Some(mv), || {
                    format!(
                        "  flow {target} <- {} from \"{}\"",
                        short(&value),
                        rule.name()
                    )
                });
            }
            let decided = !matches!(value, Value::Null | Value::IgnoreThisFlow)
                && !matches!(merge, MergeType::Merge | MergeType::MergeCaseInsensitive);
            let value = if tplan.is_ref(slot) {
                refs::inbound_values(v, &mut r.log, &mut r.refs, c, value)
            } else {
                value
            };
            values.push(value);
            if decided {
                break;
            }
        }
        let (_, multi) = tplan.kinds[slot];
        new[slot] = match flow::resolve(merge, &values) {
            Outcome::Set(x) => flow::shape(x, multi),
            Outcome::Remove => Value::Null,
            Outcome::Keep => old[slot].clone(),
        };
        if !new[slot].is_null() || !old[slot].is_null() {
            let target = &tplan.names[slot];
            let shown = &new[slot];
            v.note(&mut r.log, None, Some(mv), || {
                format!("  => {target} = {}", short(shown))
            });
        }
        i = end;
    }
    if let Some(reads) = &mut r.reads {
        reads.asked = asked;
    }
    r.change = if !r.log.errors.is_empty() {
        Change::InError
    } else if !old.eq_dense(&new) || created {
        Change::Set(new)
    } else {
        Change::Unchanged
    };
    r
}

impl Run<'_> {
    /// Recomputes every dirty metaverse object, in id order.
    pub(super) fn recompute_dirty(&mut self) {
        while let Some(mv) = self.dirty.pop_first() {
            self.recompute(mv);
            if self.stopped {
                return;
            }
        }
    }

    /// Recomputes the objects whose references waited for every inbound change, in id order.
    pub(super) fn recompute_deferred(&mut self) {
        while let Some(mv) = self.deferred.pop_first() {
            self.recompute(mv);
            self.recompute_dirty();
        }
    }

    /// Recomputes one metaverse object and applies the result (the one computed ahead if it
    /// still holds).
    pub(super) fn recompute(&mut self, mv: MvId) {
        let memo = self.memo.remove(&mv);
        if let Some(r) = self.ahead_recompute.take_if(|r| r.mv == mv) {
            if self.recompute_still_valid(&r) {
                self.recomputed_ahead += 1;
                self.apply_remembered(*r);
                return;
            }
            self.recomputed_again += 1;
        }
        // Only its references can change while what it reads holds (its values are a
        // function of what it reads; with a lineage traced, every flow is noted again).
        let (v, ctxs) = self.split();
        let slots = match memo {
            Some(m) if !v.tracer.on() && m.holds(&v, mv) => Slots::Refs,
            _ => Slots::All,
        };
        let r = compute_slots(&v, ctxs, mv, false, slots);
        self.apply_remembered(r);
    }

    /// Applies a recomputation and, when it made no error, remembers what it read
    /// ([`Memo`]).
    fn apply_remembered(&mut self, r: Recomputed) {
        let mv = r.mv;
        let clean =
            r.log.errors.is_empty() && matches!(r.change, Change::Set(_) | Change::Unchanged);
        self.apply_recompute(r);
        if clean && self.plan.references_apart {
            let (v, _) = self.split();
            if let Some(m) = Memo::of(&v, mv) {
                self.memo.insert(mv, m);
            }
        }
    }

    /// Whether a recomputation made ahead read nothing that changed since: the object's
    /// values, whether it is new, its linked objects (their links and values), the scopes it
    /// took as known and the ones it evaluated (which must not be known yet, or this turn
    /// would not evaluate them), the ISMEMBEROF answers and the references it resolved.
    fn recompute_still_valid(&self, r: &Recomputed) -> bool {
        let Some(reads) = &r.reads else {
            return false;
        };
        let mv = r.mv;
        if self
            .footprint
            .as_ref()
            .is_none_or(|f| f.values.contains(&mv))
            || self.created_mv.contains(&mv) != reads.created
        {
            return false;
        }
        let Some(m) = self.state.mv().get(&mv) else {
            return false;
        };
        if m.links.len() != reads.links.len() {
            return false;
        }
        let same_links = in_order(self.state, &m.links)
            .iter()
            .zip(&reads.links)
            .all(|(&c, (rc, link, cur, imp))| c == *rc && unchanged(self.state, c, link, cur, imp));
        if !same_links {
            return false;
        }
        if let Some((c, rules)) = &reads.overlay
            && !r.scopes.iter().any(|(s, _)| s == c)
            && self.inscope.get(c) != Some(rules)
        {
            return false;
        }
        r.scopes.iter().all(|(c, _)| !self.inscope.contains_key(c))
            && same_answers(self.state, self.plan, &reads.asked)
            && r.refs.iter().all(|x| refs::still_resolves(self.state, x))
    }

    /// Applies a recomputation: the scopes it evaluated are kept for the run, references
    /// recorded (placeholders created), errors and notes recorded, then the object deleted,
    /// left alone (in error; a new object is not projected) or given its new values.
    pub(super) fn apply_recompute(&mut self, r: Recomputed) {
        let mv = r.mv;
        self.memo.remove(&mv);
        for (c, rules) in r.scopes {
            self.inscope.insert(c, rules);
        }
        self.apply_inbound_refs(r.refs);
        self.flush(r.log);
        match r.change {
            Change::Absent | Change::Unchanged => {}
            Change::Delete => {
                self.note(None, Some(mv), || format!("metaverse object {mv} deleted: no joined object has an in-scope provision or stickyjoin rule"));
                self.delete_mv(mv);
            }
            Change::InError => {
                if self.created_mv.contains(&mv) {
                    self.note(None, Some(mv), || {
                        format!("not projected: metaverse object {mv} has a sync error")
                    });
                    let links = self
                        .state
                        .mv()
                        .get(&mv)
                        .map(|m| m.links.clone())
                        .unwrap_or_default();
                    for c in links {
                        self.state.unlink(c);
                    }
                    self.state.mv_mut().remove(&mv);
                    self.created_mv.remove(&mv);
                    self.outbound.remove(&mv);
                    self.report.projections = self.report.projections.saturating_sub(1);
                } else {
                    self.note(None, Some(mv), || {
                        format!("metaverse object {mv} not changed: it has a sync error")
                    });
                }
            }
            Change::Set(new) => {
                self.set_mv_attrs(mv, new);
                self.outbound.insert(mv);
                self.report.mv_updates += 1;
            }
        }
    }

    pub(super) fn delete_mv(&mut self, mv: MvId) {
        let Some(m) = self.state.mv().get(&mv) else {
            return;
        };
        let links = m.links.clone();
        for c in links {
            let provisioned = self.state.cs()[c as usize].provisioned_by.is_some();
            self.state.unlink(c);
            self.unlinked(c, mv);
            if provisioned && !self.state.cs()[c as usize].gone {
                self.deprovision(c);
            }
        }
        let empty = vec![Value::Null; self.state.mv()[&mv].attrs.len()];
        self.set_mv_attrs(mv, empty);
        self.state.mv_mut().remove(&mv);
        self.outbound.remove(&mv);
        self.report.mv_deletes += 1;
    }
}
