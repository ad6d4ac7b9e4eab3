//! A test double of Microsoft Graph for the Graph connector's tests (not Microsoft Graph: an
//! in-memory tenant behind a loopback HTTP server that follows Graph's documented behaviour
//! where the connector depends on it).
//!
//! - OAuth2 client credentials at `/<tenant>/oauth2/v2.0/token`; tokens live `token_ttl`, an
//!   expired or unknown token is answered 401 `InvalidAuthenticationToken`.
//! - `/users/delta` and `/groups/delta`: `$select`, pages of `page_size` with
//!   `@odata.nextLink` (`$skiptoken`), then `@odata.deltaLink` (`$deltatoken`); a delta round
//!   names the objects changed since its token and the deleted ones with `@removed`; groups
//!   carry `members@delta`, a group's members split over several entries of at most 3.
//! - `GET /users`, `/groups` (paged), `/{users|groups}/{id}`, `/groups/{id}/members`.
//! - `POST /users` (userPrincipalName unique, the required properties, a password), `POST
//!   /groups`, `PATCH` (properties, `members@odata.bind`), `DELETE`, `DELETE
//!   /groups/{id}/members/{id}/$ref`.
//! - `POST /$batch` of at most 20 requests.
//! - Throttling: every `throttle_every`-th request (inside batches too) is answered 429 with
//!   `Retry-After: 1`.

use serde_json::{Map, Value as Json, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TENANT: &str = "contoso-test";
pub const CLIENT_ID: &str = "idflow-test-client";
pub const SECRET: &str = "Gr-client-secret-5Xz";

#[derive(Debug, Clone)]
pub struct Settings {
    pub page_size: usize,
    pub token_ttl: Duration,
    pub throttle_every: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub requests: usize,
    pub token_requests: usize,
    pub batches: usize,
    pub throttled: usize,
    pub expired: usize,
    pub largest_batch: usize,
    /// Delta rounds that resumed from a deltaLink.
    pub delta_rounds: usize,
}

#[derive(Debug, Clone)]
struct Obj {
    kind: String,
    props: Map<String, Json>,
    members: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Tenant {
    objects: BTreeMap<String, Obj>,
    /// (sequence, id, kind): the id changed (or was deleted) at that point.
    log: Vec<(u64, String, String)>,
    seq: u64,
    tokens: HashMap<String, Instant>,
    next: u64,
    stats: Stats,
}

impl Tenant {
    fn touch(&mut self, id: &str, kind: &str) {
        self.seq += 1;
        self.log.push((self.seq, id.to_string(), kind.to_string()));
    }
}

pub struct GraphDouble {
    pub port: u16,
    tenant: Arc<Mutex<Tenant>>,
}

fn error(status: u16, code: &str, message: &str) -> (u16, Json, Vec<(String, String)>) {
    (
        status,
        json!({"error": {"code": code, "message": message}}),
        Vec::new(),
    )
}

fn query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl GraphDouble {
    pub fn start(settings: Settings) -> GraphDouble {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let tenant = Arc::new(Mutex::new(Tenant::default()));
        let d = GraphDouble {
            port,
            tenant: tenant.clone(),
        };
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let tenant = tenant.clone();
                let settings = settings.clone();
                std::thread::spawn(move || {
                    let _ = serve(s, port, &tenant, &settings);
                });
            }
        });
        d
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1.0", self.port)
    }

    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/{TENANT}/oauth2/v2.0/token", self.port)
    }

    pub fn stats(&self) -> Stats {
        self.tenant.lock().unwrap().stats.clone()
    }

    /// Every object of a kind: id → (properties, member ids).
    pub fn objects(&self, kind: &str) -> BTreeMap<String, (Map<String, Json>, BTreeSet<String>)> {
        self.tenant
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|(_, o)| o.kind == kind)
            .map(|(id, o)| (id.clone(), (o.props.clone(), o.members.clone())))
            .collect()
    }

    /// Deletes an object in the tenant (a change made in the cloud).
    pub fn delete(&self, id: &str) {
        let mut t = self.tenant.lock().unwrap();
        let kind = t.objects.remove(id).unwrap().kind;
        // Its groups change too (Graph reports them with the member @removed).
        let groups: Vec<String> = t
            .objects
            .iter_mut()
            .filter_map(|(g, o)| o.members.remove(id).then(|| g.clone()))
            .collect();
        for g in groups {
            t.touch(&g, "groups");
        }
        t.touch(id, &kind);
    }

    /// Sets a property of an object in the tenant (a change made in the cloud).
    pub fn set(&self, id: &str, prop: &str, value: Json) {
        let mut t = self.tenant.lock().unwrap();
        let kind = {
            let o = t.objects.get_mut(id).unwrap();
            o.props.insert(prop.to_string(), value);
            o.kind.clone()
        };
        t.touch(id, &kind);
    }
}

fn serve(
    s: TcpStream,
    port: u16,
    tenant: &Mutex<Tenant>,
    settings: &Settings,
) -> std::io::Result<()> {
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let (status, out, extra) = handle(
        &method, &target, &headers, &body, port, tenant, settings, false,
    );
    let text = if out.is_null() {
        String::new()
    } else {
        out.to_string()
    };
    let mut resp = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        text.len()
    );
    for (k, v) in extra {
        resp.push_str(&format!("{k}: {v}\r\n"));
    }
    resp.push_str("\r\n");
    resp.push_str(&text);
    let mut s = s;
    s.write_all(resp.as_bytes())
}

#[allow(clippy::too_many_arguments)]
fn handle(
    method: &str,
    target: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
    port: u16,
    tenant: &Mutex<Tenant>,
    settings: &Settings,
    inner: bool,
) -> (u16, Json, Vec<(String, String)>) {
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let q = query(q);
    let base = format!("http://127.0.0.1:{port}/v1.0");
    let mut t = tenant.lock().unwrap();
    if !inner {
        t.stats.requests += 1;
    }
    if path == format!("/{TENANT}/oauth2/v2.0/token") && method == "POST" {
        t.stats.token_requests += 1;
        let form = query(&String::from_utf8_lossy(body));
        if form.get("grant_type").map(String::as_str) != Some("client_credentials")
            || form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
            || form.get("client_secret").map(String::as_str) != Some(SECRET)
        {
            return (401, json!({"error": "invalid_client"}), Vec::new());
        }
        t.next += 1;
        let token = format!("access-{}", t.next);
        t.tokens
            .insert(token.clone(), Instant::now() + settings.token_ttl);
        return (
            200,
            json!({"token_type": "Bearer", "access_token": token, "expires_in": settings.token_ttl.as_secs()}),
            Vec::new(),
        );
    }
    if !inner {
        let token = headers
            .get("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("");
        match t.tokens.get(token) {
            Some(exp) if *exp > Instant::now() => {}
            Some(_) => {
                t.stats.expired += 1;
                return error(
                    401,
                    "InvalidAuthenticationToken",
                    "Access token has expired or is not yet valid.",
                );
            }
            None => return error(401, "InvalidAuthenticationToken", "Access token is empty."),
        }
    }
    let Some(rest) = path.strip_prefix("/v1.0") else {
        return error(404, "NotFound", "no such path");
    };
    if rest == "/$batch" && method == "POST" {
        t.stats.batches += 1;
        let j: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
        let reqs = j["requests"].as_array().cloned().unwrap_or_default();
        t.stats.largest_batch = t.stats.largest_batch.max(reqs.len());
        if reqs.len() > 20 {
            return error(400, "BadRequest", "a $batch holds at most 20 requests");
        }
        drop(t);
        let mut responses = Vec::new();
        for r in reqs {
            let m = r["method"].as_str().unwrap_or("GET");
            let u = format!("/v1.0{}", r["url"].as_str().unwrap_or(""));
            let b = if r["body"].is_null() {
                Vec::new()
            } else {
                r["body"].to_string().into_bytes()
            };
            let (status, out, extra) = handle(m, &u, headers, &b, port, tenant, settings, true);
            let mut h = Map::new();
            for (k, v) in extra {
                h.insert(k, json!(v));
            }
            responses.push(json!({"id": r["id"], "status": status, "headers": h, "body": out}));
        }
        return (200, json!({"responses": responses}), Vec::new());
    }
    // Throttling (the token endpoint and the $batch envelope excepted).
    t.stats.requests += usize::from(inner);
    if settings.throttle_every > 0 && t.stats.requests.is_multiple_of(settings.throttle_every) {
        t.stats.throttled += 1;
        return (
            429,
            json!({"error": {"code": "TooManyRequests", "message": "Too many requests"}}),
            vec![("Retry-After".into(), "1".into())],
        );
    }
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let select: Option<Vec<String>> = q
        .get("$select")
        .map(|s| s.split(',').map(str::to_string).collect());
    let view = |o: &Obj, id: &str, select: &Option<Vec<String>>| -> Json {
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        match select {
            Some(sel) => {
                for k in sel {
                    if k != "id" && k != "members" {
                        m.insert(k.clone(), o.props.get(k).cloned().unwrap_or(Json::Null));
                    }
                }
            }
            None => m.extend(o.props.clone()),
        }
        Json::Object(m)
    };
    let kind_of = |s: &str| matches!(s, "users" | "groups");
    match (method, segs.as_slice()) {
        ("GET", [kind, "delta"]) if kind_of(kind) => {
            let page = settings.page_size;
            // The entries of this round: from the start, or the changes since a token.
            let (since, offset, sel) = if let Some(st) = q.get("$skiptoken") {
                let mut p = st.split('.');
                let since: u64 = p.next().unwrap().parse().unwrap();
                let offset: usize = p.next().unwrap().parse().unwrap();
                let sel = p.next().map(|s| s.split(':').map(str::to_string).collect());
                (Some(since), offset, sel)
            } else if let Some(dt) = q.get("$deltatoken") {
                t.stats.delta_rounds += 1;
                let mut p = dt.split('.');
                let since: u64 = p.next().unwrap().parse().unwrap();
                let sel = p.next().map(|s| s.split(':').map(str::to_string).collect());
                (Some(since), 0, sel)
            } else {
                (None, 0, select.clone())
            };
            let full = since == Some(u64::MAX) || since.is_none();
            let mut entries: Vec<Json> = Vec::new();
            let snapshot = t.seq;
            if full {
                for (id, o) in t.objects.iter().filter(|(_, o)| o.kind == *kind) {
                    let mut v = view(o, id, &sel);
                    if *kind == "groups" {
                        let ms: Vec<&String> = o.members.iter().collect();
                        let chunks: Vec<&[&String]> = if ms.is_empty() {
                            vec![&[][..]]
                        } else {
                            ms.chunks(3).collect()
                        };
                        for (ci, c) in chunks.iter().enumerate() {
                            let mut e = if ci == 0 {
                                v.clone()
                            } else {
                                json!({"id": id})
                            };
                            e["members@delta"] = Json::Array(
                                c.iter()
                                    .map(|m| {
                                        let k = t.objects.get(*m).map(|x| x.kind.as_str()).unwrap_or("users");
                                        json!({"@odata.type": if k == "users" { "#microsoft.graph.user" } else { "#microsoft.graph.group" }, "id": m})
                                    })
                                    .collect(),
                            );
                            entries.push(e);
                        }
                        continue;
                    }
                    v.as_object_mut().unwrap().remove("members");
                    entries.push(v);
                }
            } else {
                let since = since.unwrap();
                let mut seen = BTreeSet::new();
                for (seq, id, k) in &t.log {
                    if *seq <= since || k != kind || !seen.insert(id.clone()) {
                        continue;
                    }
                    match t.objects.get(id) {
                        None => entries.push(json!({"id": id, "@removed": {"reason": "changed"}})),
                        // Updated objects: the id and some properties, as Graph may send.
                        Some(_) => entries.push(json!({"id": id})),
                    }
                }
            }
            let sel_text = sel
                .as_ref()
                .map(|s: &Vec<String>| s.join(":"))
                .unwrap_or_default();
            let token_base = if full { u64::MAX } else { since.unwrap() };
            let slice: Vec<Json> = entries.iter().skip(offset).take(page).cloned().collect();
            let mut out = json!({"value": slice});
            if offset + page < entries.len() {
                out["@odata.nextLink"] = json!(format!(
                    "{base}/{kind}/delta?$skiptoken={token_base}.{}.{sel_text}",
                    offset + page
                ));
            } else {
                out["@odata.deltaLink"] = json!(format!(
                    "{base}/{kind}/delta?$deltatoken={snapshot}.{sel_text}"
                ));
            }
            (200, out, Vec::new())
        }
        ("GET", [kind]) if kind_of(kind) => {
            let top: usize = q.get("$top").and_then(|v| v.parse().ok()).unwrap_or(100);
            let skip: usize = q
                .get("$skiptoken")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let all: Vec<Json> = t
                .objects
                .iter()
                .filter(|(_, o)| o.kind == *kind)
                .map(|(id, o)| view(o, id, &select))
                .collect();
            let mut out =
                json!({"value": all.iter().skip(skip).take(top).cloned().collect::<Vec<_>>()});
            if skip + top < all.len() {
                let sel = q.get("$select").cloned().unwrap_or_default();
                out["@odata.nextLink"] = json!(format!(
                    "{base}/{kind}?$select={sel}&$top={top}&$skiptoken={}",
                    skip + top
                ));
            }
            (200, out, Vec::new())
        }
        ("GET", ["groups", id, "members"]) => {
            let Some(g) = t.objects.get(*id) else {
                return error(404, "Request_ResourceNotFound", "no such group");
            };
            let top = 2;
            let skip: usize = q
                .get("$skiptoken")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let ms: Vec<Json> = g
                .members
                .iter()
                .filter_map(|m| t.objects.get(m).map(|o| view(o, m, &select)))
                .collect();
            let mut out =
                json!({"value": ms.iter().skip(skip).take(top).cloned().collect::<Vec<_>>()});
            if skip + top < ms.len() {
                let sel = q.get("$select").cloned().unwrap_or_default();
                out["@odata.nextLink"] = json!(format!(
                    "{base}/groups/{id}/members?$select={sel}&$skiptoken={}",
                    skip + top
                ));
            }
            (200, out, Vec::new())
        }
        ("GET", [kind, id]) if kind_of(kind) => match t.objects.get(*id) {
            Some(o) if o.kind == *kind => (200, view(o, id, &select), Vec::new()),
            _ => error(404, "Request_ResourceNotFound", "Resource does not exist."),
        },
        ("POST", [kind]) if kind_of(kind) => {
            let j: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
            let Some(props) = j.as_object() else {
                return error(400, "BadRequest", "not JSON");
            };
            let required: &[&str] = if *kind == "users" {
                &[
                    "userPrincipalName",
                    "displayName",
                    "mailNickname",
                    "accountEnabled",
                    "passwordProfile",
                ]
            } else {
                &[
                    "displayName",
                    "mailNickname",
                    "mailEnabled",
                    "securityEnabled",
                ]
            };
            for r in required {
                if props.get(*r).is_none_or(Json::is_null) {
                    return error(
                        400,
                        "Request_BadRequest",
                        &format!("A value is required for property '{r}' of resource '{kind}'."),
                    );
                }
            }
            if *kind == "users" {
                if props["passwordProfile"]["password"]
                    .as_str()
                    .is_none_or(|p| p.len() < 8)
                {
                    return error(
                        400,
                        "Request_BadRequest",
                        "The specified password does not comply with password complexity requirements.",
                    );
                }
                let upn = props["userPrincipalName"]
                    .as_str()
                    .unwrap_or("")
                    .to_lowercase();
                if t.objects.values().any(|o| {
                    o.props
                        .get("userPrincipalName")
                        .and_then(Json::as_str)
                        .map(str::to_lowercase)
                        .as_deref()
                        == Some(upn.as_str())
                }) {
                    return error(
                        400,
                        "Request_BadRequest",
                        "Another object with the same value for property userPrincipalName already exists.",
                    );
                }
            }
            let mut stored = props.clone();
            stored.remove("passwordProfile");
            t.next += 1;
            let id = format!("{}-{:06}", &kind[..1], t.next);
            t.objects.insert(
                id.clone(),
                Obj {
                    kind: kind.to_string(),
                    props: stored.clone(),
                    members: BTreeSet::new(),
                },
            );
            t.touch(&id, kind);
            let mut out = stored;
            out.insert("id".into(), json!(id));
            (201, Json::Object(out), Vec::new())
        }
        ("PATCH", [kind, id]) if kind_of(kind) => {
            let j: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
            let Some(props) = j.as_object().cloned() else {
                return error(400, "BadRequest", "not JSON");
            };
            if t.objects.get(*id).is_none_or(|o| o.kind != *kind) {
                return error(404, "Request_ResourceNotFound", "Resource does not exist.");
            }
            let mut add = Vec::new();
            for (k, v) in &props {
                if k == "members@odata.bind" {
                    let list = v.as_array().cloned().unwrap_or_default();
                    if list.len() > 20 {
                        return error(
                            400,
                            "Request_BadRequest",
                            "at most 20 references in one request",
                        );
                    }
                    for u in list {
                        let mid = u
                            .as_str()
                            .unwrap_or("")
                            .rsplit('/')
                            .next()
                            .unwrap_or("")
                            .to_string();
                        if !t.objects.contains_key(&mid) {
                            return error(
                                404,
                                "Request_ResourceNotFound",
                                "a referenced object does not exist",
                            );
                        }
                        if t.objects[*id].members.contains(&mid) {
                            return error(
                                400,
                                "Request_BadRequest",
                                "One or more added object references already exist for the following modified properties: 'members'.",
                            );
                        }
                        add.push(mid);
                    }
                }
            }
            let o = t.objects.get_mut(*id).unwrap();
            for (k, v) in props {
                if k == "members@odata.bind" {
                    continue;
                }
                if v.is_null() {
                    o.props.remove(&k);
                } else {
                    o.props.insert(k, v);
                }
            }
            o.members.extend(add);
            t.touch(id, kind);
            (204, Json::Null, Vec::new())
        }
        ("DELETE", [kind, id]) if kind_of(kind) => {
            if t.objects.get(*id).is_none_or(|o| o.kind != *kind) {
                return error(404, "Request_ResourceNotFound", "Resource does not exist.");
            }
            t.objects.remove(*id);
            let ids: Vec<String> = t
                .objects
                .iter()
                .filter(|(_, o)| o.members.contains(*id))
                .map(|(g, _)| g.clone())
                .collect();
            for g in ids {
                t.objects.get_mut(&g).unwrap().members.remove(*id);
                t.touch(&g, "groups");
            }
            t.touch(id, kind);
            (204, Json::Null, Vec::new())
        }
        ("DELETE", ["groups", id, "members", mid, "$ref"]) => {
            let removed = t
                .objects
                .get_mut(*id)
                .is_some_and(|g| g.members.remove(*mid));
            if !removed {
                return error(404, "Request_ResourceNotFound", "no such member");
            }
            t.touch(id, "groups");
            (204, Json::Null, Vec::new())
        }
        _ => error(
            400,
            "BadRequest",
            &format!("{method} {target} is not served by the test double"),
        ),
    }
}
