//! Compiles a checked bundle into the form the engine runs.
//!
//! Consumes: a [`sema::Bundle`] without errors. Produces: [`Plan`] — connectors and metaverse
//! object types indexed by position, attribute slots, and the sync rules grouped for fast
//! lookup: inbound rules per (connector, connector object type), outbound rules per (connector,
//! metaverse object type), each in precedence order (ties broken by connector order, then
//! declaration order), with scope clauses, join conditions and flows resolved to slots.

use crate::eval::{EngineKind, Program};
use crate::ir;
use crate::ir::{Direction, MergeType};
use crate::sema::rules::{LinkType, RuleDef, ScopeClauseDef, ScopeOp};
use crate::sema::schema::ObjectDef;
use crate::sema::types::Base;
use crate::sema::{Bundle, schema::ConnectorDef};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Index of a connector in [`Plan::connectors`].
pub type ConnIdx = usize;
/// Index of an object type in its connector (or in the metaverse).
pub type TypeIdx = usize;
/// Index of a rule in [`Plan::rules`].
pub type RuleIdx = usize;

/// An object type with its attribute slots.
#[derive(Debug, Clone)]
pub struct TypePlan {
    pub name: Arc<str>,
    pub def: ObjectDef,
    /// Slot of each attribute, by name (hashed: imports and index upkeep look names up for
    /// every value they read or write).
    pub slots: HashMap<String, usize, foldhash::fast::RandomState>,
    /// Per slot: base type and multi-valuedness.
    pub kinds: Vec<(Base, bool)>,
    /// Per slot: the attribute name (shared by every export delta that names it).
    pub names: Vec<Arc<str>>,
    /// Per slot: values must be unique among the connector's objects.
    pub unique: Vec<bool>,
    /// The anchor's slot (connector object types).
    pub anchor: Option<usize>,
    /// The slot of the implicit `dn` (connector object types).
    pub dn: Option<usize>,
}

impl TypePlan {
    fn new(def: &ObjectDef) -> TypePlan {
        let mut names: Vec<Arc<str>> = vec![Arc::from(""); def.attrs.len()];
        let mut kinds = vec![(Base::Any, false); def.attrs.len()];
        let mut unique = vec![false; def.attrs.len()];
        let mut slots = HashMap::with_capacity_and_hasher(def.attrs.len(), Default::default());
        for a in def.attrs.values() {
            let s = a.slot as usize;
            names[s] = a.name.as_str().into();
            kinds[s] = (a.base, a.multi);
            unique[s] = a.unique;
            slots.insert(a.name.clone(), s);
        }
        TypePlan {
            name: def.name.as_str().into(),
            anchor: def.anchor.as_ref().and_then(|a| slots.get(a).copied()),
            dn: slots.get("dn").copied(),
            def: def.clone(),
            slots,
            kinds,
            names,
            unique,
        }
    }

    pub fn slot(&self, name: &str) -> Option<usize> {
        self.slots.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn is_ref(&self, slot: usize) -> bool {
        self.kinds.get(slot).is_some_and(|k| k.0 == Base::Ref)
    }
}

#[derive(Debug, Clone)]
pub struct ConnectorPlan {
    pub name: String,
    pub kind: String,
    pub types: Vec<TypePlan>,
    pub params: Vec<String>,
}

impl ConnectorPlan {
    pub fn type_index(&self, name: &str) -> Option<TypeIdx> {
        self.types.iter().position(|t| *t.name == *name)
    }
}

/// A scope clause with its attribute resolved.
#[derive(Debug, Clone)]
pub enum ScopePlan {
    Compare {
        attr: String,
        slot: Option<usize>,
        op: ScopeOp,
        value: Option<Arc<str>>,
    },
    /// An expression clause and its number in [`Plan::program`].
    Expr(ir::Expr, u32),
}

#[derive(Debug, Clone)]
pub struct JoinPlan {
    /// Slot on the rule's source object type.
    pub source: usize,
    /// Attribute name on the target side (resolved per target type at join time for `*`).
    pub target: String,
    pub case_sensitive: bool,
}

#[derive(Debug, Clone)]
pub struct FlowPlan {
    /// Target attribute name (`dn` for the DN of provisioned objects).
    pub target: String,
    /// The target attribute's slot in the rule's target type (None when the rule targets any
    /// metaverse type, `*`, or the type has no such attribute).
    pub slot: Option<usize>,
    pub expr: ir::Expr,
    /// The expression's number in [`Plan::program`].
    pub id: u32,
    pub merge: MergeType,
    pub once: bool,
    /// For an outbound `dn` flow: the operands in RDN value positions, checked on every DN
    /// it produces (`engine::dnflow`).
    pub dn_template: Option<Box<super::dnflow::DnTemplate>>,
}

#[derive(Debug, Clone)]
pub struct RulePlan {
    pub def: RuleDef,
    pub connector: ConnIdx,
    /// Inbound: the connector object type; outbound: the metaverse type.
    pub source_type: TypeIdx,
    /// Inbound: the metaverse type (None for `*`); outbound: the connector object type.
    pub target_type: Option<TypeIdx>,
    pub scope: Vec<Vec<ScopePlan>>,
    pub joins: Vec<Vec<JoinPlan>>,
    pub flows: Vec<FlowPlan>,
}

impl RulePlan {
    pub fn name(&self) -> &str {
        &self.def.name
    }

    pub fn link(&self) -> LinkType {
        self.def.link
    }
}

/// The compiled bundle.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every flow and scope expression, compiled for the run's evaluator.
    pub program: Arc<Program>,
    pub connectors: Vec<ConnectorPlan>,
    pub metaverse: Vec<TypePlan>,
    pub rules: Vec<RulePlan>,
    /// Inbound rules per (connector, connector type), in precedence order.
    pub inbound: BTreeMap<(ConnIdx, TypeIdx), Vec<RuleIdx>>,
    /// Outbound rules per (connector, metaverse type), in precedence order.
    pub outbound: BTreeMap<(ConnIdx, TypeIdx), Vec<RuleIdx>>,
    /// Per (connector, metaverse type, connector type): the slots of the target type that an
    /// outbound rule of the connector for the metaverse type flows to (the `dn` aside), in
    /// order. Export flow removes a managed attribute's value when no in-scope rule gives one.
    pub managed: BTreeMap<(ConnIdx, TypeIdx, TypeIdx), Vec<usize>>,
    /// By (connector, object type): the slots whose confirmed imported values a sync reads
    /// (`ImportedValue` in an inbound rule's flows; the target values an outbound merge flow
    /// keeps), sorted. A change of the other imported values that leaves the current ones as
    /// they were changes nothing a sync computes.
    pub reads_imported: BTreeMap<(ConnIdx, TypeIdx), Vec<usize>>,
    /// By (connector, object type): the slots whose confirmed imported values an outbound
    /// merge flow keeps (a part of `reads_imported`), sorted. A change of the others that
    /// leaves the current values as they were is a confirmation that outbound sync need not
    /// see (`PendingImport::InboundUpdate`).
    pub merges_imported: BTreeMap<(ConnIdx, TypeIdx), Vec<usize>>,
    /// By (connector, object type): the slots whose current values outbound sync reads or
    /// writes: those an outbound rule flows to (for any metaverse type) and the unique ones,
    /// sorted. An import that changes other current values only, with the DN and the values
    /// `merges_imported` names as they were, is a confirmation (`PendingImport::InboundUpdate`).
    pub outbound_current: BTreeMap<(ConnIdx, TypeIdx), Vec<usize>>,
    /// Whether a metaverse object's references can be resolved apart from its other values
    /// (`engine::sync::recompute::Memo`): its values are a function of what its recomputation
    /// reads (no inbound flow calls a random function, `Guid` or `RandomNum`), and no other
    /// object reads its references before the outbound pass (no inbound join rule compares a
    /// reference attribute).
    pub references_apart: bool,
    /// Whether an inbound flow calls a random function (`Guid`, `RandomNum`): its values then
    /// depend on the metaverse object's id, which seeds them, and a projection's values are not
    /// computed before the projection gives it its id (`engine::sync::inbound::ahead`).
    pub inbound_random: bool,
}

impl Plan {
    /// Builds the plan for the preferred evaluator (the JIT where available).
    pub fn new(bundle: &Bundle) -> Plan {
        Plan::with_engine(bundle, EngineKind::preferred())
    }

    /// Builds the plan with its expressions compiled for `engine`. Disabled rules are left out.
    pub fn with_engine(bundle: &Bundle, engine: EngineKind) -> Plan {
        let connectors: Vec<ConnectorPlan> = bundle
            .schema
            .connector_order
            .iter()
            .filter_map(|n| bundle.schema.connectors.get(n))
            .map(|c: &ConnectorDef| ConnectorPlan {
                name: c.name.clone(),
                kind: c.kind.clone(),
                types: c.objects.values().map(TypePlan::new).collect(),
                params: c.params.keys().cloned().collect(),
            })
            .collect();
        let metaverse: Vec<TypePlan> = bundle
            .schema
            .metaverse
            .values()
            .map(TypePlan::new)
            .collect();
        let conn_index = |name: &str| connectors.iter().position(|c| c.name == name);
        let mv_index = |name: &str| metaverse.iter().position(|t| *t.name == *name);
        let mut rules = Vec::new();
        for r in bundle.rules.iter().filter(|r| !r.disabled) {
            let Some(connector) = conn_index(&r.connector) else {
                continue;
            };
            let c = &connectors[connector];
            let (source_type, target_type, source_plan) = match r.direction {
                Direction::Inbound => {
                    let Some(s) = c.type_index(&r.source) else {
                        continue;
                    };
                    (s, r.target.as_deref().and_then(mv_index), &c.types[s])
                }
                Direction::Outbound => {
                    let Some(s) = mv_index(&r.source) else {
                        continue;
                    };
                    let t = r.target.as_deref().and_then(|t| c.type_index(t));
                    (s, t, &metaverse[s])
                }
            };
            let scope = r
                .scope
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|c| match c {
                            ScopeClauseDef::Compare { attr, op, value } => ScopePlan::Compare {
                                attr: attr.clone(),
                                slot: source_plan.slot(attr),
                                op: *op,
                                value: value.as_deref().map(Arc::from),
                            },
                            ScopeClauseDef::Expr(_, e) => ScopePlan::Expr(e.clone(), 0),
                        })
                        .collect()
                })
                .collect();
            let joins = r
                .joins
                .iter()
                .map(|g| {
                    g.iter()
                        .filter_map(|j| {
                            Some(JoinPlan {
                                source: source_plan.slot(&j.source)?,
                                target: j.target.clone(),
                                case_sensitive: j.case_sensitive,
                            })
                        })
                        .collect()
                })
                .collect();
            // A joinnoflow rule joins and flows nothing (the checker warns about its flows).
            let flows = r
                .flows
                .iter()
                .filter(|_| r.link != LinkType::JoinNoFlow)
                .map(|f| FlowPlan {
                    target: f.target.clone(),
                    slot: match r.direction {
                        Direction::Inbound => target_type.map(|t| &metaverse[t]),
                        Direction::Outbound => target_type.map(|t| &c.types[t]),
                    }
                    .and_then(|t| t.slot(&f.target)),
                    expr: f.ir.clone(),
                    id: 0,
                    merge: f.merge,
                    once: f.once,
                    dn_template: (r.direction == Direction::Outbound && f.target == "dn")
                        .then(|| super::dnflow::template(&f.ir).map(Box::new))
                        .flatten(),
                })
                .collect();
            rules.push(RulePlan {
                def: r.clone(),
                connector,
                source_type,
                target_type,
                scope,
                joins,
                flows,
            });
        }
        let mut inbound: BTreeMap<(ConnIdx, TypeIdx), Vec<RuleIdx>> = BTreeMap::new();
        let mut outbound: BTreeMap<(ConnIdx, TypeIdx), Vec<RuleIdx>> = BTreeMap::new();
        for (i, r) in rules.iter().enumerate() {
            let key = (r.connector, r.source_type);
            match r.def.direction {
                Direction::Inbound => inbound.entry(key).or_default().push(i),
                Direction::Outbound => outbound.entry(key).or_default().push(i),
            }
        }
        let order = |v: &mut Vec<RuleIdx>| {
            v.sort_by_key(|&i| (rules[i].def.precedence, rules[i].connector, i))
        };
        inbound.values_mut().for_each(order);
        outbound.values_mut().for_each(order);
        let mut managed: BTreeMap<(ConnIdx, TypeIdx, TypeIdx), Vec<usize>> = BTreeMap::new();
        for (&(cc, mvty), list) in &outbound {
            for &r in list {
                let rule = &rules[r];
                let Some(tty) = rule.target_type else {
                    continue;
                };
                let dn = connectors[cc].types[tty].dn;
                let slots = managed.entry((cc, mvty, tty)).or_default();
                slots.extend(
                    rule.flows
                        .iter()
                        .filter_map(|f| f.slot)
                        .filter(|&s| Some(s) != dn),
                );
            }
        }
        for slots in managed.values_mut() {
            slots.sort_unstable();
            slots.dedup();
        }
        let mut outbound_current: BTreeMap<(ConnIdx, TypeIdx), Vec<usize>> = BTreeMap::new();
        for (&(cc, _, tty), slots) in &managed {
            outbound_current
                .entry((cc, tty))
                .or_default()
                .extend(slots.iter().copied());
        }
        for (cc, conn) in connectors.iter().enumerate() {
            for (tty, t) in conn.types.iter().enumerate() {
                let unique = (0..t.unique.len()).filter(|&s| t.unique[s]);
                outbound_current
                    .entry((cc, tty))
                    .or_default()
                    .extend(unique);
            }
        }
        for slots in outbound_current.values_mut() {
            slots.sort_unstable();
            slots.dedup();
        }
        let mut reads_imported: BTreeMap<(ConnIdx, TypeIdx), Vec<usize>> = BTreeMap::new();
        let mut merges_imported: BTreeMap<(ConnIdx, TypeIdx), Vec<usize>> = BTreeMap::new();
        let mut inbound_random = false;
        for r in &rules {
            match r.def.direction {
                Direction::Inbound => {
                    for f in &r.flows {
                        f.expr.visit(&mut |e| {
                            if let ir::Node::Call { name, .. } = e.node {
                                inbound_random |= matches!(name, "Guid" | "RandomNum");
                            }
                        });
                    }
                    let slots = reads_imported
                        .entry((r.connector, r.source_type))
                        .or_default();
                    for f in &r.flows {
                        f.expr.visit(&mut |e| {
                            if let ir::Node::Imported(s) = e.node {
                                slots.push(s as usize);
                            }
                        });
                    }
                }
                Direction::Outbound => {
                    let Some(tty) = r.target_type else { continue };
                    merges_imported
                        .entry((r.connector, tty))
                        .or_default()
                        .extend(
                            r.flows
                                .iter()
                                .filter(|f| {
                                    matches!(
                                        f.merge,
                                        MergeType::Merge | MergeType::MergeCaseInsensitive
                                    )
                                })
                                .filter_map(|f| f.slot),
                        );
                }
            }
        }
        for slots in merges_imported.values_mut() {
            slots.sort_unstable();
            slots.dedup();
        }
        for (key, slots) in &merges_imported {
            reads_imported
                .entry(*key)
                .or_default()
                .extend(slots.iter().copied());
        }
        for slots in reads_imported.values_mut() {
            slots.sort_unstable();
            slots.dedup();
        }
        // A join on an attribute that is a reference in some metaverse type reads references.
        let joins_on_refs = rules.iter().any(|r| {
            r.def.direction == Direction::Inbound
                && r.joins.iter().flatten().any(|j| {
                    metaverse
                        .iter()
                        .any(|t| t.slot(&j.target).is_some_and(|s| t.is_ref(s)))
                })
        });
        let references_apart = !inbound_random && !joins_on_refs;
        let program = Arc::new(number_and_compile(&mut rules, engine));
        Plan {
            program,
            connectors,
            metaverse,
            rules,
            inbound,
            outbound,
            managed,
            reads_imported,
            merges_imported,
            outbound_current,
            references_apart,
            inbound_random,
        }
    }

    pub fn connector_index(&self, name: &str) -> Option<ConnIdx> {
        self.connectors.iter().position(|c| c.name == name)
    }

    /// Narrows a connector object type to the attributes the connected system holds (a
    /// deployment setting, such as a SCIM mapping): the outbound flows into its other
    /// attributes are left out, never evaluated and never exported, as if the connector schema
    /// did not declare those attributes. The `dn` flow stays. Returns the flows left out, as
    /// (rule, attribute), in rule order.
    pub fn keep_flows(
        &mut self,
        connector: ConnIdx,
        ty: TypeIdx,
        held: &[String],
    ) -> Vec<(String, String)> {
        let mut dropped = Vec::new();
        for r in &mut self.rules {
            if r.connector != connector
                || r.def.direction != Direction::Outbound
                || r.target_type != Some(ty)
            {
                continue;
            }
            let name = r.def.name.clone();
            r.flows.retain(|f| {
                let keep =
                    f.target == "dn" || held.iter().any(|h| h.eq_ignore_ascii_case(&f.target));
                if !keep {
                    dropped.push((name.clone(), f.target.clone()));
                }
                keep
            });
        }
        dropped
    }

    pub fn mv_type_index(&self, name: &str) -> Option<TypeIdx> {
        self.metaverse.iter().position(|t| *t.name == *name)
    }
}

/// Numbers every flow and scope expression of `rules` and compiles them, in that order.
fn number_and_compile(rules: &mut [RulePlan], engine: EngineKind) -> Program {
    let mut n = 0u32;
    for r in rules.iter_mut() {
        for c in r.scope.iter_mut().flatten() {
            if let ScopePlan::Expr(_, id) = c {
                *id = n;
                n += 1;
            }
        }
        for f in &mut r.flows {
            f.id = n;
            n += 1;
        }
    }
    let mut exprs: Vec<&ir::Expr> = Vec::with_capacity(n as usize);
    for r in rules.iter() {
        for c in r.scope.iter().flatten() {
            if let ScopePlan::Expr(e, _) = c {
                exprs.push(e);
            }
        }
        exprs.extend(r.flows.iter().map(|f| &f.expr));
    }
    let started = std::time::Instant::now();
    let program = Program::new(engine, &exprs);
    tracing::info!(
        engine = program.kind().as_str(),
        expressions = exprs.len(),
        ms = started.elapsed().as_millis() as u64,
        "expressions compiled"
    );
    program
}
