//! The registry of diagnostic codes: severity, summary and a triggering example for each.
//!
//! Consumes nothing. Produces: [`CODES`], read by `Diagnostic::new` (severity), by
//! `idflow explain CODE`, and by the tests (every code has a fixture that triggers it).
//!
//! Ranges: E00xx syntax, E01xx declarations, E02xx expressions, E03xx rule structure,
//! E04xx tests, E05xx runtime errors, W06xx lints.

use super::Severity;

/// One registered code.
#[derive(Debug, Clone, Copy)]
pub struct Code {
    pub code: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
    /// A minimal snippet that triggers it.
    pub example: &'static str,
}

const E: Severity = Severity::Error;
const W: Severity = Severity::Warning;

pub const CODES: &[Code] = &[
    Code {
        code: "E0001",
        severity: E,
        summary: "invalid character",
        example: "flow a <- [b] ~",
    },
    Code {
        code: "E0002",
        severity: E,
        summary: "unterminated string literal",
        example: "flow a <- \"abc",
    },
    Code {
        code: "E0003",
        severity: E,
        summary: "unexpected token",
        example: "flow a <- IIF(,)",
    },
    Code {
        code: "E0004",
        severity: E,
        summary: "unexpected end of file",
        example: "inbound rule \"r\" {",
    },
    Code {
        code: "E0005",
        severity: E,
        summary: "number literal out of range",
        example: "flow n <- 99999999999999999999",
    },
    Code {
        code: "E0006",
        severity: E,
        summary: "invalid typed literal in a test",
        example: "given ... { objectGUID = guid \"nope\" }",
    },
    Code {
        code: "E0101",
        severity: E,
        summary: "duplicate declaration",
        example: "object user ... object user ...",
    },
    Code {
        code: "E0102",
        severity: E,
        summary: "unknown connector",
        example: "connector \"nope.com\"",
    },
    Code {
        code: "E0103",
        severity: E,
        summary: "unknown object type",
        example: "source usr",
    },
    Code {
        code: "E0104",
        severity: E,
        summary: "missing required rule setting",
        example: "inbound rule \"r\" { source user }",
    },
    Code {
        code: "E0105",
        severity: E,
        summary: "rule setting given twice",
        example: "precedence 1 precedence 2",
    },
    Code {
        code: "E0106",
        severity: E,
        summary: "unknown link type",
        example: "link provison",
    },
    Code {
        code: "E0107",
        severity: E,
        summary: "anchor attribute not declared in its object type",
        example: "object user anchor objectGUID { cn string }",
    },
    Code {
        code: "E0108",
        severity: E,
        summary: "unknown connector kind",
        example: "connector \"c\" ldapp { }",
    },
    Code {
        code: "E0109",
        severity: E,
        summary: "unknown attribute type",
        example: "mail strng",
    },
    Code {
        code: "E0110",
        severity: E,
        summary: "link type not valid for the rule's direction",
        example: "outbound rule ... link stickyjoin",
    },
    Code {
        code: "E0111",
        severity: E,
        summary: "no metaverse declared",
        example: "a bundle with rules but no `metaverse { }`",
    },
    Code {
        code: "E0201",
        severity: E,
        summary: "unknown attribute",
        example: "flow mail <- [mial]",
    },
    Code {
        code: "E0202",
        severity: E,
        summary: "unknown function",
        example: "flow mail <- Trm([mail])",
    },
    Code {
        code: "E0203",
        severity: E,
        summary: "wrong number of arguments",
        example: "flow mail <- Left([mail])",
    },
    Code {
        code: "E0204",
        severity: E,
        summary: "argument of the wrong type",
        example: "flow n <- BitAnd([mail], 2)",
    },
    Code {
        code: "E0205",
        severity: E,
        summary: "unknown parameter",
        example: "flow upn <- [cn] & %Domain.FQNN%",
    },
    Code {
        code: "E0206",
        severity: E,
        summary: "unknown or out-of-scope variable",
        example: "flow x <- Trim($item)",
    },
    Code {
        code: "E0207",
        severity: E,
        summary: "unknown constant",
        example: "flow x <- ConvertFromBase64([a], UTF9)",
    },
    Code {
        code: "E0208",
        severity: E,
        summary: "flow result type does not match the target attribute",
        example: "flow accountEnabled <- [cn]",
    },
    Code {
        code: "E0209",
        severity: E,
        summary: "multi-valued result flows into a single-valued attribute",
        example: "flow mail <- [proxyAddresses]",
    },
    Code {
        code: "E0210",
        severity: E,
        summary: "operator applied to operands of the wrong type",
        example: "flow n <- [cn] + 1",
    },
    Code {
        code: "E0211",
        severity: E,
        summary: "Switch arguments are not in condition/value pairs",
        example: "Switch(True, 1, False)",
    },
    Code {
        code: "E0212",
        severity: E,
        summary: "a $variable binder is required here",
        example: "Select([x], [proxyAddresses], Trim($item))",
    },
    Code {
        code: "E0213",
        severity: E,
        summary: "an attribute name in quotes is required here",
        example: "ImportedValue([mail])",
    },
    Code {
        code: "E0214",
        severity: E,
        summary: "a value is used where a boolean condition is required",
        example: "IIF([cn], 1, 2)",
    },
    Code {
        code: "E0215",
        severity: E,
        summary: "expression nested too deeply",
        example: "((((... 500 levels ...))))",
    },
    Code {
        code: "E0301",
        severity: E,
        summary: "duplicate rule name",
        example: "two rules named \"In from AD - User Join\"",
    },
    Code {
        code: "E0302",
        severity: E,
        summary: "precedence collision on a shared target attribute",
        example: "two inbound rules with precedence 100 both flowing to mail",
    },
    Code {
        code: "W0303",
        severity: W,
        summary: "in-scope join rules of one connector and object type have different join conditions",
        example: "two inbound user rules joining on different attributes",
    },
    Code {
        code: "E0304",
        severity: E,
        summary: "mixed merge types on one target attribute",
        example: "flow proxyAddresses <- [a] merge  /  flow proxyAddresses <- [b] replace",
    },
    Code {
        code: "E0305",
        severity: E,
        summary: "outbound provision rule without a `dn` flow",
        example: "outbound rule ... link provision (no flow dn)",
    },
    Code {
        code: "E0306",
        severity: E,
        summary: "two flows to the same target attribute in one rule",
        example: "flow mail <- [a]  flow mail <- [b]",
    },
    Code {
        code: "E0307",
        severity: E,
        summary: "unknown scope operator",
        example: "mail EQUALS \"x\"",
    },
    Code {
        code: "E0308",
        severity: E,
        summary: "scope operator value missing or not allowed",
        example: "mail ISNULL \"x\"",
    },
    Code {
        code: "E0309",
        severity: E,
        summary: "`dn` flow on an inbound rule",
        example: "inbound rule ... flow dn <- [cn]",
    },
    Code {
        code: "E0310",
        severity: E,
        summary: "join condition compares attributes of incompatible types",
        example: "join { objectGUID = mail }",
    },
    Code {
        code: "W0311",
        severity: W,
        summary: "flows of a `joinnoflow` rule are never applied",
        example: "inbound rule ... link joinnoflow ... flow mail <- [mail]",
    },
    Code {
        code: "E0401",
        severity: E,
        summary: "test value does not fit the attribute type",
        example: "given ... { userAccountControl = \"x\" }",
    },
    Code {
        code: "E0402",
        severity: E,
        summary: "test block step in the wrong place",
        example: "expect ... before any sync",
    },
    Code {
        code: "E0501",
        severity: E,
        summary: "Error(...) was evaluated: a custom error on the object",
        example: "IIF(IsPresent([mail]), [mail], Error(\"no mail\"))",
    },
    Code {
        code: "E0502",
        severity: E,
        summary: "a value of the wrong type reached a function at run time",
        example: "CStr([objectGUID]) on a binary value",
    },
    Code {
        code: "E0503",
        severity: E,
        summary: "an argument has an invalid value",
        example: "ConvertFromBase64(\"@@@\")",
    },
    Code {
        code: "E0504",
        severity: E,
        summary: "index out of range",
        example: "Item([proxyAddresses], 9)",
    },
    Code {
        code: "E0505",
        severity: E,
        summary: "arithmetic error: division by zero or overflow",
        example: "[n] / 0",
    },
    Code {
        code: "E0506",
        severity: E,
        summary: "multi-valued arguments of different lengths",
        example: "[proxyAddresses] & [otherMailbox]",
    },
    Code {
        code: "E0510",
        severity: E,
        summary: "a result exceeds the string size limit",
        example: "PadLeft(\"x\", 999999999, \"y\")",
    },
    Code {
        code: "E0511",
        severity: E,
        summary: "a result exceeds the value count limit",
        example: "Split of a huge string",
    },
    Code {
        code: "E0512",
        severity: E,
        summary: "an evaluation exceeds the step limit",
        example: "Select over a very large collection",
    },
    Code {
        code: "E0513",
        severity: E,
        summary: "an evaluation builds more bytes in total than its budget (64 MiB by default)",
        example: "Count(Select($x, Split(PadLeft(\"\", 2499, \",\"), \",\"), PadLeft(\"\", 1000000, \"a\")))",
    },
    Code {
        code: "W0601",
        severity: W,
        summary: "`* /` mixed with `+ -` without parentheses",
        example: "flow n <- 2 * 5 + 3",
    },
    Code {
        code: "W0602",
        severity: W,
        summary: "rule has no flows, joins or effect",
        example: "inbound rule ... link join (no flows)",
    },
    Code {
        code: "W0604",
        severity: W,
        summary: "Direct flow of a multi-valued attribute into a single-valued one",
        example: "flow photo <- [photo]   (photo multi-valued in AD, single in the metaverse)",
    },
    Code {
        code: "W0603",
        severity: W,
        summary: "comparison of a boolean with a string literal",
        example: "IIF([accountEnabled] = \"True\", 1, 2)",
    },
];

/// Looks a code up.
pub fn find(code: &str) -> Option<&'static Code> {
    CODES.iter().find(|c| c.code == code)
}

/// The registered severity of a code (unknown codes are errors).
pub fn severity(code: &str) -> Severity {
    find(code).map_or(Severity::Error, |c| c.severity)
}
