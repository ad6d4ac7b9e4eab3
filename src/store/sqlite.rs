//! The SQLite store (rusqlite, bundled SQLite).
//!
//! Consumes/produces: see [`super::Store`]. The database runs in WAL mode; every save is one
//! transaction, so a process killed at any point leaves the previous committed state, which
//! the next run continues from. Values are stored as the JSON of `eval::json`, attributes as
//! JSON objects keyed by attribute name. A new database file is created readable by its owner
//! only (0600 on Unix; SQLite gives its `-wal` and `-shm` files the same mode): it holds every
//! identity. [`SqliteStore::open_read_only`] reads without writing anything, so `idflow state`
//! works during a run and on a state file or folder it cannot write.

use super::{ErrorRecord, REJECTS_KEPT, RejectRecord, RunRecord, Store, StoreError};
use crate::engine::compile::Plan;
use crate::engine::model::{CsObject, ExportOp, Key, Link, MvObject, PendingImport, State, dn_key};
use crate::eval::json;
use crate::value::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cs (
    id INTEGER PRIMARY KEY, connector TEXT NOT NULL, type TEXT NOT NULL, dn TEXT NOT NULL,
    anchor TEXT, imported TEXT NOT NULL, current TEXT NOT NULL, pending TEXT, export TEXT,
    new_dn TEXT, link_mv INTEGER, link_rule TEXT, link_outbound INTEGER, provisioned_by TEXT,
    placeholder INTEGER NOT NULL, gone INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mv (id INTEGER PRIMARY KEY, type TEXT NOT NULL, attrs TEXT NOT NULL, links TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refs (connector TEXT NOT NULL, dn TEXT NOT NULL, source INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mv_refs (kind TEXT NOT NULL, target INTEGER NOT NULL, source INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, step TEXT NOT NULL,
    connector TEXT NOT NULL, status TEXT NOT NULL, adds INTEGER NOT NULL, updates INTEGER NOT NULL,
    deletes INTEGER NOT NULL, renames INTEGER NOT NULL, errors INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL, detail TEXT NOT NULL, rejected INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sync_errors (
    run INTEGER NOT NULL, category TEXT NOT NULL, connector TEXT NOT NULL, dn TEXT NOT NULL,
    rule TEXT NOT NULL, code TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sync_errors_run ON sync_errors (run);
CREATE TABLE IF NOT EXISTS rejects (
    run INTEGER NOT NULL, source TEXT NOT NULL, line INTEGER, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rejects_run ON rejects (run);
";

/// The version of [`SCHEMA`], kept in SQLite's `user_version`.
const SCHEMA_VERSION: i64 = 3;

fn has_table(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        params![name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(err("reading the schema"))
}

/// Brings a database written by an earlier version to [`SCHEMA_VERSION`]. Version 1 kept
/// references by object id: its table is dropped and the bundle marked changed, so the next
/// run's full sync rebuilds the references. Version 2 had no rejected records: the run history
/// gains their count (the `rejects` table is created with the schema).
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err("reading the schema version"))?;
    let has_state: bool = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'cs'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(err("reading the schema"))?;
    if has_state && version < 2 {
        conn.execute_batch(
            "DROP TABLE IF EXISTS refs; DELETE FROM meta WHERE key = 'bundle_hash';",
        )
        .map_err(err("migrating the state to schema version 2"))?;
    }
    if has_table(conn, "runs")? && !has_column(conn, "runs", "rejected")? {
        conn.execute_batch("ALTER TABLE runs ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0;")
            .map_err(err("migrating the state to schema version 3"))?;
    }
    Ok(())
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, StoreError> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .map_err(err("reading the schema"))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(1))
        .map_err(err("reading the schema"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err("reading the schema"))?;
    Ok(names.iter().any(|n| n == column))
}

pub struct SqliteStore {
    conn: Connection,
    /// The database has the `rejects` table and the run history's `rejected` column (a
    /// version 2 database opened read-only has not).
    has_rejects: bool,
}

/// `path` as the path of an SQLite `file:` URI (RFC 3986 percent-encoding).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/._~-".contains(b) {
            out.push(char::from(*b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads the schema to check that a connection can read the database.
fn probe(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
}

fn err(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Database {
        doing: what.to_string(),
        message: e.to_string(),
    }
}

impl SqliteStore {
    /// Opens (or creates, mode 0600) the database file for reading and writing, bringing its
    /// schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        crate::files::create_private(path).map_err(|e| StoreError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let conn = Connection::open(path).map_err(|e| StoreError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err("setting the busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err("setting synchronous"))?;
        migrate(&conn)?;
        conn.execute_batch(SCHEMA)
            .map_err(err("creating the schema"))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(err("setting the schema version"))?;
        Ok(SqliteStore {
            conn,
            has_rejects: true,
        })
    }

    /// Opens an existing database file for reading only: nothing is written (no schema
    /// change, no WAL setting), so it works while a run writes and on a file or folder this
    /// process cannot write. When the folder is not writable and no `-wal` file exists, the
    /// file is read as immutable (SQLite cannot otherwise read a WAL database there).
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        let at = |e: rusqlite::Error| StoreError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        if !path.exists() {
            return Err(StoreError::NoState(path.to_path_buf()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags).map_err(at)?;
        let conn = match probe(&conn) {
            Ok(_) => conn,
            Err(e) => {
                let mut wal = path.as_os_str().to_os_string();
                wal.push("-wal");
                let wal_in_use = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
                if wal_in_use {
                    return Err(at(e));
                }
                drop(conn);
                let uri = format!("file:{}?immutable=1", uri_path(path));
                let conn = Connection::open_with_flags(uri, flags).map_err(at)?;
                probe(&conn).map_err(at)?;
                conn
            }
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(at)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err("reading the schema version"))?;
        if !has_table(&conn, "cs")? || !has_table(&conn, "runs")? {
            return Err(StoreError::NotAState(path.to_path_buf()));
        }
        if version < 2 {
            return Err(StoreError::NeedsUpgrade {
                path: path.to_path_buf(),
                version,
            });
        }
        let has_rejects = has_table(&conn, "rejects")? && has_column(&conn, "runs", "rejected")?;
        Ok(SqliteStore { conn, has_rejects })
    }

    /// An in-memory database (tests).
    pub fn memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory().map_err(err("opening"))?;
        conn.execute_batch(SCHEMA)
            .map_err(err("creating the schema"))?;
        Ok(SqliteStore {
            conn,
            has_rejects: true,
        })
    }

    /// The columns of a [`RunRecord`], as [`run_record`] reads them.
    fn run_columns(&self) -> &'static str {
        if self.has_rejects {
            "id, started, step, connector, status, adds, updates, deletes, renames, errors, duration_ms, detail, rejected"
        } else {
            "id, started, step, connector, status, adds, updates, deletes, renames, errors, duration_ms, detail, 0"
        }
    }
}

fn run_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: r.get(0)?,
        started: r.get(1)?,
        step: r.get(2)?,
        connector: r.get(3)?,
        status: r.get(4)?,
        adds: r.get(5)?,
        updates: r.get(6)?,
        deletes: r.get(7)?,
        renames: r.get(8)?,
        errors: r.get(9)?,
        duration_ms: r.get(10)?,
        detail: r.get(11)?,
        rejected: r.get(12)?,
    })
}

fn attrs_json(names: &[String], values: &[Value]) -> String {
    let mut map = serde_json::Map::new();
    for (n, v) in names.iter().zip(values) {
        if !v.is_null() {
            map.insert(n.clone(), json::to_json(v));
        }
    }
    serde_json::Value::Object(map).to_string()
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

fn pending_text(p: Option<PendingImport>) -> Option<&'static str> {
    p.map(|p| match p {
        PendingImport::Add => "add",
        PendingImport::Update => "update",
        PendingImport::Delete => "delete",
        PendingImport::DeleteAdd => "delete-add",
    })
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

impl Store for SqliteStore {
    fn load(&mut self, plan: &Plan) -> Result<(State, Vec<String>), StoreError> {
        let mut state = State::new(plan.connectors.len());
        let mut warnings = Vec::new();
        let rule_index = |name: &str| plan.rules.iter().position(|r| r.name() == name);
        let rows: Vec<CsRow> = {
            let mut stmt = self
                .conn
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
                imported: attrs_from(&imported, tplan).map_err(|e| bad("imported values", e))?,
                current: attrs_from(&current, tplan).map_err(|e| bad("current values", e))?,
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
            };
            let new = state.cs.len() as u32;
            id_map.insert(id, new);
            state.cs.push(obj);
            let o = &state.cs[new as usize];
            if let Some(k) = o.anchor.as_ref().and_then(Key::exact) {
                state.by_anchor[c].insert(k, new);
            }
            state.by_dn[c].insert(dn_key(&o.dn), new);
        }
        if skipped > 0 {
            warnings.push(format!("{skipped} stored connector-space objects belong to connectors or object types the bundle no longer declares; they were dropped"));
        }
        let mut stmt = self
            .conn
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
            let values =
                attrs_from(&attrs, &plan.metaverse[t]).map_err(|e| StoreError::Corrupt {
                    row: format!("metaverse object {id}"),
                    message: e.to_string(),
                })?;
            let links: Vec<i64> =
                serde_json::from_str(&links).map_err(|e| StoreError::Corrupt {
                    row: format!("metaverse object {id}"),
                    message: format!("links: {e}"),
                })?;
            let links: Vec<u32> = links
                .iter()
                .filter_map(|l| id_map.get(l).copied())
                .collect();
            state.mv.insert(
                id as u64,
                MvObject {
                    id: id as u64,
                    object_type: t,
                    attrs: values,
                    links,
                },
            );
        }
        // Links to metaverse objects that were dropped are removed.
        for o in &mut state.cs {
            if let Some(l) = o.link
                && !state.mv.contains_key(&l.mv)
            {
                o.link = None;
            }
        }
        drop(stmt);
        let mut stmt = self
            .conn
            .prepare("SELECT connector, dn, source FROM refs")
            .map_err(err("reading references"))?;
        let refs: Vec<(String, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(err("reading references"))?
            .collect::<Result<_, _>>()
            .map_err(err("reading references"))?;
        for (c, dn, s) in refs {
            if let (Some(c), Some(&s)) = (plan.connector_index(&c), id_map.get(&s)) {
                state
                    .referenced_by
                    // Keys saved by an older normalisation are brought up to date.
                    .entry((c, dn_key(&dn)))
                    .or_default()
                    .push(s);
            }
        }
        drop(stmt);
        let mut stmt = self
            .conn
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
                    state.outbound_refs.entry(t).or_default().insert(s);
                }
                "awaiting" => {
                    state.awaiting_refs.entry(t).or_default().insert(s);
                }
                "error_mv" => {
                    state.in_error_mv.insert(t);
                }
                "error_cs" => {
                    if let Some(&c) = id_map.get(&(t as i64)) {
                        state.in_error_cs.insert(c);
                    }
                }
                _ => {
                    state.withheld.insert(t);
                }
            }
        }
        drop(stmt);
        state.next_mv = self
            .get_meta("next_mv")?
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| state.mv.keys().max().map_or(1, |m| m + 1));
        Ok((state, warnings))
    }

    fn save(&mut self, plan: &Plan, state: &State) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(err("starting a transaction"))?;
        tx.execute_batch("DELETE FROM cs; DELETE FROM mv; DELETE FROM refs; DELETE FROM mv_refs;")
            .map_err(err("clearing the state"))?;
        {
            let mut ins = tx
                .prepare("INSERT INTO cs (id, connector, type, dn, anchor, imported, current, pending, export, new_dn, link_mv, link_rule, link_outbound, provisioned_by, placeholder, gone) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 0)")
                .map_err(err("saving connector spaces"))?;
            for (i, o) in state.cs.iter().enumerate() {
                if o.gone {
                    continue;
                }
                let cp = &plan.connectors[o.connector];
                let tp = &cp.types[o.object_type];
                ins.execute(params![
                    i as i64,
                    cp.name,
                    tp.name,
                    o.dn.as_ref(),
                    o.anchor.as_ref().map(|a| json::to_json(a).to_string()),
                    attrs_json(&tp.names, &o.imported),
                    attrs_json(&tp.names, &o.current),
                    pending_text(o.pending_import),
                    o.export.map(|e| e.as_str()),
                    o.new_dn.as_deref(),
                    o.link.map(|l| l.mv as i64),
                    o.link.map(|l| plan.rules[l.rule].name().to_string()),
                    o.link.map(|l| l.outbound as i64),
                    o.provisioned_by.map(|r| plan.rules[r].name().to_string()),
                    o.placeholder as i64,
                ])
                .map_err(err("saving connector spaces"))?;
            }
            let mut ins = tx
                .prepare("INSERT INTO mv (id, type, attrs, links) VALUES (?1, ?2, ?3, ?4)")
                .map_err(err("saving the metaverse"))?;
            for m in state.mv.values() {
                let tp = &plan.metaverse[m.object_type];
                let links: Vec<i64> = m.links.iter().map(|&l| l as i64).collect();
                ins.execute(params![
                    m.id as i64,
                    tp.name,
                    attrs_json(&tp.names, &m.attrs),
                    serde_json::to_string(&links).unwrap_or_default()
                ])
                .map_err(err("saving the metaverse"))?;
            }
            let mut ins = tx
                .prepare("INSERT INTO refs (connector, dn, source) VALUES (?1, ?2, ?3)")
                .map_err(err("saving references"))?;
            for ((c, dn), sources) in &state.referenced_by {
                for s in sources {
                    ins.execute(params![plan.connectors[*c].name, dn.as_ref(), *s as i64])
                        .map_err(err("saving references"))?;
                }
            }
            let mut ins = tx
                .prepare("INSERT INTO mv_refs (kind, target, source) VALUES (?1, ?2, ?3)")
                .map_err(err("saving references"))?;
            for (kind, map) in [
                ("outbound", &state.outbound_refs),
                ("awaiting", &state.awaiting_refs),
            ] {
                for (t, sources) in map {
                    for s in sources {
                        ins.execute(params![kind, *t as i64, *s as i64])
                            .map_err(err("saving references"))?;
                    }
                }
            }
            for t in &state.in_error_mv {
                ins.execute(params!["error_mv", *t as i64, 0i64])
                    .map_err(err("saving references"))?;
            }
            for t in &state.in_error_cs {
                ins.execute(params!["error_cs", *t as i64, 0i64])
                    .map_err(err("saving references"))?;
            }
            for t in &state.withheld {
                ins.execute(params!["withheld", *t as i64, 0i64])
                    .map_err(err("saving references"))?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_mv', ?1)",
                params![state.next_mv.to_string()],
            )
            .map_err(err("saving metadata"))?;
        }
        tx.commit().map_err(err("committing the state"))
    }

    fn get_meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err("reading metadata"))
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map(|_| ())
            .map_err(err("writing metadata"))
    }

    fn record_run(
        &mut self,
        run: &RunRecord,
        errors: &[ErrorRecord],
        rejects: &[RejectRecord],
    ) -> Result<i64, StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(err("starting a transaction"))?;
        tx.execute(
            "INSERT INTO runs (started, step, connector, status, adds, updates, deletes, renames, errors, duration_ms, detail, rejected) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![run.started, run.step, run.connector, run.status, run.adds, run.updates, run.deletes, run.renames, run.errors, run.duration_ms, run.detail, run.rejected.max(rejects.len() as i64)],
        )
        .map_err(err("recording the run"))?;
        let id = tx.last_insert_rowid();
        {
            let mut ins = tx
                .prepare("INSERT INTO sync_errors (run, category, connector, dn, rule, code, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
                .map_err(err("recording errors"))?;
            for e in errors {
                ins.execute(params![
                    id,
                    e.category,
                    e.connector,
                    e.dn,
                    e.rule,
                    e.code,
                    e.message
                ])
                .map_err(err("recording errors"))?;
            }
            let mut ins = tx
                .prepare("INSERT INTO rejects (run, source, line, message) VALUES (?1, ?2, ?3, ?4)")
                .map_err(err("recording rejected records"))?;
            for r in rejects.iter().take(REJECTS_KEPT) {
                ins.execute(params![
                    id,
                    r.source,
                    r.line.map(|l| l.min(i64::MAX as u64) as i64),
                    r.message
                ])
                .map_err(err("recording rejected records"))?;
            }
        }
        tx.commit().map_err(err("recording the run"))?;
        Ok(id)
    }

    fn runs(&mut self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM runs ORDER BY id DESC LIMIT ?1",
                self.run_columns()
            ))
            .map_err(err("reading the run history"))?;
        let rows = stmt
            .query_map(params![limit.min(i64::MAX as usize) as i64], run_record)
            .map_err(err("reading the run history"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err("reading the run history"))?;
        Ok(rows)
    }

    fn latest_errors(&mut self) -> Result<Vec<ErrorRecord>, StoreError> {
        let last: Option<i64> = self
            .conn
            .query_row(
                "SELECT MAX(id) FROM runs WHERE step LIKE '%sync'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(err("reading the run history"))?
            .flatten();
        let Some(run) = last else {
            return Ok(Vec::new());
        };
        let mut stmt = self
            .conn
            .prepare("SELECT run, category, connector, dn, rule, code, message FROM sync_errors WHERE run = ?1")
            .map_err(err("reading errors"))?;
        let rows = stmt
            .query_map(params![run], |r| {
                Ok(ErrorRecord {
                    run: r.get(0)?,
                    category: r.get(1)?,
                    connector: r.get(2)?,
                    dn: r.get(3)?,
                    rule: r.get(4)?,
                    code: r.get(5)?,
                    message: r.get(6)?,
                })
            })
            .map_err(err("reading errors"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err("reading errors"))?;
        Ok(rows)
    }

    fn latest_rejects(&mut self) -> Result<Vec<(RunRecord, Vec<RejectRecord>)>, StoreError> {
        if !self.has_rejects {
            return Ok(Vec::new());
        }
        let runs: Vec<RunRecord> = {
            let mut stmt = self
                .conn
                .prepare(&format!(
                    "SELECT {} FROM runs WHERE id IN (SELECT MAX(id) FROM runs WHERE step LIKE '%import' GROUP BY connector) AND rejected > 0 ORDER BY connector",
                    self.run_columns()
                ))
                .map_err(err("reading the run history"))?;
            stmt.query_map([], run_record)
                .map_err(err("reading the run history"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err("reading the run history"))?
        };
        let mut stmt = self
            .conn
            .prepare("SELECT run, source, line, message FROM rejects WHERE run = ?1 ORDER BY rowid")
            .map_err(err("reading rejected records"))?;
        let mut out = Vec::new();
        for run in runs {
            let rejects = stmt
                .query_map(params![run.id], |r| {
                    Ok(RejectRecord {
                        run: r.get(0)?,
                        source: r.get(1)?,
                        line: r.get::<_, Option<i64>>(2)?.map(|l| l.max(0) as u64),
                        message: r.get(3)?,
                    })
                })
                .map_err(err("reading rejected records"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err("reading rejected records"))?;
            out.push((run, rejects));
        }
        Ok(out)
    }

    fn prune_runs(&mut self, keep: usize) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(err("starting a transaction"))?;
        let deleted = tx
            .execute(
                "DELETE FROM runs WHERE id <= (SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?1)
                   AND id <> (SELECT COALESCE(MAX(id), -1) FROM runs WHERE step LIKE '%sync')
                   AND id NOT IN (SELECT MAX(id) FROM runs WHERE step LIKE '%import' GROUP BY connector)",
                params![keep.min(i64::MAX as usize) as i64],
            )
            .map_err(err("pruning the run history"))?;
        if deleted > 0 {
            tx.execute_batch(
                "DELETE FROM sync_errors WHERE run NOT IN (SELECT id FROM runs);
                 DELETE FROM rejects WHERE run NOT IN (SELECT id FROM runs);",
            )
            .map_err(err("pruning the run history"))?;
        }
        tx.commit().map_err(err("pruning the run history"))?;
        Ok(deleted)
    }
}
