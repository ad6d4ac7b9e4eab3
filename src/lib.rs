//! idflow: a rules-as-code identity synchronization engine whose expression language is Entra
//! Connect Sync's declarative provisioning expression language.
//!
//! Pipeline stages (see ARCHITECTURE.md): `source` (files) → `syntax` (lex, parse, print) →
//! `sema` (resolve against schemas and the `stdlib`, type check, lint) → later stages. Every
//! front-end pass returns its result together with all diagnostics (`diag`); none stops at the
//! first error. `frontend` drives the passes; `cli` is the only module that prints.

pub mod cli;
pub mod diag;
pub mod frontend;
pub mod sema;
pub mod source;
pub mod stdlib;
pub mod syntax;
