//! The configuration model shared by the importers and the bundle writer.
//!
//! Consumes: nothing (filled by `import::xml` from a `Get-ADSyncServerConfiguration` export and
//! by `import::powershell` from a Synchronization Rules Editor script). Produces: [`Config`], a
//! faithful, format-neutral picture of Entra Connect's sync configuration that
//! `import::writer` turns into a bundle. Anything an importer cannot map becomes an
//! [`Unmapped`] entry, never a silent drop.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Everything read from one export.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub metaverse: Vec<ObjectType>,
    pub connectors: Vec<Connector>,
    pub rules: Vec<Rule>,
    /// Server-wide settings (`MV.xml` parameter-values: deletion threshold, staging mode,
    /// optional features, scheduler), carried into the deployment template.
    pub global_parameters: Vec<Parameter>,
    /// Constructs that could not be mapped (reported; the import fails without
    /// `--allow-partial`).
    pub unmapped: Vec<Unmapped>,
    /// What the importer decided on its own and the user should know (reported; the import
    /// does not fail for them): a branch read without evaluating its condition, a connector
    /// taken as the bundle's only one of its kind, a function read although never called.
    pub notes: Vec<Unmapped>,
}

/// An attribute type of the idflow schema language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttrType {
    String,
    Integer,
    Boolean,
    Binary,
    Reference,
    DateTime,
}

impl AttrType {
    /// The keyword of the rule language.
    pub fn keyword(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Integer => "integer",
            AttrType::Boolean => "boolean",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::DateTime => "datetime",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub ty: AttrType,
    pub multi: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ObjectType {
    pub name: String,
    /// The anchor attribute (connector object types only).
    pub anchor: Option<String>,
    pub attributes: Vec<Attribute>,
}

/// A parameter with its value in the export (values go to the `idflow.toml` template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub value: Option<String>,
}

/// A partition (an AD domain) with its container filters and per-partition parameters.
#[derive(Debug, Clone, Default)]
pub struct Partition {
    pub name: String,
    pub selected: bool,
    pub include_containers: Vec<String>,
    pub exclude_containers: Vec<String>,
    pub parameters: Vec<Parameter>,
}

#[derive(Debug, Clone, Default)]
pub struct Connector {
    /// Entra's connector id (`{ae4db4cc-...}`), used by rules to refer to it.
    pub id: String,
    pub name: String,
    /// The idflow connector kind: `ad`, `entra`, `ldap`, ...
    pub kind: String,
    /// Entra's connector category (`AD`, `Extensible2`, ...), kept for the report.
    pub category: String,
    pub object_types: Vec<ObjectType>,
    /// The attribute inclusion list.
    pub included_attributes: Vec<String>,
    pub parameters: Vec<Parameter>,
    pub partitions: Vec<Partition>,
    pub source: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeClause {
    pub attribute: String,
    /// Entra's operator spelling as exported (EQUAL, ISBITNOTSET, ...).
    pub operator: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinCondition {
    /// The connector-space attribute.
    pub cs_attribute: String,
    /// The metaverse attribute.
    pub mv_attribute: String,
    pub case_sensitive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    Direct,
    Constant,
    Expression,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub target: String,
    pub kind: FlowKind,
    /// The source: the attribute name (Direct), the constant's text (Constant), or the
    /// expression text exactly as exported (Expression).
    pub source: String,
    /// Entra's merge type as exported: Update, Merge, MergeCaseInsensitive, Replace.
    pub merge: String,
    pub execute_once: bool,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub description: String,
    pub immutable_tag: Option<String>,
    pub direction: Direction,
    pub disabled: bool,
    /// Entra's connector id (`{guid}`); for a script, what `connector_ref` says: the id, the
    /// name, or the expression as written. Resolved to a bundle connector's name before the
    /// rule is written (`import::connectors`).
    pub connector: String,
    /// How the configuration names the connector.
    pub connector_ref: ConnectorRef,
    pub source_type: String,
    pub target_type: String,
    /// Join, StickyJoin, Provision.
    pub link_type: String,
    pub precedence: i64,
    pub password_sync: bool,
    /// ORed groups of ANDed clauses.
    pub scope: Vec<Vec<ScopeClause>>,
    /// Join groups in evaluation order.
    pub joins: Vec<Vec<JoinCondition>>,
    pub flows: Vec<Flow>,
    pub source: PathBuf,
}

/// How a rule names its connector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConnectorRef {
    /// By Entra identifier, in `Rule::connector`.
    #[default]
    Id,
    /// By name (`Get-ADSyncConnector -Name`, or a `Where-Object` filter on the name).
    Name(String),
    /// An expression that cannot be evaluated before the script runs.
    Expression {
        /// The expression that gives it, as written in the script (the key `--connector`
        /// names it by).
        written: String,
        /// Where it is or what it is, for messages (`line 12`, or what a variable holds).
        origin: String,
        /// The connector kind the script implies (`ad`, `entra`), when it does.
        kind: Option<String>,
    },
}

/// Something the importer could not carry over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    pub source: PathBuf,
    /// The rule or connector it belongs to.
    pub context: String,
    pub what: String,
}

/// Counts used by tests and the import summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub rules: usize,
    pub scope_clauses: usize,
    pub join_conditions: usize,
    pub flows: usize,
}

impl Config {
    pub fn counts(&self) -> Counts {
        Counts {
            rules: self.rules.len(),
            scope_clauses: self
                .rules
                .iter()
                .map(|r| r.scope.iter().map(Vec::len).sum::<usize>())
                .sum(),
            join_conditions: self
                .rules
                .iter()
                .map(|r| r.joins.iter().map(Vec::len).sum::<usize>())
                .sum(),
            flows: self.rules.iter().map(|r| r.flows.len()).sum(),
        }
    }

    /// Connectors by Entra id.
    pub fn connectors_by_id(&self) -> BTreeMap<&str, &Connector> {
        self.connectors.iter().map(|c| (c.id.as_str(), c)).collect()
    }
}
