//! The HTTP side of `idflow serve`: health, metrics, the dashboard and its JSON API.
//!
//! Consumes: requests on the listening address (127.0.0.1 by default; HTTPS when `[serve]
//! tls_cert` and `tls_key` are set), the token file, the [`Snapshot`] the scheduler publishes
//! after each cycle, and the shared [`Metrics`]. Produces: `/healthz` (open), `/metrics`
//! (reader, or open with `[serve] metrics_public`), the pages ([`super::pages`]) and `/api/...`
//! (reader), and the operator actions (`POST /api/cycle`, `/api/allow-deletes`,
//! `/api/alerts/{id}/ack`), each recorded in the state's audit table and handed to the
//! scheduler through [`Control`]. It never opens the state for writing except to append to
//! the audit table, and never takes the run lock; an object's lineage opens the state
//! read-only.
//!
//! axum on a current-thread tokio runtime, on a thread of its own; it stops once the [`Stop`]
//! flag is set. A request authenticates with `Authorization: Bearer TOKEN` or with the session
//! cookie a browser gets from the login page; a state-changing request made with the cookie
//! must carry the session's CSRF token (form field `csrf` or header `X-CSRF-Token`).

use super::alert_view;
use super::auth::{self, Principal, Role, Sessions};
use super::metrics::{CONTENT_TYPE, Metrics};
use super::pages;
use super::scheduler::Control;
use super::shutdown::Stop;
use super::snapshot::{self, Shared};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The session cookie's name.
pub const COOKIE: &str = "idflow_session";

/// What the handlers share.
pub struct App {
    pub snapshot: Shared,
    pub metrics: Arc<Metrics>,
    pub sessions: Sessions,
    pub control: Arc<Control>,
    pub tokens_file: PathBuf,
    /// The state database (the audit table).
    pub state_db: PathBuf,
    pub config: PathBuf,
    pub engine: crate::eval::EngineKind,
    pub tls: bool,
    pub metrics_public: bool,
    /// One lineage at a time (each loads the bundle and the state).
    pub lineage_slot: tokio::sync::Semaphore,
}

/// A bound listener, not yet serving.
pub struct Listener {
    tcp: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    pub addr: SocketAddr,
}

/// Loads a certificate chain and its private key (PEM) for HTTPS.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    // The process's provider: ring, the only one built in (as for the connectors).
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the TLS certificate and key: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Binds `addr` (port 0 takes a free port; [`Listener::addr`] is the one bound), serving
/// HTTPS with `tls` when given.
pub fn bind(addr: &str, tls: Option<rustls::ServerConfig>) -> Result<Listener, String> {
    let tcp =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tcp.set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = tcp
        .local_addr()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    Ok(Listener {
        tcp,
        tls: tls.map(Arc::new),
        addr: bound,
    })
}

/// TLS connections, their handshakes done apart from the accepting task (a slow client does
/// not hold the others up).
struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    addr: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Some(c) = self.rx.recv().await {
                return c;
            }
            // The accepting task ended: nothing more comes.
            std::future::pending::<()>().await;
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// Serves requests until `stop` is set.
pub fn serve(listener: Listener, app: Arc<App>, stop: Stop) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("http: starting the runtime: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let tcp = match tokio::net::TcpListener::from_std(listener.tcp) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("http: {e}");
                return;
            }
        };
        let router = router(app);
        let stopped = {
            let stop = stop.clone();
            async move {
                while !stop.is_set() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let result = match listener.tls {
            None => {
                axum::serve(tcp, router)
                    .with_graceful_shutdown(stopped)
                    .await
            }
            Some(cfg) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                let (tx, rx) = tokio::sync::mpsc::channel(64);
                tokio::spawn(async move {
                    loop {
                        let (conn, peer) = match tcp.accept().await {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::debug!("http: accepting: {e}");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        };
                        let (acceptor, tx) = (acceptor.clone(), tx.clone());
                        tokio::spawn(async move {
                            let hs = tokio::time::timeout(
                                Duration::from_secs(10),
                                acceptor.accept(conn),
                            );
                            match hs.await {
                                Ok(Ok(s)) => {
                                    let _ = tx.send((s, peer)).await;
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!("http: TLS handshake with {peer}: {e}")
                                }
                                Err(_) => {
                                    tracing::debug!("http: TLS handshake with {peer}: timed out")
                                }
                            }
                        });
                    }
                });
                let tls = TlsListener {
                    rx,
                    addr: listener.addr,
                };
                axum::serve(tls, router)
                    .with_graceful_shutdown(stopped)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::error!("http: {e}");
        }
    });
    // The TLS accepting task and open connections end with the runtime.
    rt.shutdown_timeout(Duration::from_secs(1));
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { text(StatusCode::OK, "ok\n") }))
        .route("/metrics", get(metrics))
        .route("/login", get(login_page).post(login))
        .route("/login/once", get(login_once))
        .route("/logout", post(logout))
        .route("/", get(page))
        .route("/errors", get(page))
        .route("/insight", get(page))
        .route("/runs", get(page))
        .route("/alerts", get(page))
        .route("/objects", get(page))
        .route("/api/status", get(api))
        .route("/api/errors", get(api))
        .route("/api/errors.csv", get(api))
        .route("/api/runs", get(api))
        .route("/api/insight", get(api))
        .route("/api/alerts", get(api))
        .route("/api/audit", get(api))
        .route("/api/objects", get(api))
        .route("/api/login-link", post(login_link))
        .route("/api/cycle", post(action))
        .route("/api/allow-deletes", post(action))
        .route("/api/alerts/{id}/ack", post(ack))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "not found\n") })
        .method_not_allowed_fallback(|| async {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        })
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(app)
}

/// Headers on every answer: no caching, no sniffing, no framing, no referrer (a one-time
/// login link must not leak), and no script at all.
async fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (k, v) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
}

fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn json(status: StatusCode, v: &impl serde::Serialize) -> Response {
    let body = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body + "\n",
    )
        .into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn redirect(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, to.to_string())],
        String::new(),
    )
        .into_response()
}

/// How a request authenticated.
enum Auth {
    /// No credentials.
    None,
    /// Credentials that are not (or no longer) valid.
    Invalid,
    Bearer(Principal),
    /// A browser session: the principal and the session's CSRF token.
    Session(Principal, String),
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn authenticate(app: &App, headers: &HeaderMap) -> Auth {
    let entries = match auth::load(&app.tokens_file) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("reading the token file: {e}");
            return Auth::Invalid;
        }
    };
    if let Some(h) = headers.get(header::AUTHORIZATION) {
        let Some(token) = h.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
            return Auth::Invalid;
        };
        return match auth::check(&entries, token.trim()) {
            Some(p) => Auth::Bearer(p),
            None => Auth::Invalid,
        };
    }
    if let Some(id) = cookie(headers, COOKIE) {
        // The session stands while its token does (a revoked token logs its browsers out).
        return match app.sessions.get(id) {
            Some(s)
                if entries
                    .iter()
                    .any(|e| e.name == s.who.name && e.role == s.who.role) =>
            {
                Auth::Session(s.who, s.csrf)
            }
            _ => Auth::Invalid,
        };
    }
    Auth::None
}

fn unauthorized() -> Response {
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "authentication required: a bearer token or a session\n",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"idflow\""),
    );
    r
}

/// The principal of a reader request, or the answer refusing it.
fn reader(app: &App, headers: &HeaderMap) -> Result<(Principal, Option<String>), Response> {
    match authenticate(app, headers) {
        Auth::Bearer(p) => Ok((p, None)),
        Auth::Session(p, csrf) => Ok((p, Some(csrf))),
        Auth::None | Auth::Invalid => Err(unauthorized()),
    }
}

/// Decodes `application/x-www-form-urlencoded` text (also a query string).
pub fn form(text: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(x) => {
                            out.push(x);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn query(req: &Request) -> Vec<(String, String)> {
    req.uri().query().map(form).unwrap_or_default()
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !app.metrics_public
        && let Err(r) = reader(&app, &headers)
    {
        return r;
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        app.metrics.encode(),
    )
        .into_response()
}

fn session_cookie(app: &App, id: &str) -> String {
    let secure = if app.tls { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

async fn login_page() -> Response {
    html(StatusCode::OK, pages::login(None))
}

/// The request comes from a page of this site, or from no page (a script): a browser sends
/// `Origin` with a POST, and it must name the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, h)| !host.is_empty() && h == host)
}

async fn login(State(app): State<Arc<App>>, headers: HeaderMap, body: String) -> Response {
    // No login from another site's page (which could log a browser into the other site's
    // session).
    if !same_origin(&headers) {
        return text(StatusCode::FORBIDDEN, "a login from another site\n");
    }
    let fields = form(&body);
    let token = field(&fields, "token").unwrap_or("").trim();
    let entries = match auth::load(&app.tokens_file) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("reading the token file: {e}");
            Vec::new()
        }
    };
    match auth::check(&entries, token) {
        Some(who) => start_session(&app, who, "/"),
        None => html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some("That token is not valid.")),
        ),
    }
}

fn start_session(app: &App, who: Principal, to: &str) -> Response {
    tracing::info!(who = %who.name, role = who.role.as_str(), "browser session started");
    match app.sessions.start(who) {
        Ok(id) => {
            let mut r = redirect(to);
            if let Ok(v) = HeaderValue::from_str(&session_cookie(app, &id)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}

/// `GET /login/once?code=C&next=/path`: a one-time code from `POST /api/login-link` starts a
/// session and goes on to `next` (a path of this site only).
async fn login_once(State(app): State<Arc<App>>, req: Request) -> Response {
    let q = query(&req);
    let next = field(&q, "next")
        // A path of this site: no scheme, no host (`//`), nothing a browser drops or turns
        // into a slash (control characters, spaces, backslashes).
        .filter(|n| {
            n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
        })
        .unwrap_or("/")
        .to_string();
    match field(&q, "code").and_then(|c| app.sessions.take_code(c)) {
        Some(who) => start_session(&app, who, &next),
        None => html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some(
                "That login link is not valid (used, expired or unknown).",
            )),
        ),
    }
}

/// `POST /api/login-link` (bearer token): a link that logs a browser in once, as the token's
/// principal, within a minute.
async fn login_link(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match authenticate(&app, &headers) {
        Auth::Bearer(who) => match app.sessions.new_code(who) {
            Ok(code) => json(
                StatusCode::OK,
                &serde_json::json!({
                    "path": format!("/login/once?code={code}"),
                    "expires_seconds": auth::CODE_LIFETIME.as_secs(),
                }),
            ),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
        },
        Auth::Session(..) => text(StatusCode::FORBIDDEN, "a login link needs a bearer token\n"),
        Auth::None | Auth::Invalid => unauthorized(),
    }
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap, body: String) -> Response {
    if let Auth::Session(_, csrf) = authenticate(&app, &headers) {
        let fields = form(&body);
        if !field(&fields, "csrf").is_some_and(|c| auth::same_secret(c, &csrf)) {
            return text(StatusCode::FORBIDDEN, "missing or wrong CSRF token\n");
        }
        if let Some(id) = cookie(&headers, COOKIE) {
            app.sessions.end(id);
        }
    }
    let mut r = redirect("/login");
    let secure = if app.tls { "; Secure" } else { "" };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The pages: a browser without a session goes to the login page.
async fn page(State(app): State<Arc<App>>, req: Request) -> Response {
    let (who, csrf) = match authenticate(&app, req.headers()) {
        Auth::Bearer(p) => (p, String::new()),
        Auth::Session(p, csrf) => (p, csrf),
        Auth::None | Auth::Invalid => return redirect("/login"),
    };
    let snap = snapshot::current(&app.snapshot);
    let ctx = pages::Ctx {
        who: &who,
        csrf: &csrf,
        snap: &snap,
    };
    let body = match req.uri().path() {
        "/" => {
            let audit = crate::store::audit::recent(&app.state_db, 20).unwrap_or_default();
            let alerts = alert_view::list(&app.state_db, snap.scheduled);
            pages::overview(&ctx, &audit, &alerts)
        }
        "/errors" => pages::errors(&ctx),
        "/insight" => pages::insight(&ctx),
        "/runs" => pages::runs(&ctx),
        "/alerts" => pages::alerts(&ctx, &alert_view::list(&app.state_db, snap.scheduled)),
        _ => {
            let q = query(&req);
            let dn = field(&q, "dn").unwrap_or("").to_string();
            let connector = field(&q, "connector")
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            let found = if dn.is_empty() {
                None
            } else {
                Some(lineage(&app, dn.clone(), connector.clone()).await)
            };
            pages::object(&ctx, &dn, connector.as_deref(), found.as_ref())
        }
    };
    html(StatusCode::OK, body)
}

/// An object's lineage, from the state opened read-only (off the runtime's thread).
async fn lineage(app: &App, dn: String, connector: Option<String>) -> Result<Vec<String>, String> {
    let _slot = app
        .lineage_slot
        .acquire()
        .await
        .map_err(|e| e.to_string())?;
    let (config, engine) = (app.config.clone(), app.engine);
    let work = move || -> Result<Vec<String>, String> {
        let runner =
            crate::runner::Runner::open_read_only(&config, engine).map_err(|e| e.to_string())?;
        runner
            .lineage(&dn, connector.as_deref())
            .map_err(|e| match e {
                crate::runner::Lineage::NotFound => {
                    format!("no connector-space object with DN \"{dn}\"")
                }
                crate::runner::Lineage::Ambiguous => {
                    "the DN is in several connectors: name the connector".to_string()
                }
            })
    };
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
}

async fn api(State(app): State<Arc<App>>, req: Request) -> Response {
    if let Err(r) = reader(&app, req.headers()) {
        return r;
    }
    let snap = snapshot::current(&app.snapshot);
    match req.uri().path() {
        "/api/status" => json(
            StatusCode::OK,
            &pages::status_json(&snap, &alert_view::list(&app.state_db, snap.scheduled)),
        ),
        "/api/errors" => json(
            StatusCode::OK,
            &serde_json::json!({
                "categories": snapshot::by_category(&snap.errors)
                    .iter()
                    .map(|(c, l)| serde_json::json!({"category": c, "count": l.len()}))
                    .collect::<Vec<_>>(),
                "errors": snap.errors,
            }),
        ),
        "/api/errors.csv" => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"idflow-sync-errors.csv\"",
                ),
            ],
            pages::errors_csv(&snap.errors),
        )
            .into_response(),
        "/api/runs" => json(StatusCode::OK, &snap.runs),
        "/api/insight" => json(StatusCode::OK, &snapshot::insight(&snap)),
        "/api/alerts" => json(
            StatusCode::OK,
            &alert_view::list(&app.state_db, snap.scheduled),
        ),
        "/api/audit" => match crate::store::audit::recent(&app.state_db, 200) {
            Ok(list) => json(
                StatusCode::OK,
                &list
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "id": a.id, "at": a.at, "who": a.who, "role": a.role,
                            "action": a.action, "detail": a.detail, "outcome": a.outcome,
                        })
                    })
                    .collect::<Vec<_>>(),
            ),
            Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("{e}\n")),
        },
        _ => {
            let q = query(&req);
            let Some(dn) = field(&q, "dn").filter(|d| !d.is_empty()) else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "the query needs dn=DN (and connector=NAME when the DN is in several)\n",
                );
            };
            let connector = field(&q, "connector")
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            match lineage(&app, dn.to_string(), connector).await {
                Ok(lines) => json(
                    StatusCode::OK,
                    &serde_json::json!({ "dn": dn, "lines": lines }),
                ),
                Err(e) => json(
                    StatusCode::NOT_FOUND,
                    &serde_json::json!({ "dn": dn, "error": e }),
                ),
            }
        }
    }
}

/// The principal of an operator action (the CSRF token checked for a session), or the answer
/// refusing it. Returns whether the request came from a page (answered by a redirect).
fn operator(
    app: &App,
    headers: &HeaderMap,
    fields: &[(String, String)],
) -> Result<(Principal, bool), Response> {
    let (who, page) = match authenticate(app, headers) {
        Auth::Bearer(p) => (p, false),
        Auth::Session(p, csrf) => {
            let sent = field(fields, "csrf")
                .or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
            if !sent.is_some_and(|c| auth::same_secret(c, &csrf)) {
                return Err(text(StatusCode::FORBIDDEN, "missing or wrong CSRF token\n"));
            }
            (p, true)
        }
        Auth::None | Auth::Invalid => return Err(unauthorized()),
    };
    if who.role < Role::Operator {
        return Err(text(
            StatusCode::FORBIDDEN,
            "this needs an operator token\n",
        ));
    }
    Ok((who, page))
}

fn audit(app: &App, who: &Principal, action: &str, detail: &str, outcome: &str) {
    tracing::info!(who = %who.name, action, detail, outcome, "operator action");
    if let Err(e) = crate::store::audit::record(
        &app.state_db,
        &who.name,
        who.role.as_str(),
        action,
        detail,
        outcome,
    ) {
        tracing::error!("recording the operator action in the audit table: {e}");
    }
}

fn done(page: bool, status: StatusCode, v: serde_json::Value) -> Response {
    if page {
        redirect("/")
    } else {
        json(status, &v)
    }
}

/// `POST /api/cycle` and `POST /api/allow-deletes` (operator).
async fn action(State(app): State<Arc<App>>, req: Request) -> Response {
    let (path, q) = (req.uri().path().to_string(), query(&req));
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"),
    };
    let mut fields = form(&body);
    fields.extend(q);
    let (who, page) = match operator(&app, &headers, &fields) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if path == "/api/cycle" {
        if !app.control.scheduled {
            audit(&app, &who, "cycle", "", "refused: --no-schedule");
            return done(
                page,
                StatusCode::CONFLICT,
                serde_json::json!({"error": "the service runs no cycles (--no-schedule)"}),
            );
        }
        app.control.request_cycle();
        audit(&app, &who, "cycle", "", "accepted");
        return done(
            page,
            StatusCode::ACCEPTED,
            serde_json::json!({"accepted": "cycle", "by": who.name}),
        );
    }
    let count = match field(&fields, "count").map(str::parse::<usize>) {
        Some(Ok(n)) if n > 0 => n,
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "count=N (the deletes to let through once, at least 1) is needed\n",
            );
        }
    };
    if !app.control.scheduled {
        audit(
            &app,
            &who,
            "allow-deletes",
            &count.to_string(),
            "refused: --no-schedule",
        );
        return done(
            page,
            StatusCode::CONFLICT,
            serde_json::json!({"error": "the service runs no cycles (--no-schedule)"}),
        );
    }
    app.control.allow_deletes_once(count);
    audit(&app, &who, "allow-deletes", &count.to_string(), "accepted");
    done(
        page,
        StatusCode::ACCEPTED,
        serde_json::json!({"accepted": "allow-deletes", "count": count, "by": who.name}),
    )
}

/// `POST /api/alerts/{id}/ack` (operator).
async fn ack(
    State(app): State<Arc<App>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"),
    };
    let fields = form(&body);
    let (who, page) = match operator(&app, &headers, &fields) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match alert_view::acknowledge(&app.state_db, &id, &who.name) {
        Ok(()) => {
            audit(&app, &who, "acknowledge-alert", &id, "accepted");
            done(
                page,
                StatusCode::OK,
                serde_json::json!({"acknowledged": id, "by": who.name}),
            )
        }
        Err(e) => {
            audit(
                &app,
                &who,
                "acknowledge-alert",
                &id,
                &format!("refused: {e}"),
            );
            if page {
                redirect("/alerts")
            } else {
                json(StatusCode::NOT_FOUND, &serde_json::json!({"error": e}))
            }
        }
    }
}
