//! Importers of Entra Connect configurations.
//!
//! Consumes: a `Get-ADSyncServerConfiguration` export folder (`xml`) or a Synchronization Rules
//! Editor PowerShell script (`powershell`). Produces: a [`model::Config`], which `writer` turns
//! into an idflow bundle (schemas, rules grouped by direction and object type, an `idflow.toml`
//! template), every file formatted by `idflow fmt` and checked before it is written. A script's
//! rules name their connectors as the script does: `connectors` resolves them against the
//! bundle they go into, `merge` puts them into its rule files (a rule of the same name is
//! replaced where it is, with what changed), and `extend` adds to its schema files the object
//! types and attributes the rules use that it does not declare, typed from the directory
//! schemas idflow ships (`schemas`).

pub mod connectors;
pub mod extend;
pub mod merge;
pub mod model;
pub mod powershell;
pub mod schemas;
pub mod writer;
pub mod xml;
