//! The HTTP listener of `idflow serve`.
//!
//! Consumes: requests on the listening address (127.0.0.1 by default) and the shared
//! [`Metrics`]. Produces: `GET /healthz` (200, `ok`: the process is up and serving) and
//! `GET /metrics` (the Prometheus metrics); 404 for any other path and 405 for any other
//! method. It runs on a thread of its own (`tiny_http`, blocking, no async runtime) and stops
//! once the [`Stop`] flag is set.

use super::metrics::{CONTENT_TYPE, Metrics};
use super::shutdown::Stop;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tiny_http::{Header, Method, Response, Server};

/// A bound listener, not yet serving.
pub struct Listener {
    server: Server,
    pub addr: SocketAddr,
}

/// Binds `addr` (port 0 takes a free port; [`Listener::addr`] is the one bound).
pub fn bind(addr: &str) -> Result<Listener, String> {
    let server = Server::http(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| format!("cannot listen on {addr}: not an IP address"))?;
    Ok(Listener {
        server,
        addr: bound,
    })
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("the headers of this module are ASCII constants")
}

/// Serves requests until `stop` is set.
pub fn serve(listener: Listener, metrics: Arc<Metrics>, stop: Stop) {
    while !stop.is_set() {
        let req = match listener.server.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("http: {e}");
                continue;
            }
        };
        let path = req.url().split('?').next().unwrap_or("").to_string();
        let response = match (req.method(), path.as_str()) {
            (Method::Get | Method::Head, "/healthz") => Response::from_string("ok\n")
                .with_header(header("Content-Type", "text/plain; charset=utf-8")),
            (Method::Get | Method::Head, "/metrics") => Response::from_string(metrics.encode())
                .with_header(header("Content-Type", CONTENT_TYPE)),
            (_, "/healthz" | "/metrics") => Response::from_string("method not allowed\n")
                .with_status_code(405)
                .with_header(header("Allow", "GET, HEAD")),
            _ => Response::from_string("not found\n").with_status_code(404),
        };
        if let Err(e) = req.respond(response) {
            tracing::debug!("http: answering: {e}");
        }
    }
}
