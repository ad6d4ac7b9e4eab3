//! Reading a state database written by idflow before schema version 4 (values as JSON keyed
//! by attribute name, ids renumbered at every load).
//!
//! Consumes: the legacy `cs`, `mv`, `refs` and `mv_refs` tables and the [`Plan`]. Produces: a
//! [`State`] with every object marked changed, so the first save writes it in the current
//! format (and `super::sqlite` drops the legacy tables in the same transaction).

use super::StoreError;
use crate::engine::compile::Plan;
use crate::engine::model::{CsObject, ExportOp, Link, MvObject, PendingImport, State, dn_key};
use crate::eval::json;
use crate::value::Value;
use rusqlite::{Connection, OptionalExtension};

fn err(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Database {
        doing: what.to_string(),
        message: e.to_string(),
    }
}

/// Reads stored values back with the types of the slots (JSON does not distinguish a
/// reference from a string).
fn attrs_from(text: &str, plan: &crate::engine::compile::TypePlan) -> Result<Vec<Value>, String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = vec![Value::Null; plan.names.len()];
    if let Some(map) = doc.as_object() {
        for (k, v) in map {
            if let Some(i) = plan.slot(k) {
                let value = json::from_json(v)?;
                out[i] = if plan.is_ref(i) { as_ref(value) } else { value };
            }
        }
    }
    Ok(out)
}

fn as_ref(v: Value) -> Value {
    match v {
        Value::Str(s) => Value::Ref(s),
        Value::Many(items) => Value::Many(items.iter().cloned().map(as_ref).collect()),
        other => other,
    }
}

fn pending_from(s: Option<String>) -> Option<PendingImport> {
    match s.as_deref() {
        Some("add") => Some(PendingImport::Add),
        Some("update") => Some(PendingImport::Update),
        Some("delete") => Some(PendingImport::Delete),
        Some("delete-add") => Some(PendingImport::DeleteAdd),
        _ => None,
    }
}

fn export_from(s: Option<String>) -> Option<ExportOp> {
    match s.as_deref() {
        Some("add") => Some(ExportOp::Add),
        Some("update") => Some(ExportOp::Update),
        Some("delete") => Some(ExportOp::Delete),
        _ => None,
    }
}

type CsRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    i64,
    i64,
);

pub fn load(conn: &Connection, plan: &Plan) -> Result<(State, Vec<String>), StoreError> {
    let mut state = State::new(plan.connectors.len());
    let mut warnings = Vec::new();
    let rule_index = |name: &str| plan.rules.iter().position(|r| r.name() == name);
    let rows: Vec<CsRow> = {
        let mut stmt = conn
            .prepare("SELECT id, connector, type, dn, anchor, imported, current, pending, export, new_dn, link_mv, link_rule, link_outbound, provisioned_by, placeholder, gone FROM cs ORDER BY id")
            .map_err(err("reading connector spaces"))?;
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
                r.get(12)?,
                r.get(13)?,
                r.get(14)?,
                r.get(15)?,
            ))
        })
        .map_err(err("reading connector spaces"))?
        .collect::<Result<_, _>>()
        .map_err(err("reading connector spaces"))?
    };
    // Stored ids map to new ids (objects of removed connectors or types are skipped).
    let mut id_map = std::collections::HashMap::new();
    let mut skipped = 0;
    for row in rows {
        let (
            id,
            connector,
            ty,
            dn,
            anchor,
            imported,
            current,
            pending,
            export,
            new_dn,
            link_mv,
            link_rule,
            link_outbound,
            provisioned_by,
            placeholder,
            gone,
        ) = row;
        let Some(c) = plan.connector_index(&connector) else {
            skipped += 1;
            continue;
        };
        let Some(t) = plan.connectors[c].type_index(&ty) else {
            skipped += 1;
            continue;
        };
        if gone != 0 {
            continue;
        }
        let tplan = &plan.connectors[c].types[t];
        let bad = |what: &str, e: String| StoreError::Corrupt {
            row: format!("connector space object {dn}"),
            message: format!("{what}: {e}"),
        };
        let anchor = match anchor {
            Some(a) => Some(
                serde_json::from_str::<serde_json::Value>(&a)
                    .map_err(|e| e.to_string())
                    .and_then(|j| json::from_json(&j))
                    .map_err(|e| bad("anchor", e))?,
            ),
            None => None,
        };
        let obj = CsObject {
            connector: c,
            object_type: t,
            dn: dn.as_str().into(),
            anchor,
            imported: attrs_from(&imported, tplan)
                .map_err(|e| bad("imported values", e))?
                .into(),
            current: attrs_from(&current, tplan)
                .map_err(|e| bad("current values", e))?
                .into(),
            pending_import: pending_from(pending),
            export: export_from(export),
            new_dn: new_dn.map(|d| d.as_str().into()),
            link: match (link_mv, link_rule.as_deref().and_then(rule_index)) {
                (Some(mv), Some(rule)) => Some(Link {
                    mv: mv as u64,
                    rule,
                    outbound: link_outbound.unwrap_or(0) != 0,
                }),
                _ => None,
            },
            provisioned_by: provisioned_by.as_deref().and_then(rule_index),
            placeholder: placeholder != 0,
            gone: false,
            read_as: None,
        };
        let new = state.cs().len() as u32;
        id_map.insert(id, new);
        state.restore_cs(new, obj, true);
    }
    if skipped > 0 {
        warnings.push(format!("{skipped} stored connector-space objects belong to connectors or object types the bundle no longer declares; they were dropped"));
    }
    let mut stmt = conn
        .prepare("SELECT id, type, attrs, links FROM mv ORDER BY id")
        .map_err(err("reading the metaverse"))?;
    let rows: Vec<(i64, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map_err(err("reading the metaverse"))?
        .collect::<Result<_, _>>()
        .map_err(err("reading the metaverse"))?;
    for (id, ty, attrs, links) in rows {
        let Some(t) = plan.mv_type_index(&ty) else {
            warnings.push(format!("metaverse object {id} of type {ty}, which the bundle no longer declares, was dropped"));
            continue;
        };
        let values = attrs_from(&attrs, &plan.metaverse[t]).map_err(|e| StoreError::Corrupt {
            row: format!("metaverse object {id}"),
            message: e.to_string(),
        })?;
        let links: Vec<i64> = serde_json::from_str(&links).map_err(|e| StoreError::Corrupt {
            row: format!("metaverse object {id}"),
            message: format!("links: {e}"),
        })?;
        let links: Vec<u32> = links
            .iter()
            .filter_map(|l| id_map.get(l).copied())
            .collect();
        state.restore_mv(MvObject {
            id: id as u64,
            object_type: t,
            attrs: values.into(),
            links,
        });
    }
    // Links to metaverse objects that were dropped are removed.
    state.drop_dangling_links();
    drop(stmt);
    // A schema-1 state had its references dropped (`sqlite::migrate`): the full sync its
    // changed bundle mark forces rebuilds them.
    let has_refs: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'refs'",
            [],
            |r| r.get(0),
        )
        .map_err(err("reading the schema"))?;
    let refs: Vec<(String, String, i64)> = if has_refs == 0 {
        Vec::new()
    } else {
        let mut stmt = conn
            .prepare("SELECT connector, dn, source FROM refs")
            .map_err(err("reading references"))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(err("reading references"))?
            .collect::<Result<_, _>>()
            .map_err(err("reading references"))?
    };
    for (c, dn, s) in refs {
        if let (Some(c), Some(&s)) = (plan.connector_index(&c), id_map.get(&s)) {
            // Keys saved by an older normalisation are brought up to date.
            state.restore_reference(c, dn_key(&dn), s);
        }
    }
    let mut stmt = conn
        .prepare("SELECT kind, target, source FROM mv_refs")
        .map_err(err("reading references"))?;
    let refs: Vec<(String, i64, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(err("reading references"))?
        .collect::<Result<_, _>>()
        .map_err(err("reading references"))?;
    for (kind, t, s) in refs {
        let (t, s) = (t as u64, s as u64);
        match kind.as_str() {
            "outbound" => {
                state.restore_outbound_ref(t, s);
            }
            "awaiting" => {
                state.restore_awaiting_ref(t, s);
            }
            "error_mv" => {
                state.restore_in_error(None, Some(t));
            }
            "error_cs" => {
                if let Some(&c) = id_map.get(&(t as i64)) {
                    state.restore_in_error(Some(c), None);
                }
            }
            _ => {
                state.restore_withheld(t);
            }
        }
    }
    drop(stmt);
    let next: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'next_mv'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(err("reading metadata"))?;
    if let Some(n) = next.and_then(|v| v.parse().ok()) {
        state.restore_next_mv(n);
    }
    state.mark_all_changed();
    Ok((state, warnings))
}
