//! Language server benchmark: how long after one edit the editor gets fresh diagnostics, on
//! the shipped default bundle (23 files, 63 rules).
//!
//! The server (`idflow::lsp::serve`) runs on a thread of its own behind an in-memory
//! connection, with the debounce set to 0 ms, so the figure is the refresh itself: apply the
//! edit, re-check the whole bundle, convert and publish the diagnostics. Each iteration sends
//! one incremental edit to `inbound/contoso-com-user.idf` — alternately misspelling an
//! attribute and restoring it, so every edit changes the file's diagnostics — and waits for
//! the `textDocument/publishDiagnostics` of that file.
//!
//! Run: `cargo bench --bench lsp`. Results: benches/RESULTS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use lsp_server::{Connection, Message, Notification, Request, RequestId};
use lsp_types::notification::{self as note, Notification as _};
use lsp_types::request::{self as req, Request as _};
use lsp_types::{
    DidChangeTextDocumentParams, DidOpenTextDocumentParams, Position, PublishDiagnosticsParams,
    Range, TextDocumentContentChangeEvent, TextDocumentItem, Uri, VersionedTextDocumentIdentifier,
};
use std::path::PathBuf;
use std::str::FromStr;

fn uri(path: &std::path::Path) -> Uri {
    let mut s = String::from("file://");
    for &b in path.to_str().expect("a UTF-8 path").as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    Uri::from_str(&s).expect("a file URI")
}

/// Waits for the next diagnostics of `uri`; returns how many there are.
fn diagnostics_of(client: &Connection, uri: &Uri) -> usize {
    loop {
        match client.receiver.recv().expect("the server is running") {
            Message::Notification(n) if n.method == note::PublishDiagnostics::METHOD => {
                let p: PublishDiagnosticsParams =
                    serde_json::from_value(n.params).expect("diagnostics");
                if p.uri == *uri {
                    return p.diagnostics.len();
                }
            }
            _ => {}
        }
    }
}

fn lsp(c: &mut Criterion) {
    let (server, client) = Connection::memory();
    let thread = std::thread::spawn(move || idflow::lsp::serve(server));
    let init = serde_json::json!({
        "processId": null,
        "rootUri": null,
        "capabilities": {},
        "initializationOptions": { "debounceMs": 0 },
    });
    let id = RequestId::from(1);
    client
        .sender
        .send(Request::new(id.clone(), req::Initialize::METHOD.into(), init).into())
        .expect("send");
    loop {
        if let Message::Response(r) = client.receiver.recv().expect("initialize answer")
            && r.id == id
        {
            break;
        }
    }
    client
        .sender
        .send(Notification::new(note::Initialized::METHOD.into(), serde_json::json!({})).into())
        .expect("send");

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("rules/entra-default/inbound/contoso-com-user.idf");
    let text = std::fs::read_to_string(&path).expect("the default bundle");
    let u = uri(&path);
    let open = DidOpenTextDocumentParams {
        text_document: TextDocumentItem::new(u.clone(), "idf".into(), 1, text.clone()),
    };
    client
        .sender
        .send(Notification::new(note::DidOpenTextDocument::METHOD.into(), open).into())
        .expect("send");
    assert_eq!(
        diagnostics_of(&client, &u),
        0,
        "the default bundle checks clean"
    );

    // `[cn]` of the first rule that reads it: the edit toggles it with `[cnn]`.
    let at = text.find("[cn]").expect("a [cn] in the file");
    let line = text[..at].matches('\n').count() as u32;
    let col = (at - text[..at].rfind('\n').map_or(0, |i| i + 1)) as u32;
    let mut version = 1;
    let mut broken = false;
    let mut edit = |client: &Connection| {
        version += 1;
        let (len, new) = if broken { (5, "[cn]") } else { (4, "[cnn]") };
        broken = !broken;
        let change = DidChangeTextDocumentParams {
            text_document: VersionedTextDocumentIdentifier::new(u.clone(), version),
            content_changes: vec![TextDocumentContentChangeEvent {
                range: Some(Range::new(
                    Position::new(line, col),
                    Position::new(line, col + len),
                )),
                range_length: None,
                text: new.into(),
            }],
        };
        client
            .sender
            .send(Notification::new(note::DidChangeTextDocument::METHOD.into(), change).into())
            .expect("send");
        let n = diagnostics_of(client, &u);
        assert_eq!(n, usize::from(broken));
    };
    c.bench_function("lsp: diagnostics after one edit (entra-default)", |b| {
        b.iter(|| edit(&client))
    });

    let shutdown = Request::new(RequestId::from(2), req::Shutdown::METHOD.into(), ());
    client.sender.send(shutdown.into()).expect("send");
    client
        .sender
        .send(Notification::new(note::Exit::METHOD.into(), ()).into())
        .expect("send");
    drop(client);
    let _ = thread.join();
}

criterion_group!(benches, lsp);
criterion_main!(benches);
