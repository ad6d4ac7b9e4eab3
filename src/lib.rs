//! idflow: a rules-as-code identity synchronization engine whose expression language is Entra
//! Connect Sync's declarative provisioning expression language.
//!
//! Pipeline stages (see ARCHITECTURE.md): `source` (files) → `syntax` (lex, parse, print) →
//! `sema` (resolve against schemas and the `stdlib`, type check, lint) → later stages. Every
//! front-end pass returns its result together with all diagnostics (`diag`); none stops at the
//! first error. `frontend` drives the passes; `cli` is the only module that prints.
//!
//! ```
//! use idflow::source::SourceMap;
//!
//! let mut map = SourceMap::new();
//! map.add("bundle.idf", r#"
//!     metaverse { object person { displayName string } }
//!     connector "hr" csv { object worker anchor id { id string  name string } }
//!     inbound rule "In from HR" {
//!       connector "hr"  source worker  target person  link provision  precedence 1
//!       flow displayName <- Trim([nmae])
//!     }
//! "#);
//! let checked = idflow::frontend::check(&map);
//! assert_eq!(checked.diagnostics.len(), 1);
//! assert_eq!(checked.diagnostics[0].code, "E0201"); // unknown attribute, "did you mean `name`?"
//! ```

#![deny(unsafe_code)]

/// The allocator of every program built on the library: the engine allocates and frees many
/// small values, often on one thread and freed on another (an import's reader thread, a
/// parallel sync's workers), where it costs less than the system's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod builtins;
pub mod cli;
pub mod config;
pub mod connector;
pub mod diag;
pub mod dn;
pub mod engine;
pub mod eval;
pub mod files;
pub mod frontend;
pub mod r#gen;
pub mod import;
pub mod ir;
pub mod lsp;
pub mod runner;
pub mod sema;
pub mod serve;
pub mod source;
pub mod stdlib;
pub mod store;
pub mod syntax;
pub mod testrun;
pub mod value;
