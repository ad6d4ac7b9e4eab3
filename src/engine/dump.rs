//! A canonical text form of the engine's state, independent of internal ids.
//!
//! Consumes: a [`Plan`] and a [`State`]. Produces: text listing every metaverse object (its
//! type, the connector objects linked to it, its values) and every staged export (its
//! [`super::export::ExportDelta`]: connector, operation, type, DN, attribute changes), each
//! block sorted, so two states with the same content give the same text whatever order they
//! were built in. Metaverse references are
//! written as the `connector:DN` of the first object linked to the referenced object.
//! Used by scenario snapshots, the delta-versus-full sync property test and previews.

use super::compile::Plan;
use super::export::AttrOp;
use super::model::{MvId, State};
use crate::eval::json;
use crate::value::Value;
use std::fmt::Write;

/// The `connector:DN` naming a metaverse object in dumps.
fn mv_name(plan: &Plan, state: &State, id: MvId) -> String {
    let Some(m) = state.mv().get(&id) else {
        return format!("<deleted {id}>");
    };
    let mut names: Vec<String> = m
        .links
        .iter()
        .map(|&c| {
            let o = &state.cs()[c as usize];
            format!("{}:{}", plan.connectors[o.connector].name, o.dn)
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .next()
        .unwrap_or_else(|| format!("<unlinked {id}>"))
}

/// A value with metaverse references replaced by their names.
fn show(plan: &Plan, state: &State, v: &Value) -> String {
    fn readable(plan: &Plan, state: &State, v: &Value) -> Value {
        match v {
            Value::Ref(s) if s.starts_with("mv:") => match s[3..].parse::<MvId>() {
                Ok(id) => Value::Ref(format!("-> {}", mv_name(plan, state, id)).into()),
                Err(_) => v.clone(),
            },
            Value::Many(items) => {
                let mut out: Vec<Value> = items.iter().map(|i| readable(plan, state, i)).collect();
                // Reference collections have no meaningful order.
                if out.iter().all(|x| matches!(x, Value::Ref(_))) {
                    out.sort_by_key(|x| x.as_str().map(str::to_string));
                }
                Value::many(out)
            }
            other => other.clone(),
        }
    }
    json::to_json(&readable(plan, state, v)).to_string()
}

/// The metaverse: one block per object, blocks sorted.
pub fn metaverse(plan: &Plan, state: &State) -> String {
    metaverse_of(plan, state, |_| true)
}

/// The metaverse objects `keep` selects (references are still named from the whole state).
pub fn metaverse_of(plan: &Plan, state: &State, keep: impl Fn(MvId) -> bool) -> String {
    let mut blocks: Vec<String> = state
        .mv()
        .values()
        .filter(|m| keep(m.id))
        .map(|m| {
            let t = &plan.metaverse[m.object_type];
            let mut links: Vec<String> = m
                .links
                .iter()
                .map(|&c| {
                    let o = &state.cs()[c as usize];
                    format!("{}:{}", plan.connectors[o.connector].name, o.dn)
                })
                .collect();
            links.sort();
            let mut b = format!("metaverse {} [{}]\n", t.name, links.join(" | "));
            for (slot, v) in m.attrs.iter().enumerate() {
                if !v.is_null() {
                    let _ = writeln!(b, "  {} = {}", t.names[slot], show(plan, state, v));
                }
            }
            b
        })
        .collect();
    blocks.sort();
    blocks.concat()
}

/// The staged exports of every connector: one block per object, blocks sorted.
pub fn exports(plan: &Plan, state: &State) -> String {
    exports_of(plan, state, |_| true)
}

/// The staged exports of the objects `keep` selects: their export deltas. A replace is
/// written `name = value` (a clear `name = null`), a value add `name += [values]` and a value
/// remove `name -= [values]`.
pub fn exports_of(plan: &Plan, state: &State, keep: impl Fn(super::model::CsId) -> bool) -> String {
    let mut blocks = Vec::new();
    for (c, cp) in plan.connectors.iter().enumerate() {
        let kept = state.pending_exports(c).filter(|(id, _, _)| keep(*id));
        for d in kept.filter_map(|(id, _, _)| super::export::delta(plan, state, id)) {
            let mut b = format!(
                "export {} {} {} \"{}\"\n",
                cp.name,
                d.kind.as_str(),
                d.object_type,
                d.target_dn()
            );
            if d.new_dn.is_some() {
                let _ = writeln!(b, "  (renamed from \"{}\")", d.dn);
            }
            for ch in &d.changes {
                let (sign, v) = match &ch.op {
                    AttrOp::Replace(v) => ("=", show(plan, state, v)),
                    AttrOp::Clear => ("=", show(plan, state, &Value::Null)),
                    AttrOp::Add(vs) => ("+=", show(plan, state, &Value::many(vs.clone()))),
                    AttrOp::Remove(vs) => ("-=", show(plan, state, &Value::many(vs.clone()))),
                };
                let _ = writeln!(b, "  {} {sign} {v}", ch.attr);
            }
            blocks.push(b);
        }
    }
    blocks.sort();
    blocks.concat()
}

/// Metaverse and exports together.
pub fn state(plan: &Plan, state: &State) -> String {
    format!("{}{}", metaverse(plan, state), exports(plan, state))
}
