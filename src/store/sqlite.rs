//! The SQLite store (rusqlite, bundled SQLite).
//!
//! Consumes/produces: see [`super::Store`]. The database runs in WAL mode; every save is one
//! transaction, so a process killed at any point leaves the previous committed state, which
//! the next run continues from. A save writes only the rows of what changed
//! ([`State::changes`]): a step that changed k objects writes about k rows. Connector-space and
//! metaverse rows are keyed by the engine's stable ids. Values are stored in the binary form of
//! `store::codec`, sparsely by slot against a stored layout (the slot names of a connector's or
//! the metaverse's object type), which loading maps to the bundle's slots by name: a changed
//! bundle never misreads stored data. A connector-space object's current values are stored
//! only when they differ from its imported ones; a large save encodes them on a thread of its
//! own while it writes the rows, and a load of a database file decodes part of the rows on a
//! second connection and thread. A new database file is created readable by
//! its owner only (0600 on Unix; SQLite gives its `-wal` and `-shm` files the same mode): it
//! holds every identity. [`SqliteStore::open_read_only`] reads without writing anything, so
//! `idflow state` works during a run and on a state file or folder it cannot write. A database
//! of an earlier schema (values as JSON) is read by `store::legacy` and rewritten by the first
//! save.

use super::codec::{self, Reader};
use super::{
    AlertRecord, ErrorRecord, REJECTS_KEPT, RejectRecord, RunRecord, SaveStats, Store, StoreError,
};
use crate::engine::compile::Plan;
use crate::engine::model::{
    CsId, CsObject, ExportOp, Key, Link, MvId, MvObject, PendingImport, ReadStamp, State, dn_key,
};
use crate::value::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::collections::HashMap;
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layouts (
    id INTEGER PRIMARY KEY, connector TEXT, type TEXT NOT NULL, names TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cs_objects (
    id INTEGER PRIMARY KEY, layout INTEGER NOT NULL, dn TEXT NOT NULL, anchor BLOB,
    imported BLOB NOT NULL, current BLOB, pending INTEGER, export INTEGER, new_dn TEXT,
    link_mv INTEGER, link_rule TEXT, link_outbound INTEGER NOT NULL, provisioned_by TEXT,
    placeholder INTEGER NOT NULL, read_as BLOB);
CREATE TABLE IF NOT EXISTS mv_objects (
    id INTEGER PRIMARY KEY, layout INTEGER NOT NULL, attrs BLOB NOT NULL, links BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS cs_references (
    connector TEXT NOT NULL, dn TEXT NOT NULL, referrers BLOB NOT NULL,
    PRIMARY KEY (connector, dn)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mv_references (
    kind TEXT NOT NULL, target INTEGER NOT NULL, referrers BLOB NOT NULL,
    PRIMARY KEY (kind, target)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS withheld (mv INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS in_error (kind TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID;
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
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, kind TEXT NOT NULL,
    title TEXT NOT NULL, severity TEXT NOT NULL, description TEXT NOT NULL,
    remediation TEXT NOT NULL, docs TEXT NOT NULL, detail TEXT NOT NULL,
    raised_at TEXT NOT NULL, resolved_at TEXT, acknowledged_by TEXT, acknowledged_at TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_active ON alerts (key) WHERE resolved_at IS NULL;
";

/// The version of [`SCHEMA`], kept in SQLite's `user_version`.
const SCHEMA_VERSION: i64 = 7;

/// The first schema version whose value columns are framed (`codec::packed_attrs`).
const FRAMED_VERSION: i64 = 5;

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
/// gains their count (the `rejects` table is created with the schema). Version 4 stored value
/// columns unframed: each gains the plain frame byte, in the transaction that sets the new
/// version (so a kill never frames a row twice); rows are compressed as they are next saved.
/// Version 6 adds the `alerts` table, created with the schema: nothing else changes. Version
/// 7 adds the column of what each connector-space object was read from (`read_as`, NULL for
/// the objects of an earlier version: their records are read again once).
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
    if has_table(conn, "cs_objects")? && !has_column(conn, "cs_objects", "read_as")? {
        conn.execute_batch("ALTER TABLE cs_objects ADD COLUMN read_as BLOB;")
            .map_err(err("migrating the state to schema version 7"))?;
    }
    // Only version 4 has unframed rows: earlier versions keep their state in the tables of
    // `store::legacy` (rewritten framed by the first save).
    if version == FRAMED_VERSION - 1 && has_table(conn, "cs_objects")? {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             UPDATE cs_objects SET imported = CAST(X'00' || imported AS BLOB),
                 current = CASE WHEN current IS NULL THEN NULL
                     ELSE CAST(X'00' || current AS BLOB) END;
             UPDATE mv_objects SET attrs = CAST(X'00' || attrs AS BLOB);
             PRAGMA user_version = {FRAMED_VERSION};
             COMMIT;"
        ))
        .map_err(err("migrating the state to schema version 5"))?;
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
    /// The state is in the tables of a schema before version 4 (`store::legacy`): the first
    /// save drops them and writes the whole state in the current tables.
    legacy: bool,
    /// Value columns are framed (schema version 5 on; see `codec::packed_attrs`).
    framed: bool,
    /// The database has the `alerts` table (one before version 6 opened read-only has not:
    /// it has no alerts).
    has_alerts: bool,
    /// The connector-space table has the `read_as` column (one before version 7 opened
    /// read-only has not).
    has_read_as: bool,
    /// Stored layouts of the bundle's object types: (connector or `None` for the metaverse,
    /// type) → layout id, filled at the first save.
    layouts: HashMap<(Option<usize>, usize), i64>,
    /// A step's transaction, opened by `save_part` and not yet committed: what its parts
    /// wrote.
    step: Option<SaveStats>,
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
    /// Writes the rows of what changed (`changes`) in the step's transaction, opened if it is
    /// not; on an error the transaction is rolled back.
    fn write_part(
        &mut self,
        plan: &Plan,
        state: &State,
        changes: &crate::engine::model::Changes,
    ) -> Result<SaveStats, StoreError> {
        self.begin_step()?;
        let mut stats = SaveStats::default();
        if let Err(e) = write_changes(
            &self.conn,
            &mut self.layouts,
            plan,
            state,
            changes,
            &mut stats,
        ) {
            self.discard_part()?;
            return Err(e);
        }
        Ok(stats)
    }

    /// Opens a step's transaction unless one is open (the first save of a state written by
    /// a schema before version 4 drops its tables in it).
    fn begin_step(&mut self) -> Result<(), StoreError> {
        if self.step.is_some() {
            return Ok(());
        }
        self.conn
            .execute_batch("BEGIN")
            .map_err(err("starting a transaction"))?;
        self.step = Some(SaveStats::default());
        if self.legacy
            && let Err(e) = drop_legacy(&self.conn)
        {
            self.discard_part()?;
            return Err(e);
        }
        Ok(())
    }

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
        let legacy = has_table(&conn, "cs")?;
        Ok(SqliteStore {
            conn,
            has_rejects: true,
            legacy,
            framed: true,
            has_alerts: true,
            has_read_as: true,
            layouts: HashMap::new(),
            step: None,
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
        let legacy = has_table(&conn, "cs")?;
        if !(legacy || has_table(&conn, "cs_objects")?) || !has_table(&conn, "runs")? {
            return Err(StoreError::NotAState(path.to_path_buf()));
        }
        if version < 2 {
            return Err(StoreError::NeedsUpgrade {
                path: path.to_path_buf(),
                version,
            });
        }
        let has_rejects = has_table(&conn, "rejects")? && has_column(&conn, "runs", "rejected")?;
        let has_alerts = has_table(&conn, "alerts")?;
        let has_read_as = !legacy && has_column(&conn, "cs_objects", "read_as")?;
        Ok(SqliteStore {
            conn,
            has_rejects,
            legacy,
            framed: version >= FRAMED_VERSION,
            has_alerts,
            has_read_as,
            layouts: HashMap::new(),
            step: None,
        })
    }

    /// An in-memory database (tests).
    pub fn memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory().map_err(err("opening"))?;
        conn.execute_batch(SCHEMA)
            .map_err(err("creating the schema"))?;
        let legacy = has_table(&conn, "cs")?;
        Ok(SqliteStore {
            conn,
            has_rejects: true,
            legacy,
            framed: true,
            has_alerts: true,
            has_read_as: true,
            layouts: HashMap::new(),
            step: None,
        })
    }

    /// The run history's rows that `rest` (what follows `FROM runs`) selects, as records.
    fn run_rows(
        &self,
        rest: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {} FROM runs {rest}", self.run_columns()))
            .map_err(err("reading the run history"))?;
        let rows = stmt
            .query_map(params, run_record)
            .map_err(err("reading the run history"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err("reading the run history"))?;
        Ok(rows)
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

/// The codes of pending imports and export operations in the database.
fn pending_code(p: PendingImport) -> i64 {
    match p {
        PendingImport::Add => 1,
        PendingImport::Update => 2,
        PendingImport::Delete => 3,
        PendingImport::DeleteAdd => 4,
        PendingImport::InboundUpdate => 5,
    }
}

fn pending_of(code: i64) -> Option<PendingImport> {
    Some(match code {
        1 => PendingImport::Add,
        2 => PendingImport::Update,
        3 => PendingImport::Delete,
        4 => PendingImport::DeleteAdd,
        5 => PendingImport::InboundUpdate,
        _ => return None,
    })
}

fn export_code(e: ExportOp) -> i64 {
    match e {
        ExportOp::Add => 1,
        ExportOp::Update => 2,
        ExportOp::Delete => 3,
    }
}

fn export_of(code: i64) -> Option<ExportOp> {
    Some(match code {
        1 => ExportOp::Add,
        2 => ExportOp::Update,
        3 => ExportOp::Delete,
        _ => return None,
    })
}

/// A [`ReadStamp`] as stored: the record's digest, then the object's fingerprint
/// (little-endian).
fn stamp_bytes(s: ReadStamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(&s.record);
    out.extend_from_slice(&s.object.to_le_bytes());
    out
}

fn stamp_of(b: &[u8]) -> Option<ReadStamp> {
    let record: [u8; 16] = b.get(..16)?.try_into().ok()?;
    let object: [u8; 8] = b.get(16..)?.try_into().ok()?;
    Some(ReadStamp {
        record,
        object: u64::from_le_bytes(object),
    })
}

/// A list of ids as varints.
fn ids_bytes(ids: impl Iterator<Item = u64>) -> Vec<u8> {
    let values: Vec<Value> = ids.map(|i| Value::Num(i as i64)).collect();
    codec::value_bytes(&Value::Many(values.into()))
}

fn ids_from(bytes: &[u8]) -> Result<Vec<u64>, String> {
    let v = codec::value_from(bytes)?;
    v.values()
        .iter()
        .map(|i| match i {
            Value::Num(n) if *n >= 0 => Ok(*n as u64),
            other => Err(format!("not an id: {other:?}")),
        })
        .collect()
}

/// Reads value columns, framed or not (a read-only open of a version 4 database), reusing one
/// buffer for decompression.
struct Unpack {
    framed: bool,
    scratch: Vec<u8>,
}

impl Unpack {
    fn slots(
        &mut self,
        column: &[u8],
        map: &[Option<usize>],
        width: usize,
    ) -> Result<crate::engine::model::Values, String> {
        let bytes = if self.framed {
            codec::unpack(column, &mut self.scratch)?
        } else {
            column
        };
        Reader::new(bytes).slots(map, width)
    }
}

/// What decoding a load's rows needs.
struct Decoding<'a> {
    plan: &'a Plan,
    layouts: &'a HashMap<i64, Option<Layout>>,
    rules: &'a HashMap<&'a str, usize>,
    framed: bool,
    has_read_as: bool,
}

/// A connector-space object with the keys the state indexes it by
/// (`State::restore_cs_keyed`): its anchor's and its DN's.
type Keyed = (CsObject, Option<Key>, Box<str>);

fn keyed(obj: CsObject) -> Keyed {
    let anchor = obj.anchor.as_ref().and_then(Key::exact);
    let dn = dn_key(&obj.dn);
    (obj, anchor, dn)
}

/// Reads the connector-space rows with ids in `ids`, in id order, handing each to `each`:
/// its id and object, `None` for a row of a connector or type the bundle no longer
/// declares.
fn read_cs(
    conn: &Connection,
    with: &Decoding<'_>,
    ids: std::ops::Range<i64>,
    mut each: impl FnMut(CsId, Option<CsObject>),
) -> Result<(), StoreError> {
    let (plan, layouts, rules) = (with.plan, with.layouts, with.rules);
    let mut unpack = Unpack {
        framed: with.framed,
        scratch: Vec::new(),
    };
    let read_as = if with.has_read_as { "read_as" } else { "NULL" };
    let mut stmt = conn
        .prepare(&format!("SELECT id, layout, dn, anchor, imported, current, pending, export, new_dn, link_mv, link_rule, link_outbound, provisioned_by, placeholder, {read_as} FROM cs_objects WHERE id >= ?1 AND id < ?2 ORDER BY id"))
        .map_err(err("reading connector spaces"))?;
    let mut rows = stmt
        .query(params![ids.start, ids.end])
        .map_err(err("reading connector spaces"))?;
    while let Some(r) = rows.next().map_err(err("reading connector spaces"))? {
        let mut read = || -> Result<(CsId, Option<CsObject>), String> {
            let id: i64 = r.get(0).map_err(|e| e.to_string())?;
            let id = CsId::try_from(id).map_err(|_| format!("id {id} out of range"))?;
            let layout: i64 = r.get(1).map_err(|e| e.to_string())?;
            let Some(Some(l)) = layouts.get(&layout) else {
                return Ok((id, None));
            };
            let Some(c) = l.connector else {
                return Err(format!("layout {layout} is a metaverse layout"));
            };
            let tplan = &plan.connectors[c].types[l.ty];
            let blob = |i: usize| blob(r, i);
            let dn: String = r.get(2).map_err(|e| e.to_string())?;
            let anchor = blob(3)?.map(codec::value_from).transpose()?;
            let imported: crate::engine::model::Values =
                unpack.slots(blob(4)?.unwrap_or_default(), &l.slots, tplan.len())?;
            let current = match blob(5)? {
                Some(b) => unpack.slots(b, &l.slots, tplan.len())?,
                // Equal to the imported values: one shared allocation.
                None => imported.clone(),
            };
            let int = |i: usize| -> Result<Option<i64>, String> {
                r.get(i).map_err(|e: rusqlite::Error| e.to_string())
            };
            let text = |i: usize| -> Result<Option<String>, String> {
                r.get(i).map_err(|e: rusqlite::Error| e.to_string())
            };
            let outbound = int(11)?.unwrap_or(0) != 0;
            let link = match (int(9)?, text(10)?) {
                (Some(mv), Some(rule)) => rules.get(rule.as_str()).map(|&rule| Link {
                    mv: mv as MvId,
                    rule,
                    outbound,
                }),
                _ => None,
            };
            Ok((
                id,
                Some(CsObject {
                    connector: c,
                    object_type: l.ty,
                    dn: dn.into(),
                    anchor,
                    imported,
                    current,
                    pending_import: int(6)?.and_then(pending_of),
                    export: int(7)?.and_then(export_of),
                    new_dn: text(8)?.map(Into::into),
                    link,
                    provisioned_by: text(12)?.and_then(|p| rules.get(p.as_str()).copied()),
                    placeholder: int(13)?.unwrap_or(0) != 0,
                    gone: false,
                    // A stamp of another length is no stamp: its record is read again.
                    read_as: blob(14)?.and_then(stamp_of),
                }),
            ))
        };
        match read() {
            Ok((id, obj)) => each(id, obj),
            Err(message) => {
                let id: i64 = r.get(0).unwrap_or(-1);
                return Err(StoreError::Corrupt {
                    row: format!("connector-space object {id}"),
                    message,
                });
            }
        }
    }
    Ok(())
}

/// The metaverse rows in id order: each object, or the id of one of a type the bundle no
/// longer declares.
fn read_mv(
    conn: &Connection,
    with: &Decoding<'_>,
) -> Result<Vec<Result<MvObject, MvId>>, StoreError> {
    let (plan, layouts) = (with.plan, with.layouts);
    let mut unpack = Unpack {
        framed: with.framed,
        scratch: Vec::new(),
    };
    // Room for every id from the first to the last at once: no copy as it fills.
    let ids = id_span(conn, "mv_objects")?;
    let mut out = Vec::with_capacity(usize::try_from(ids.end - ids.start).unwrap_or(0));
    let mut stmt = conn
        .prepare("SELECT id, layout, attrs, links FROM mv_objects ORDER BY id")
        .map_err(err("reading the metaverse"))?;
    let mut rows = stmt.query([]).map_err(err("reading the metaverse"))?;
    while let Some(r) = rows.next().map_err(err("reading the metaverse"))? {
        let id: i64 = r.get(0).map_err(err("reading the metaverse"))?;
        let layout: i64 = r.get(1).map_err(err("reading the metaverse"))?;
        let corrupt = |message: String| StoreError::Corrupt {
            row: format!("metaverse object {id}"),
            message,
        };
        let Some(Some(l)) = layouts.get(&layout) else {
            out.push(Err(id as MvId));
            continue;
        };
        let bytes = blob(r, 2).map_err(corrupt)?.unwrap_or_default();
        let attrs = unpack
            .slots(bytes, &l.slots, plan.metaverse[l.ty].len())
            .map_err(corrupt)?;
        let links = blob(r, 3)
            .map_err(corrupt)
            .map(Option::unwrap_or_default)
            .and_then(|b| ids_from(b).map_err(corrupt))?;
        out.push(Ok(MvObject {
            id: id as MvId,
            object_type: l.ty,
            attrs,
            links: links.into_iter().map(|l| l as CsId).collect(),
        }));
    }
    Ok(out)
}

/// The ids from a table's first to one past its last (empty for an empty table).
fn id_span(conn: &Connection, table: &str) -> Result<std::ops::Range<i64>, StoreError> {
    let (low, high): (Option<i64>, Option<i64>) = conn
        .query_row(&format!("SELECT min(id), max(id) FROM {table}"), [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(err("reading the state"))?;
    Ok(low.unwrap_or(0)..high.map_or(0, |h| h + 1))
}

/// The bytes of a BLOB column (`None` for NULL).
fn blob<'a>(r: &'a rusqlite::Row<'_>, i: usize) -> Result<Option<&'a [u8]>, String> {
    r.get_ref(i)
        .map_err(|e| e.to_string())?
        .as_blob_or_null()
        .map_err(|e| e.to_string())
}

/// A stored layout mapped onto the bundle: the type it is, and each stored slot's slot.
struct Layout {
    connector: Option<usize>,
    ty: usize,
    slots: Vec<Option<usize>>,
}

impl SqliteStore {
    /// A second connection reading the database file, for part of a load's rows: none for a
    /// database in memory, with a step's transaction open (the second connection would not
    /// see its rows) or of an earlier schema.
    fn second_reader(&self) -> Option<Connection> {
        if self.step.is_some() || self.legacy {
            return None;
        }
        let path = self.conn.path().filter(|p| !p.is_empty())?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).ok()?;
        probe(&conn).ok()?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).ok()?;
        Some(conn)
    }

    /// The stored layouts that map onto the bundle (a layout of a connector or type the bundle
    /// no longer declares is `None`).
    fn read_layouts(&self, plan: &Plan) -> Result<HashMap<i64, Option<Layout>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, connector, type, names FROM layouts")
            .map_err(err("reading layouts"))?;
        let rows: Vec<(i64, Option<String>, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(err("reading layouts"))?
            .collect::<Result<_, _>>()
            .map_err(err("reading layouts"))?;
        let mut out = HashMap::new();
        for (id, connector, ty, names) in rows {
            let names: Vec<String> =
                serde_json::from_str(&names).map_err(|e| StoreError::Corrupt {
                    row: format!("layout {id}"),
                    message: e.to_string(),
                })?;
            let found = match &connector {
                Some(c) => plan.connector_index(c).and_then(|ci| {
                    let t = plan.connectors[ci].type_index(&ty)?;
                    Some((Some(ci), t, &plan.connectors[ci].types[t]))
                }),
                None => plan
                    .mv_type_index(&ty)
                    .map(|t| (None, t, &plan.metaverse[t])),
            };
            out.insert(
                id,
                found.map(|(connector, ty, tplan)| Layout {
                    connector,
                    ty,
                    slots: names.iter().map(|n| tplan.slot(n)).collect(),
                }),
            );
        }
        Ok(out)
    }
}

/// The layout id of every object type of the bundle (`layouts`), stored when new.
/// Writes the rows of what changed (`changes`) with `tx` (a connection inside a transaction),
/// counting them in `stats`.
/// Saves of at least this many objects encode their values on a thread of their own.
const ENCODE_APART: usize = 4096;
/// Objects encoded at a time on that thread.
const ENCODE_CHUNK: usize = 1024;

/// Calls `write` with each of `ids` and its `encode`d values, in order. For many ids the
/// values are encoded on another thread, a chunk at a time, while `write` stores the chunk
/// before (encoding was about two fifths of a large save, SQLite's inserts the rest). The
/// first error of `write` ends it; the encoding thread then stops.
fn encoded_in_order<I: Sync, E: Send>(
    ids: &[I],
    encode: impl Fn(&I) -> E + Sync,
    mut write: impl FnMut(&I, E) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if ids.len() < ENCODE_APART {
        return ids.iter().try_for_each(|id| write(id, encode(id)));
    }
    std::thread::scope(|scope| {
        // Two chunks ahead at most: memory stays bounded however large the save.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<E>>(2);
        let encode = &encode;
        scope.spawn(move || {
            for chunk in ids.chunks(ENCODE_CHUNK) {
                if tx.send(chunk.iter().map(encode).collect()).is_err() {
                    return;
                }
            }
        });
        let mut written = 0;
        for (chunk, encoded) in ids.chunks(ENCODE_CHUNK).zip(rx) {
            for (id, e) in chunk.iter().zip(encoded) {
                write(id, e)?;
                written += 1;
            }
        }
        // (A panic of the encoding thread ends the channel early; the scope panics with it
        // once it is joined, so nothing is committed. Saying so here as well costs nothing.)
        if written < ids.len() {
            return Err(StoreError::Database {
                doing: "saving the state".into(),
                message: format!("{} of {} objects encoded", written, ids.len()),
            });
        }
        Ok(())
    })
}

fn write_changes(
    tx: &Connection,
    layouts: &mut HashMap<(Option<usize>, usize), i64>,
    plan: &Plan,
    state: &State,
    changes: &crate::engine::model::Changes,
    stats: &mut SaveStats,
) -> Result<(), StoreError> {
    ensure_layouts(layouts, tx, plan)?;
    let mut put = tx
        .prepare("INSERT OR REPLACE INTO cs_objects (id, layout, dn, anchor, imported, current, pending, export, new_dn, link_mv, link_rule, link_outbound, provisioned_by, placeholder, read_as) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)")
        .map_err(err("saving connector spaces"))?;
    let mut del = tx
        .prepare("DELETE FROM cs_objects WHERE id = ?1")
        .map_err(err("saving connector spaces"))?;
    // A connector-space object's values, encoded (None for a removed object).
    let encode = |&id: &CsId| {
        let o = &state.cs()[id as usize];
        (!o.gone).then(|| {
            let imported = codec::packed_attrs(&o.imported);
            let current = (o.current != o.imported).then(|| codec::packed_attrs(&o.current));
            (imported, current)
        })
    };
    encoded_in_order(&changes.cs, encode, |&id, encoded| {
        let o = &state.cs()[id as usize];
        let Some((imported, current)) = encoded else {
            stats.rows += del
                .execute(params![id as i64])
                .map_err(err("saving connector spaces"))?;
            return Ok(());
        };
        let layout = layouts.get(&(Some(o.connector), o.object_type));
        stats.rows += put
            .execute(params![
                id as i64,
                layout,
                o.dn.as_ref(),
                o.anchor.as_ref().map(codec::value_bytes),
                imported,
                current,
                o.pending_import.map(pending_code),
                o.export.map(export_code),
                o.new_dn.as_deref(),
                o.link.map(|l| l.mv as i64),
                o.link.map(|l| plan.rules[l.rule].name()),
                o.link.is_some_and(|l| l.outbound) as i64,
                o.provisioned_by.map(|r| plan.rules[r].name()),
                o.placeholder as i64,
                o.read_as.map(stamp_bytes),
            ])
            .map_err(err("saving connector spaces"))?;
        Ok(())
    })?;
    let mut put = tx
        .prepare(
            "INSERT OR REPLACE INTO mv_objects (id, layout, attrs, links) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(err("saving the metaverse"))?;
    let mut del = tx
        .prepare("DELETE FROM mv_objects WHERE id = ?1")
        .map_err(err("saving the metaverse"))?;
    let encode = |id: &MvId| state.mv().get(id).map(|m| codec::packed_attrs(&m.attrs));
    encoded_in_order(&changes.mv, encode, |id, attrs| {
        stats.rows += match (state.mv().get(id), attrs) {
            (Some(m), Some(attrs)) => put
                .execute(params![
                    *id as i64,
                    layouts.get(&(None, m.object_type)),
                    attrs,
                    ids_bytes(m.links.iter().map(|&l| u64::from(l))),
                ])
                .map_err(err("saving the metaverse"))?,
            _ => del
                .execute(params![*id as i64])
                .map_err(err("saving the metaverse"))?,
        };
        Ok(())
    })?;
    let mut put = tx
        .prepare(
            "INSERT OR REPLACE INTO cs_references (connector, dn, referrers) VALUES (?1, ?2, ?3)",
        )
        .map_err(err("saving references"))?;
    for (c, dn) in &changes.references {
        if let Some(refs) = state.referenced_by(*c, dn) {
            stats.rows += put
                .execute(params![
                    plan.connectors[*c].name,
                    dn.as_ref(),
                    ids_bytes(refs.iter().map(|&r| u64::from(r)))
                ])
                .map_err(err("saving references"))?;
        }
    }
    let mut put = tx
        .prepare(
            "INSERT OR REPLACE INTO mv_references (kind, target, referrers) VALUES (?1, ?2, ?3)",
        )
        .map_err(err("saving references"))?;
    let mut del = tx
        .prepare("DELETE FROM mv_references WHERE kind = ?1 AND target = ?2")
        .map_err(err("saving references"))?;
    for (kind, keys, map) in [
        ("outbound", &changes.outbound_refs, state.outbound_refs()),
        ("awaiting", &changes.awaiting_refs, state.awaiting_refs()),
    ] {
        for t in keys {
            stats.rows += match map.get(t).filter(|r| !r.is_empty()) {
                Some(r) => put
                    .execute(params![kind, *t as i64, ids_bytes(r.iter().copied())])
                    .map_err(err("saving references"))?,
                None => del
                    .execute(params![kind, *t as i64])
                    .map_err(err("saving references"))?,
            };
        }
    }
    if changes.withheld {
        tx.execute("DELETE FROM withheld", [])
            .map_err(err("saving withheld values"))?;
        let mut ins = tx
            .prepare("INSERT INTO withheld (mv) VALUES (?1)")
            .map_err(err("saving withheld values"))?;
        for m in state.withheld() {
            stats.rows += ins
                .execute(params![*m as i64])
                .map_err(err("saving withheld values"))?;
        }
    }
    if changes.errors {
        tx.execute("DELETE FROM in_error", [])
            .map_err(err("saving objects in error"))?;
        let mut ins = tx
            .prepare("INSERT INTO in_error (kind, id) VALUES (?1, ?2)")
            .map_err(err("saving objects in error"))?;
        for c in state.in_error_cs() {
            stats.rows += ins
                .execute(params!["cs", *c as i64])
                .map_err(err("saving objects in error"))?;
        }
        for m in state.in_error_mv() {
            stats.rows += ins
                .execute(params!["mv", *m as i64])
                .map_err(err("saving objects in error"))?;
        }
    }
    Ok(())
}

/// Writes the metadata of a save with `tx`: the next metaverse id, `meta`, and the rows
/// written since the last compaction (`rows`).
fn write_meta(
    tx: &Connection,
    state: &State,
    meta: &[(&str, &str)],
    rows: usize,
) -> Result<(), StoreError> {
    let mut set = tx
        .prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
        .map_err(err("saving metadata"))?;
    set.execute(params!["next_mv", state.next_mv().to_string()])
        .map_err(err("saving metadata"))?;
    for (k, v) in meta {
        set.execute(params![k, v]).map_err(err("saving metadata"))?;
    }
    // What makes a compaction due (`Store::compact_if_due`).
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('rows_since_compaction', ?1)
         ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + ?1",
        params![rows as i64],
    )
    .map_err(err("saving metadata"))?;
    Ok(())
}

/// Drops the tables of a schema before version 4 and empties the current ones: the save that
/// follows writes the whole state (see `SqliteStore::legacy`).
fn drop_legacy(tx: &Connection) -> Result<(), StoreError> {
    tx.execute_batch(
        "DROP TABLE IF EXISTS cs; DROP TABLE IF EXISTS mv; DROP TABLE IF EXISTS refs;
         DROP TABLE IF EXISTS mv_refs;
         DELETE FROM cs_objects; DELETE FROM mv_objects; DELETE FROM cs_references;
         DELETE FROM mv_references; DELETE FROM withheld; DELETE FROM in_error;",
    )
    .map_err(err("upgrading the state to schema version 4"))
}

fn ensure_layouts(
    layouts: &mut HashMap<(Option<usize>, usize), i64>,
    tx: &Connection,
    plan: &Plan,
) -> Result<(), StoreError> {
    {
        if !layouts.is_empty() {
            return Ok(());
        }
        let mut existing: HashMap<(Option<String>, String, String), i64> = HashMap::new();
        {
            let mut stmt = tx
                .prepare("SELECT id, connector, type, names FROM layouts")
                .map_err(err("reading layouts"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(err("reading layouts"))?;
            for row in rows {
                let (id, c, t, n): (i64, Option<String>, String, String) =
                    row.map_err(err("reading layouts"))?;
                existing.insert((c, t, n), id);
            }
        }
        let mut wanted = Vec::new();
        for (ci, cp) in plan.connectors.iter().enumerate() {
            for (ti, tp) in cp.types.iter().enumerate() {
                wanted.push((
                    (Some(ci), ti),
                    Some(cp.name.clone()),
                    tp.name.to_string(),
                    &tp.names,
                ));
            }
        }
        for (ti, tp) in plan.metaverse.iter().enumerate() {
            wanted.push(((None, ti), None, tp.name.to_string(), &tp.names));
        }
        for (key, c, t, names) in wanted {
            let names: Vec<&str> = names.iter().map(|n| &**n).collect();
            let names = serde_json::to_string(&names).unwrap_or_default();
            let id = match existing.get(&(c.clone(), t.clone(), names.clone())) {
                Some(&id) => id,
                None => {
                    tx.execute(
                        "INSERT INTO layouts (connector, type, names) VALUES (?1, ?2, ?3)",
                        params![c, t, names],
                    )
                    .map_err(err("saving layouts"))?;
                    tx.last_insert_rowid()
                }
            };
            layouts.insert(key, id);
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    fn load(&mut self, plan: &Plan) -> Result<(State, Vec<String>), StoreError> {
        if self.legacy {
            return super::legacy::load(&self.conn, plan);
        }
        let mut state = State::new(plan.connectors.len());
        let mut warnings = Vec::new();
        let layouts = self.read_layouts(plan)?;
        let rules: HashMap<&str, usize> = plan
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name(), i))
            .collect();
        let mut skipped = 0;
        let with = Decoding {
            plan,
            layouts: &layouts,
            rules: &rules,
            framed: self.framed,
            has_read_as: self.has_read_as,
        };
        let std::ops::Range { start: low, end } = id_span(&self.conn, "cs_objects")?;
        let mut restore = |state: &mut State, id: CsId, obj: Option<Keyed>| match obj {
            Some((obj, anchor, dn)) => state.restore_cs_keyed(id, obj, anchor, dn, false),
            None => {
                // Of a connector or type the bundle no longer declares: its row goes.
                skipped += 1;
                state.restore_cs(id, CsObject::tombstone(), true);
            }
        };
        // On a second connection and thread (a database file with no step open): the
        // connector-space rows of the upper ids, decoded and keyed, and the metaverse rows; on
        // this one, the rest of the connector-space rows, each restored as it is decoded, then
        // what the other decoded. About 60% of the connector-space rows here balances the two.
        let second = self.second_reader();
        let split = if second.is_some() {
            low + (end - low) * 3 / 5
        } else {
            end
        };
        let mv_rows = std::thread::scope(|scope| -> Result<_, StoreError> {
            let with = &with;
            let other = second.map(|conn| {
                scope.spawn(move || -> Result<_, StoreError> {
                    // Room for every id of the range at once: no copy as it fills.
                    let mut cs: Vec<(CsId, Option<Keyed>)> =
                        Vec::with_capacity(usize::try_from(end - split).unwrap_or(0));
                    read_cs(&conn, with, split..end, |id, obj| {
                        cs.push((id, obj.map(keyed)))
                    })?;
                    Ok((cs, read_mv(&conn, with)?))
                })
            });
            read_cs(&self.conn, with, low..split, |id, obj| {
                restore(&mut state, id, obj.map(keyed))
            })?;
            match other.map(|h| h.join()) {
                None => Ok(None),
                Some(Ok(rows)) => {
                    let (cs, mv) = rows?;
                    for (id, obj) in cs {
                        restore(&mut state, id, obj);
                    }
                    Ok(Some(mv))
                }
                Some(Err(_)) => Err(StoreError::Database {
                    doing: "reading the state".into(),
                    message: "the reading thread failed".into(),
                }),
            }
        })?;
        if skipped > 0 {
            warnings.push(format!("{skipped} stored connector-space objects belong to connectors or object types the bundle no longer declares; they were dropped"));
        }
        let mv_rows = match mv_rows {
            Some(rows) => rows,
            None => read_mv(&self.conn, &with)?,
        };
        for row in mv_rows {
            match row {
                Ok(m) => state.restore_mv(m),
                Err(id) => {
                    warnings.push(format!("metaverse object {id}, of a type the bundle no longer declares, was dropped"));
                    state.forget_mv(id);
                }
            }
        }
        // Links to metaverse objects that were dropped are removed.
        state.drop_dangling_links();
        {
            let mut stmt = self
                .conn
                .prepare("SELECT connector, dn, referrers FROM cs_references")
                .map_err(err("reading references"))?;
            let mut rows = stmt.query([]).map_err(err("reading references"))?;
            while let Some(r) = rows.next().map_err(err("reading references"))? {
                let c: String = r.get(0).map_err(err("reading references"))?;
                let dn: String = r.get(1).map_err(err("reading references"))?;
                let referrers = blob(r, 2)
                    .and_then(|b| ids_from(b.unwrap_or_default()))
                    .map_err(|message| StoreError::Corrupt {
                        row: format!("references to {dn}"),
                        message,
                    })?;
                if let Some(c) = plan.connector_index(&c) {
                    for s in referrers {
                        if state.cs().get(s as usize).is_some_and(|o| !o.gone) {
                            state.restore_reference(c, dn.as_str().into(), s as CsId);
                        }
                    }
                }
            }
        }
        {
            let mut stmt = self
                .conn
                .prepare("SELECT kind, target, referrers FROM mv_references")
                .map_err(err("reading references"))?;
            let mut rows = stmt.query([]).map_err(err("reading references"))?;
            while let Some(r) = rows.next().map_err(err("reading references"))? {
                let kind: String = r.get(0).map_err(err("reading references"))?;
                let target: i64 = r.get(1).map_err(err("reading references"))?;
                let referrers = blob(r, 2)
                    .and_then(|b| ids_from(b.unwrap_or_default()))
                    .map_err(|message| StoreError::Corrupt {
                        row: format!("references to metaverse object {target}"),
                        message,
                    })?;
                for s in referrers {
                    if kind == "outbound" {
                        state.restore_outbound_ref(target as MvId, s);
                    } else {
                        state.restore_awaiting_ref(target as MvId, s);
                    }
                }
            }
        }
        {
            let mut stmt = self
                .conn
                .prepare("SELECT mv FROM withheld")
                .map_err(err("reading withheld values"))?;
            let ids = stmt
                .query_map([], |r| r.get::<_, i64>(0))
                .map_err(err("reading withheld values"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err("reading withheld values"))?;
            for id in ids {
                state.restore_withheld(id as MvId);
            }
            let mut stmt = self
                .conn
                .prepare("SELECT kind, id FROM in_error")
                .map_err(err("reading objects in error"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(err("reading objects in error"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err("reading objects in error"))?;
            for (kind, id) in rows {
                if kind == "cs" {
                    if state.cs().get(id as usize).is_some_and(|o| !o.gone) {
                        state.restore_in_error(Some(id as CsId), None);
                    }
                } else if state.mv().contains_key(&(id as MvId)) {
                    state.restore_in_error(None, Some(id as MvId));
                }
            }
        }
        if let Some(n) = self.get_meta("next_mv")?.and_then(|v| v.parse().ok()) {
            state.restore_next_mv(n);
        }
        Ok((state, warnings))
    }

    fn save_changes(
        &mut self,
        plan: &Plan,
        state: &mut State,
        meta: &[(&str, &str)],
    ) -> Result<SaveStats, StoreError> {
        let changes = state.changes();
        // The step's transaction: opened by `save_part` for the parts already written, or now.
        let mut stats = self.write_part(plan, state, &changes)?;
        let part = self.step.unwrap_or_default();
        let result = write_meta(&self.conn, state, meta, part.rows + stats.rows).and_then(|()| {
            self.conn
                .execute_batch("COMMIT")
                .map_err(err("committing the state"))
        });
        if let Err(e) = result {
            self.discard_part()?;
            return Err(e);
        }
        self.step = None;
        self.legacy = false;
        state.clear_changes();
        stats.rows += part.rows;
        stats.objects = part.objects + changes.cs.len() + changes.mv.len();
        Ok(stats)
    }

    fn save_part(&mut self, plan: &Plan, state: &mut State) -> Result<(), StoreError> {
        let changes = state.changes();
        let stats = self.write_part(plan, state, &changes)?;
        if let Some(part) = self.step.as_mut() {
            part.rows += stats.rows;
            part.objects += changes.cs.len() + changes.mv.len();
        }
        state.clear_changes();
        Ok(())
    }

    fn discard_part(&mut self) -> Result<(), StoreError> {
        if self.step.take().is_none() {
            return Ok(());
        }
        // Layout ids written in the transaction are gone with it.
        self.layouts.clear();
        self.conn
            .execute_batch("ROLLBACK")
            .map_err(err("rolling back the state"))
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
        self.run_rows(
            "ORDER BY id DESC LIMIT ?1",
            params![limit.min(i64::MAX as usize) as i64],
        )
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
        // The latest import of each connector: its objects held with data validation errors;
        // the latest export of each: the changes the connected system refused.
        let mut stmt = self
            .conn
            .prepare("SELECT run, category, connector, dn, rule, code, message FROM sync_errors WHERE run = ?1 OR run IN (SELECT MAX(id) FROM runs WHERE step LIKE '%import' GROUP BY connector) OR run IN (SELECT MAX(id) FROM runs WHERE step = 'export' GROUP BY connector) ORDER BY run, rowid")
            .map_err(err("reading errors"))?;
        let rows = stmt
            .query_map(params![last.unwrap_or(-1)], |r| {
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

    fn compact_if_due(&mut self, objects: usize) -> Result<Option<(u64, u64)>, StoreError> {
        let written: u64 = self
            .get_meta("rows_since_compaction")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if written < objects.max(super::COMPACT_AFTER_ROWS) as u64 {
            return Ok(None);
        }
        let size = |conn: &Connection| -> Result<u64, StoreError> {
            let pages: i64 = conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(err("measuring the database"))?;
            let page: i64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(err("measuring the database"))?;
            Ok((pages * page) as u64)
        };
        let before = size(&self.conn)?;
        self.conn
            .execute_batch("VACUUM")
            .map_err(err("compacting the database"))?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(err("compacting the database"))?;
        self.set_meta("rows_since_compaction", "0")?;
        Ok(Some((before, size(&self.conn)?)))
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
                   AND id NOT IN (SELECT MAX(id) FROM runs WHERE step LIKE '%import' OR step = 'export' GROUP BY connector, step = 'export')",
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

    fn latest_steps(&mut self) -> Result<Vec<RunRecord>, StoreError> {
        self.run_rows(
            "WHERE id IN (SELECT MAX(id) FROM runs GROUP BY step, connector) ORDER BY id",
            [],
        )
    }

    fn raise_alert(&mut self, a: &AlertRecord) -> Result<(i64, bool), StoreError> {
        let remediation = serde_json::to_string(&a.remediation).unwrap_or_default();
        let tx = self
            .conn
            .transaction()
            .map_err(err("starting a transaction"))?;
        let active: Option<i64> = tx
            .query_row(
                "SELECT id FROM alerts WHERE key = ?1 AND resolved_at IS NULL",
                params![a.key],
                |r| r.get(0),
            )
            .optional()
            .map_err(err("reading the alerts"))?;
        let raised = match active {
            Some(id) => {
                tx.execute(
                    "UPDATE alerts SET title = ?2, description = ?3, remediation = ?4, docs = ?5, detail = ?6 WHERE id = ?1",
                    params![id, a.title, a.description, remediation, a.docs, a.detail],
                )
                .map_err(err("updating an alert"))?;
                (id, false)
            }
            None => {
                tx.execute(
                    "INSERT INTO alerts (key, kind, title, severity, description, remediation, docs, detail, raised_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![a.key, a.kind, a.title, a.severity, a.description, remediation, a.docs, a.detail, a.raised_at],
                )
                .map_err(err("raising an alert"))?;
                (tx.last_insert_rowid(), true)
            }
        };
        tx.commit().map_err(err("raising an alert"))?;
        Ok(raised)
    }

    fn resolve_alert(&mut self, key: &str, at: &str) -> Result<Option<i64>, StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(err("starting a transaction"))?;
        let active: Option<i64> = tx
            .query_row(
                "SELECT id FROM alerts WHERE key = ?1 AND resolved_at IS NULL",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(err("reading the alerts"))?;
        if let Some(id) = active {
            tx.execute(
                "UPDATE alerts SET resolved_at = ?2 WHERE id = ?1",
                params![id, at],
            )
            .map_err(err("resolving an alert"))?;
        }
        tx.commit().map_err(err("resolving an alert"))?;
        Ok(active)
    }

    fn acknowledge_alert(&mut self, id: i64, who: &str, at: &str) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "UPDATE alerts SET acknowledged_by = ?2, acknowledged_at = ?3 WHERE id = ?1",
                params![id, who, at],
            )
            .map(|n| n > 0)
            .map_err(err("acknowledging an alert"))
    }

    fn alerts(&mut self, active_only: bool, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        if !self.has_alerts {
            return Ok(Vec::new());
        }
        let filter = if active_only {
            "WHERE resolved_at IS NULL"
        } else {
            ""
        };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts {filter} ORDER BY id DESC LIMIT ?1"
            ))
            .map_err(err("reading the alerts"))?;
        let rows = stmt
            .query_map(params![limit.min(i64::MAX as usize) as i64], alert_record)
            .map_err(err("reading the alerts"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err("reading the alerts"))?;
        Ok(rows)
    }

    fn alert(&mut self, id: i64) -> Result<Option<AlertRecord>, StoreError> {
        if !self.has_alerts {
            return Ok(None);
        }
        self.conn
            .query_row(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
                params![id],
                alert_record,
            )
            .optional()
            .map_err(err("reading the alerts"))
    }
}

const ALERT_COLUMNS: &str = "id, key, kind, title, severity, description, remediation, docs, detail, raised_at, resolved_at, acknowledged_by, acknowledged_at";

fn alert_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRecord> {
    let remediation: String = r.get(6)?;
    Ok(AlertRecord {
        id: r.get(0)?,
        key: r.get(1)?,
        kind: r.get(2)?,
        title: r.get(3)?,
        severity: r.get(4)?,
        description: r.get(5)?,
        remediation: serde_json::from_str(&remediation).unwrap_or_default(),
        docs: r.get(7)?,
        detail: r.get(8)?,
        raised_at: r.get(9)?,
        resolved_at: r.get(10)?,
        acknowledged_by: r.get(11)?,
        acknowledged_at: r.get(12)?,
    })
}
