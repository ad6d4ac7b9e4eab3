//! HTTP for the connectors that talk to services (SCIM): one reqwest client over rustls (the
//! ring provider, no OpenSSL), the bearer token, timeouts, a rate limit, and retries.
//!
//! Consumes: an [`HttpConfig`] and the service's base URL and token. Produces: [`Reply`]s
//! (status, body, ETag) or a [`Failure`] once a request could not be answered.
//!
//! - **Retries.** A request answered 429, 502, 503 or 504, or one that got no answer (a
//!   refused connection, a reset, a timeout), is sent again after a pause: exponential backoff
//!   from 0.5 s (doubling, at most 30 s) with jitter (a random point in the second half of the
//!   interval), or the server's `Retry-After` when it gives one (seconds or an HTTP date) and
//!   it is at most [`MAX_RETRY_AFTER`]; a longer `Retry-After` is not waited for within the
//!   call: it comes back as [`Failure::Busy`] with the time, for the caller to report. After
//!   `retries` attempts the last failure is returned. A request that is not idempotent
//!   (`POST`) is sent again only when it surely did not reach the server (the connection was
//!   refused, or the server said 429 or 503): after a timeout or a reset the caller decides
//!   (a SCIM add first looks whether the object was created).
//! - **Rate limit.** With `rate_limit`, requests start at most that many per second, whatever
//!   the concurrency (the slots are handed out in order, across every request of the client).
//! - **Secrets.** The token is held in a [`Token`], whose `Debug` shows nothing, and is only
//!   written into the `Authorization` header; no message of this module holds it.
//! - **TLS.** Certificates are verified against `ca_file`'s authorities when it is given, else
//!   the system's (rustls-platform-verifier); `tls_insecure` turns verification off.

use super::ConnectorError;
use crate::config::HttpConfig;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest `Retry-After` waited for within a call.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// The first pause before a retry; it doubles with each attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A bearer token or client secret: shown as `Token(..)`.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(s: String) -> Token {
        Token(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// An answer of the server.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// The `ETag` header.
    pub etag: Option<String>,
    /// The `Retry-After` header.
    pub retry_after: Option<Duration>,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A request that could not be answered.
#[derive(Debug, Clone)]
pub enum Failure {
    /// No answer (refused, reset, timed out), after the retries. `maybe_applied`: the request
    /// may have reached the server (not a refused connection).
    Transport {
        message: String,
        maybe_applied: bool,
    },
    /// Throttled or unavailable after the retries (or asked to wait longer than
    /// [`MAX_RETRY_AFTER`]).
    Busy {
        status: u16,
        after: Option<Duration>,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport { message, .. } => f.write_str(message),
            Failure::Busy { status, after } => {
                write!(f, "the server answered {status}")?;
                if let Some(a) = after {
                    write!(f, " (retry after {} s)", a.as_secs().max(1))?;
                }
                Ok(())
            }
        }
    }
}

/// The HTTP methods the connectors use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: Method,
    pub url: &'a str,
    pub body: Option<Vec<u8>>,
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// The body's media type.
    pub content_type: &'static str,
    /// A bearer token for this request instead of the client's.
    pub bearer: Option<&'a str>,
}

impl<'a> Request<'a> {
    pub fn new(method: Method, url: &'a str) -> Request<'a> {
        Request {
            method,
            url,
            body: None,
            if_match: None,
            content_type: "application/json",
            bearer: None,
        }
    }

    /// With a form body (`application/x-www-form-urlencoded`).
    pub fn form(mut self, body: String) -> Request<'a> {
        self.body = Some(body.into_bytes());
        self.content_type = "application/x-www-form-urlencoded";
        self
    }

    /// With this bearer token.
    pub fn bearer(mut self, token: Option<&'a str>) -> Request<'a> {
        self.bearer = token;
        self
    }

    pub fn json(mut self, body: &serde_json::Value, content_type: &'static str) -> Request<'a> {
        self.body = Some(body.to_string().into_bytes());
        self.content_type = content_type;
        self
    }

    pub fn if_match(mut self, etag: Option<&'a str>) -> Request<'a> {
        self.if_match = etag;
        self
    }
}

/// Hands out start times at most `per_second` apart.
#[derive(Debug)]
struct Limiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Limiter {
    async fn wait(&self) {
        let slot = {
            let Ok(mut next) = self.next.lock() else {
                return;
            };
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        let now = Instant::now();
        if slot > now {
            tokio::time::sleep(slot - now).await;
        }
    }
}

/// A client of one service.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    token: Option<Token>,
    retries: u32,
    limiter: Option<Arc<Limiter>>,
    /// Names the service in messages (the connector).
    pub name: String,
}

impl Http {
    /// A client for `cfg`. Must be called within the connector's runtime (`Runtime::enter`).
    pub fn new(name: &str, cfg: &HttpConfig, token: Option<Token>) -> Result<Http, ConnectorError> {
        let fail = |message: String| ConnectorError {
            source: name.to_string(),
            line: None,
            message,
        };
        let tls = tls_config(cfg).map_err(fail)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("idflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Http {
            client,
            token,
            retries: cfg.retries,
            limiter: cfg.rate_limit.map(|r| {
                Arc::new(Limiter {
                    interval: Duration::from_secs_f64(1.0 / r),
                    next: Mutex::new(Instant::now()),
                })
            }),
            name: name.to_string(),
        })
    }

    /// Replaces the bearer token (a refreshed one).
    pub fn set_token(&mut self, token: Option<Token>) {
        self.token = token;
    }

    /// Sends a request, retrying what is worth retrying (see the module doc).
    pub async fn send(&self, req: Request<'_>) -> Result<Reply, Failure> {
        let idempotent = req.method != Method::Post;
        let mut attempt = 0u32;
        loop {
            if let Some(l) = &self.limiter {
                l.wait().await;
            }
            let mut rb = self
                .client
                .request(req.method.reqwest(), req.url)
                .header("Accept", "application/scim+json, application/json");
            if let Some(t) = req.bearer.or(self.token.as_ref().map(Token::expose)) {
                rb = rb.header("Authorization", format!("Bearer {t}"));
            }
            if let Some(e) = req.if_match {
                rb = rb.header("If-Match", e);
            }
            if let Some(b) = &req.body {
                rb = rb.header("Content-Type", req.content_type).body(b.clone());
            }
            let last = attempt >= self.retries;
            let wait = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let header = |n: &str| {
                        resp.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    let etag = header("ETag");
                    let retry_after = header("Retry-After").and_then(|v| parse_retry_after(&v));
                    let body = match resp.bytes().await {
                        Ok(b) => b.to_vec(),
                        Err(e) => {
                            // The answer was cut: the request reached the server.
                            if last || !idempotent {
                                return Err(Failure::Transport {
                                    message: format!(
                                        "{} {}: the answer was cut: {}",
                                        req.method.as_str(),
                                        req.url,
                                        describe(&e)
                                    ),
                                    maybe_applied: true,
                                });
                            }
                            attempt += 1;
                            tokio::time::sleep(backoff(attempt)).await;
                            continue;
                        }
                    };
                    if !matches!(status, 429 | 502 | 503 | 504) {
                        return Ok(Reply {
                            status,
                            body,
                            etag,
                            retry_after,
                        });
                    }
                    // 502 and 504 may come after the service applied a POST.
                    let unapplied = matches!(status, 429 | 503);
                    let too_long = retry_after.is_some_and(|a| a > MAX_RETRY_AFTER);
                    if last || too_long || (!idempotent && !unapplied) {
                        return Err(Failure::Busy {
                            status,
                            after: retry_after,
                        });
                    }
                    retry_after.unwrap_or_else(|| backoff(attempt + 1))
                }
                Err(e) => {
                    let refused = e.is_connect();
                    if last || (!idempotent && !refused) {
                        return Err(Failure::Transport {
                            message: format!(
                                "{} {}: {}",
                                req.method.as_str(),
                                req.url,
                                describe(&e)
                            ),
                            maybe_applied: !refused,
                        });
                    }
                    backoff(attempt + 1)
                }
            };
            attempt += 1;
            tracing::debug!(
                service = self.name.as_str(),
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying a request"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// A reqwest error as text, with its causes (reqwest's own text is only the outermost one),
/// without the URL (the caller names it).
fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        let text = e.to_string();
        match e.url() {
            Some(u) => text
                .replace(&format!(" ({u})"), "")
                .replace(u.as_str(), "the URL"),
            None => text,
        }
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        source = s.source();
    }
    out
}

/// The pause before retry `attempt` (1-based): 0.5 s doubling, at most 30 s, a random point in
/// the second half of the interval.
pub fn backoff(attempt: u32) -> Duration {
    let full = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    let half = full / 2;
    half + half.mul_f64(random_unit())
}

/// A random number in [0, 1) (the standard library's per-process random hash keys).
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A `Retry-After` value: seconds, or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let now = jiff::Timestamp::now();
    let secs = (when.as_second() - now.as_second()).max(0);
    Some(Duration::from_secs(secs as u64))
}

/// The rustls configuration: `ca_file`'s authorities, else the platform's verifier; no
/// verification with `tls_insecure`. The ring provider, the one the LDAP connector uses.
fn tls_config(cfg: &HttpConfig) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    // The process's provider: ring, the only one built in (the LDAP connector's too).
    let builder = rustls::ClientConfig::builder();
    let mut config = if cfg.tls_insecure {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .ok_or("no TLS crypto provider")?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else if let Some(path) = &cfg.ca_file {
        let fail = |m: String| format!("ca_file {}: {m}", path.display());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))? {
            roots
                .add(c.map_err(|e| fail(e.to_string()))?)
                .map_err(|e| fail(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(fail("no certificate in the file".into()));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        use rustls_platform_verifier::BuilderVerifierExt;
        builder
            .with_platform_verifier()
            .map_err(|e| format!("the system's certificate authorities: {e}"))?
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts every certificate (`tls_insecure`, for tests): signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        for attempt in 1..=10 {
            let full = BACKOFF_BASE
                .saturating_mul(1 << (attempt - 1))
                .min(BACKOFF_MAX);
            let b = backoff(attempt);
            assert!(b >= full / 2 && b <= full, "{attempt}: {b:?}");
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    /// A server on loopback answering each connection with the next canned answer (None:
    /// closes the connection without an answer); returns its URL and the requests it got.
    fn canned(answers: Vec<Option<&'static str>>) -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", l.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for a in answers {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                if let Some(a) = a {
                    let _ = s.write_all(a.as_bytes());
                }
            }
        });
        (url, rx)
    }

    fn client(retries: u32) -> (tokio::runtime::Runtime, Http) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cfg = HttpConfig {
            url: crate::config::UrlSource::Literal(String::new()),
            concurrency: 1,
            rate_limit: None,
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            retries,
            ca_file: None,
            tls_insecure: false,
            page_size: 10,
        };
        let http = {
            let _g = rt.enter();
            Http::new("test", &cfg, Some(Token::new("s3cr3t".into()))).unwrap()
        };
        (rt, http)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";

    #[test]
    fn throttled_and_unavailable_answers_are_retried_after_retry_after() {
        let (url, requests) = canned(vec![
            Some(
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
            Some(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
            Some(OK),
        ]);
        let (rt, http) = client(3);
        let t = Instant::now();
        let r = rt
            .block_on(http.send(Request::new(Method::Post, &url)))
            .unwrap();
        assert_eq!(r.status, 200);
        // Retry-After: 1 s, then a backoff of at least 0.5 s.
        assert!(
            t.elapsed() >= Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        let got: Vec<String> = requests.try_iter().collect();
        assert_eq!(got.len(), 3);
        assert!(got[0].contains("Bearer s3cr3t"), "{}", got[0]);
    }

    #[test]
    fn a_long_retry_after_and_a_lost_post_come_back_at_once() {
        let (url, _) = canned(vec![Some(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 600\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )]);
        let (rt, http) = client(3);
        match rt.block_on(http.send(Request::new(Method::Get, &url))) {
            Err(Failure::Busy { status: 429, after }) => {
                assert_eq!(after, Some(Duration::from_secs(600)))
            }
            other => panic!("{other:?}"),
        }
        // The connection closes without an answer: a POST may have been applied and is not
        // sent again; a GET is.
        let (url, requests) = canned(vec![None, None, Some(OK)]);
        match rt.block_on(http.send(Request::new(Method::Post, &url))) {
            Err(Failure::Transport {
                maybe_applied,
                message,
            }) => {
                assert!(maybe_applied);
                assert!(!message.contains("s3cr3t"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(requests.try_iter().count(), 1);
        let r = rt
            .block_on(http.send(Request::new(Method::Get, &url)))
            .unwrap();
        assert_eq!(r.status, 200);
    }

    #[test]
    fn tokens_are_not_shown() {
        let t = Token::new("s3cr3t".into());
        assert_eq!(format!("{t:?}"), "Token(..)");
    }
}
