//! The file connectors: LDIF, CSV and JSON lines, as sources and as targets.

use idflow::connector::csv::CsvSource;
use idflow::connector::jsonl::{JsonlSource, JsonlTarget};
use idflow::connector::ldif::{self, AttrTypes, LdifSource, LdifTarget};
use idflow::connector::{
    self, Connector, ConnectorError, ExportErrorCategory, ExportResult, ImportMode, Imported,
};
use idflow::engine::export::{AttrChange, AttrOp, ExportDelta};
use idflow::engine::import::{ImportChange, ImportObject};
use idflow::engine::model::ExportOp;
use idflow::sema::types::Base;
use idflow::value::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/connectors")
        .join(name)
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("idflow-conn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn types(list: &[(&str, Base)]) -> AttrTypes {
    list.iter().map(|(n, b)| (n.to_lowercase(), *b)).collect()
}

/// The AD types the fixtures use.
fn ad_types() -> AttrTypes {
    types(&[
        ("objectGUID", Base::Bin),
        ("userCertificate", Base::Bin),
        ("userAccountControl", Base::Num),
        ("groupType", Base::Num),
        ("isCriticalSystemObject", Base::Bool),
        ("manager", Base::Ref),
        ("member", Base::Ref),
        ("whenChanged", Base::Dt),
        ("cn", Base::Str),
        ("displayName", Base::Str),
    ])
}

/// What an export did, from its results.
#[derive(Debug)]
struct Outcome {
    applied: usize,
    /// The refused changes: DN and reason.
    failed: Vec<(String, String)>,
    results: Vec<ExportResult>,
}

/// Whole reads and exports, for the assertions.
trait Whole {
    fn full_import(&mut self) -> Result<Imported, ConnectorError>;
    fn delta_import(&mut self) -> Result<Imported, ConnectorError>;
    fn apply(&mut self, deltas: &[ExportDelta]) -> Result<Outcome, ConnectorError>;
}

impl<C: Connector + ?Sized> Whole for C {
    fn full_import(&mut self) -> Result<Imported, ConnectorError> {
        connector::collect(self, ImportMode::Full)
    }

    fn delta_import(&mut self) -> Result<Imported, ConnectorError> {
        connector::collect(self, ImportMode::Delta { watermark: None })
    }

    fn apply(&mut self, deltas: &[ExportDelta]) -> Result<Outcome, ConnectorError> {
        let results = self.export(deltas)?;
        assert_eq!(results.len(), deltas.len(), "one result per delta");
        let mut out = Outcome {
            applied: 0,
            failed: Vec::new(),
            results: results.clone(),
        };
        for (d, r) in deltas.iter().zip(results) {
            match r {
                ExportResult::Applied { .. } => out.applied += 1,
                ExportResult::Failed { detail, .. } => out.failed.push((d.dn.to_string(), detail)),
                ExportResult::Retry { reason, .. } => out.failed.push((d.dn.to_string(), reason)),
            }
        }
        Ok(out)
    }
}

fn upserts(imported: &Imported) -> Vec<&ImportObject> {
    imported
        .changes
        .iter()
        .filter_map(|c| match c {
            ImportChange::Upsert(o) | ImportChange::Record(_, o) => Some(o),
            ImportChange::Partial(_) | ImportChange::Delete { .. } | ImportChange::Unchanged(_) => {
                None
            }
        })
        .collect()
}

fn deletes(imported: &Imported) -> Vec<&str> {
    imported
        .changes
        .iter()
        .filter_map(|c| match c {
            ImportChange::Delete { dn, .. } => dn.as_deref(),
            ImportChange::Upsert(_)
            | ImportChange::Partial(_)
            | ImportChange::Record(..)
            | ImportChange::Unchanged(_) => None,
        })
        .collect()
}

fn object<'a>(imported: &'a Imported, dn: &str) -> &'a ImportObject {
    upserts(imported)
        .into_iter()
        .find(|o| o.dn.eq_ignore_ascii_case(dn))
        .unwrap_or_else(|| panic!("no object `{dn}` in {:#?}", imported.changes))
}

fn attr<'a>(o: &'a ImportObject, name: &str) -> Option<&'a Value> {
    o.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn strs(items: &[&str]) -> Value {
    Value::many(items.iter().map(|s| Value::str(*s)).collect())
}

fn rejected_lines(imported: &Imported) -> Vec<usize> {
    imported.rejected.iter().map(|r| r.line).collect()
}

// ---------------------------------------------------------------------------------------------
// LDIF source

#[test]
fn ldif_content_records_with_types() {
    let mut src = LdifSource::new(fixture("basic.ldif")).with_types(ad_types());
    let got = src.full_import().unwrap();
    assert!(got.rejected.is_empty(), "{:?}", got.rejected);
    assert_eq!(upserts(&got).len(), 3);

    let alice = object(&got, "CN=Alice Smith,OU=Users,DC=contoso,DC=com");
    // The most specific structural class is the last one; objectClass is not an attribute.
    assert_eq!(alice.object_type, "user");
    assert!(attr(alice, "objectClass").is_none());
    assert_eq!(
        attr(alice, "objectGUID"),
        Some(&Value::bin((0u8..16).collect::<Vec<u8>>()))
    );
    assert_eq!(attr(alice, "userAccountControl"), Some(&Value::Num(512)));
    assert_eq!(
        attr(alice, "isCriticalSystemObject"),
        Some(&Value::Bool(false))
    );
    // Folded lines, continuation spaces and comments (also folded) inside a record.
    assert_eq!(
        attr(alice, "description"),
        Some(&Value::str(
            "A long description that is folded over several lines, as LDIF writers do at column 76."
        ))
    );
    assert_eq!(
        attr(alice, "displayName"),
        Some(&Value::str("Zoë Müller, ingénieure"))
    );
    assert_eq!(
        attr(alice, "proxyAddresses"),
        Some(&strs(&[
            "SMTP:alice@contoso.com",
            "smtp:asmith@contoso.com"
        ]))
    );
    // The option is dropped, the base name kept.
    assert_eq!(
        attr(alice, "userCertificate"),
        Some(&Value::bin(vec![0xff, 0x00, 0x10]))
    );
    assert_eq!(
        attr(alice, "manager"),
        Some(&Value::Ref(
            "CN=Bob Jones,OU=Users,DC=contoso,DC=com".into()
        ))
    );
    assert_eq!(
        attr(alice, "whenChanged"),
        Some(&Value::Dt("2024-01-02T03:04:05Z".parse().unwrap()))
    );

    let group = object(&got, "CN=Grüne Gruppe,OU=Groups,DC=contoso,DC=com");
    assert_eq!(group.object_type, "group");
    assert_eq!(attr(group, "cn"), Some(&Value::str("Grüne Gruppe")));
    assert_eq!(attr(group, "groupType"), Some(&Value::Num(-2147483646)));
    assert_eq!(
        attr(group, "member"),
        Some(&Value::many(vec![
            Value::Ref("CN=Alice Smith,OU=Users,DC=contoso,DC=com".into()),
            Value::Ref("CN=Bob Jones,OU=Users,DC=contoso,DC=com".into()),
        ]))
    );
}

#[test]
fn ldif_untyped_values() {
    let mut src = LdifSource::new(fixture("basic.ldif"));
    let got = src.full_import().unwrap();
    let alice = object(&got, "CN=Alice Smith,OU=Users,DC=contoso,DC=com");
    // Without types: text is a string; base64 is a string when it is UTF-8 text, else binary
    // (bytes 0..16 are valid UTF-8, but control characters).
    assert_eq!(attr(alice, "userAccountControl"), Some(&Value::str("512")));
    assert_eq!(
        attr(alice, "objectGUID"),
        Some(&Value::bin((0u8..16).collect::<Vec<u8>>()))
    );
    let bob = object(&got, "CN=Bob Jones,OU=Users,DC=contoso,DC=com");
    assert_eq!(attr(bob, "info"), Some(&Value::bin(vec![0xff, 0x00, 0x10])));
    assert_eq!(attr(bob, "comment"), Some(&Value::str("plain text")));
}

/// Writes `text` to a file of its own and reads it whole with `types`.
fn read_ldif(name: &str, text: &str, types: AttrTypes) -> Imported {
    let dir = tempdir(name);
    let path = dir.join("in.ldif");
    std::fs::write(&path, text).unwrap();
    LdifSource::new(path)
        .with_types(types)
        .full_import()
        .unwrap()
}

#[test]
fn ldif_attribute_options_are_attributes_of_their_own() {
    // A person with a Japanese name in three forms; `;binary` is only a transfer encoding.
    let text = [
        "version: 1",
        "",
        "dn: uid=ksato,ou=People,dc=example,dc=org",
        "objectClass: inetOrgPerson",
        "cn: Kaede Sato",
        "cn;lang-ja:: 5L2Q6JekIOalkw==",
        "cn;phonetic;lang-ja:: 44GV44Go44GGIOOBi+OBiOOBpw==",
        "CN;Lang-JA;Phonetic: Sato Kaede",
        "sn;lang-ja:: 5L2Q6Jek",
        "sn: Sato",
        "userCertificate;binary:: AQID",
        "description;x-note: not the description",
        "",
        "dn: uid=plain,ou=People,dc=example,dc=org",
        "objectClass: inetOrgPerson",
        "cn: Plain",
        "",
        "dn: uid=plain,ou=People,dc=example,dc=org",
        "changetype: modify",
        "add: cn;lang-ja",
        "cn;lang-ja:: 5bmz",
        "-",
        "",
    ]
    .join("\n");
    // The schema declares the base `cn` and one option; the others are undeclared attributes.
    let declared = types(&[
        ("cn", Base::Str),
        ("cn;lang-ja", Base::Str),
        ("userCertificate", Base::Bin),
    ]);
    let got = read_ldif("options", &text, declared);
    assert!(got.rejected.is_empty(), "{:?}", got.rejected);
    let k = object(&got, "uid=ksato,ou=People,dc=example,dc=org");
    assert_eq!(attr(k, "cn"), Some(&Value::str("Kaede Sato")));
    assert_eq!(attr(k, "cn;lang-ja"), Some(&Value::str("佐藤 楓")));
    // Options are unordered and case-insensitive: both spellings are one attribute, named
    // with its options in alphabetical order, never merged into `cn` or `cn;lang-ja`.
    assert_eq!(
        attr(k, "cn;lang-ja;phonetic"),
        Some(&strs(&["さとう かえで", "Sato Kaede"]))
    );
    assert_eq!(attr(k, "sn"), Some(&Value::str("Sato")));
    assert_eq!(attr(k, "sn;lang-ja"), Some(&Value::str("佐藤")));
    assert_eq!(attr(k, "description"), None);
    assert_eq!(
        attr(k, "description;x-note"),
        Some(&Value::str("not the description"))
    );
    assert_eq!(attr(k, "userCertificate"), Some(&Value::bin(vec![1, 2, 3])));
    assert!(attr(k, "userCertificate;binary").is_none());
    // A modification of an attribute with options changes that attribute only.
    let plain = object(&got, "uid=plain,ou=People,dc=example,dc=org");
    assert_eq!(attr(plain, "cn"), Some(&Value::str("Plain")));
    assert_eq!(attr(plain, "cn;lang-ja"), Some(&Value::str("平")));
}

#[test]
fn ldif_ranged_values_are_whole_or_rejected() {
    // Active Directory's ranged retrieval: `member;range=0-1` then `member;range=2-*`.
    let text = [
        "dn: CN=Big,OU=Groups,DC=contoso,DC=com",
        "objectClass: group",
        "member;range=2-*: CN=c,DC=contoso,DC=com",
        "member;range=0-1: CN=a,DC=contoso,DC=com",
        "member;range=0-1: CN=b,DC=contoso,DC=com",
        "",
        "dn: CN=Cut,OU=Groups,DC=contoso,DC=com",
        "objectClass: group",
        "member;range=0-1: CN=a,DC=contoso,DC=com",
        "member;range=0-1: CN=b,DC=contoso,DC=com",
        "",
        "dn: CN=Gap,OU=Groups,DC=contoso,DC=com",
        "objectClass: group",
        "member;range=0-0: CN=a,DC=contoso,DC=com",
        "member;range=2-*: CN=c,DC=contoso,DC=com",
        "",
    ]
    .join("\n");
    let got = read_ldif("ranges", &text, ad_types());
    let big = object(&got, "CN=Big,OU=Groups,DC=contoso,DC=com");
    assert_eq!(
        attr(big, "member"),
        Some(&Value::many(
            ["c", "a", "b"]
                .iter()
                .map(|x| Value::Ref(format!("CN={x},DC=contoso,DC=com").into()))
                .collect()
        ))
    );
    assert_eq!(upserts(&got).len(), 1, "{:?}", got.rejected);
    assert_eq!(rejected_lines(&got), vec![9, 15]);
    assert!(
        got.rejected[0]
            .message
            .contains("holds only part of the values of `member`")
            && got.rejected[0].message.contains("range=2-*"),
        "{:?}",
        got.rejected
    );
    assert!(
        got.rejected[1].message.contains("member;range=2-*"),
        "{:?}",
        got.rejected
    );
}

#[test]
fn ldif_textual_guid_is_the_binary_guid_in_active_directory_order() {
    let guid = "f28780cd-1f5e-4bd8-9a3a-6a1b2c3d4e5f";
    // What ldifde writes: the attribute's bytes, the first three groups little-endian.
    let bytes: Vec<u8> = vec![
        0xcd, 0x80, 0x87, 0xf2, 0x5e, 0x1f, 0xd8, 0x4b, 0x9a, 0x3a, 0x6a, 0x1b, 0x2c, 0x3d, 0x4e,
        0x5f,
    ];
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let one = |value_line: &str| {
        format!(
            "dn: CN=Alice,OU=Users,DC=contoso,DC=com
objectClass: user
{value_line}
mS-DS-ConsistencyGuid: {{{}}}
",
            guid.to_uppercase()
        )
    };
    let mut t = ad_types();
    t.insert("ms-ds-consistencyguid".into(), Base::Bin);
    let text_form = read_ldif("guid-text", &one(&format!("objectGUID: {guid}")), t.clone());
    let ldifde = read_ldif("guid-b64", &one(&format!("objectGUID:: {b64}")), t.clone());
    let a = object(&text_form, "CN=Alice,OU=Users,DC=contoso,DC=com");
    let b = object(&ldifde, "CN=Alice,OU=Users,DC=contoso,DC=com");
    assert_eq!(attr(a, "objectGUID"), Some(&Value::bin(bytes.clone())));
    assert_eq!(attr(a, "objectGUID"), attr(b, "objectGUID"));
    // Braces and upper case are the same GUID.
    assert_eq!(attr(a, "mS-DS-ConsistencyGuid"), Some(&Value::bin(bytes)));
    // Other text of a binary attribute stays its bytes; a string attribute keeps the text.
    let other = read_ldif(
        "guid-other",
        "dn: CN=Bob,DC=contoso,DC=com
objectClass: user
objectGUID: not-a-guid
cn: f28780cd-1f5e-4bd8-9a3a-6a1b2c3d4e5f
",
        t,
    );
    let bob = object(&other, "CN=Bob,DC=contoso,DC=com");
    assert_eq!(
        attr(bob, "objectGUID"),
        Some(&Value::bin(b"not-a-guid".to_vec()))
    );
    assert_eq!(attr(bob, "cn"), Some(&Value::str(guid)));
}

#[test]
fn ldif_bad_records_are_rejected_with_their_line() {
    let mut src = LdifSource::new(fixture("bad.ldif")).with_types(ad_types());
    let got = src.full_import().unwrap();
    let lines = rejected_lines(&got);
    assert_eq!(
        lines,
        vec![8, 13, 17, 21, 25, 27, 30],
        "{:#?}",
        got.rejected
    );
    let msg = |line: usize| {
        got.rejected
            .iter()
            .find(|r| r.line == line)
            .map(|r| r.message.clone())
            .unwrap()
    };
    assert!(msg(8).contains("dn:"), "{}", msg(8));
    assert!(msg(13).contains("colon"), "{}", msg(13));
    assert!(msg(17).contains("base64"), "{}", msg(17));
    assert!(msg(21).contains("not supported"), "{}", msg(21));
    assert!(msg(25).contains("not an integer"), "{}", msg(25));
    assert!(msg(27).contains("objectClass"), "{}", msg(27));
    assert!(msg(30).contains("duplicate DN"), "{}", msg(30));
    assert!(got.rejected.iter().all(|r| r.source.ends_with("bad.ldif")));
    let good: Vec<&str> = upserts(&got).iter().map(|o| o.dn.as_str()).collect();
    assert_eq!(
        good,
        vec![
            "CN=Good One,OU=Users,DC=contoso,DC=com",
            "CN=Good Two,OU=Users,DC=contoso,DC=com"
        ]
    );
    let one = object(&got, "CN=Good One,OU=Users,DC=contoso,DC=com");
    // The first record with this DN, not the rejected duplicate.
    assert_eq!(attr(one, "cn"), Some(&Value::str("Good One")));
    let two = object(&got, "CN=Good Two,OU=Users,DC=contoso,DC=com");
    assert_eq!(
        attr(two, "isCriticalSystemObject"),
        Some(&Value::Bool(true))
    );
}

#[test]
fn ldif_unreadable_or_foreign_files_are_errors() {
    let e = LdifSource::new(fixture("missing.ldif"))
        .full_import()
        .unwrap_err();
    assert!(e.source.ends_with("missing.ldif"), "{e}");
    // A CSV file is not LDIF.
    let e = LdifSource::new(fixture("hr.csv"))
        .full_import()
        .unwrap_err();
    assert_eq!(e.line, Some(1), "{e}");
    assert!(e.message.contains("not an LDIF file"), "{e}");
    // A directory cannot be read.
    assert!(LdifSource::new(fixture("")).full_import().is_err());
}

#[test]
fn ldif_change_records_apply_in_order() {
    let mut src = LdifSource::new(fixture("changes.ldif"));
    let got = src.full_import().unwrap();
    assert!(got.rejected.is_empty(), "{:?}", got.rejected);
    let dns: Vec<&str> = upserts(&got).iter().map(|o| o.dn.as_str()).collect();
    assert_eq!(
        dns,
        vec![
            "CN=Alice Smith,OU=Users,DC=contoso,DC=com",
            "CN=Robert Jones,OU=Staff,DC=contoso,DC=com"
        ]
    );
    let alice = object(&got, "CN=Alice Smith,OU=Users,DC=contoso,DC=com");
    assert_eq!(attr(alice, "title"), Some(&Value::str("Senior Engineer")));
    assert_eq!(attr(alice, "telephoneNumber"), None);
    assert_eq!(
        attr(alice, "proxyAddresses"),
        Some(&Value::str("smtp:alice2@contoso.com"))
    );
    assert_eq!(attr(alice, "mail"), Some(&Value::str("alice@contoso.com")));
    // modrdn with deleteoldrdn: the RDN attribute follows the new name.
    let bob = object(&got, "CN=Robert Jones,OU=Staff,DC=contoso,DC=com");
    assert_eq!(attr(bob, "cn"), Some(&Value::str("Robert Jones")));
}

#[test]
fn ldif_delta_import_applies_changes_to_the_previous_import() {
    let dir = tempdir("delta");
    let path = dir.join("ad.ldif");
    std::fs::copy(fixture("basic.ldif"), &path).unwrap();
    let mut src = LdifSource::new(&path);
    let full = src.full_import().unwrap();
    assert_eq!(upserts(&full).len(), 3);
    std::fs::copy(fixture("delta.ldif"), &path).unwrap();
    let delta = src.delta_import().unwrap();
    // The modify of an object that was never imported is rejected, with its line.
    assert_eq!(rejected_lines(&delta), vec![17], "{:#?}", delta.rejected);
    assert!(delta.rejected[0].message.contains("unknown"));
    let changed: Vec<&str> = upserts(&delta).iter().map(|o| o.dn.as_str()).collect();
    assert_eq!(
        changed,
        vec![
            "CN=Alice Smith,OU=Users,DC=contoso,DC=com",
            "CN=Dan Brown,OU=Users,DC=contoso,DC=com"
        ]
    );
    // The modified object is whole: its other attributes come from the previous import.
    let alice = object(&delta, "CN=Alice Smith,OU=Users,DC=contoso,DC=com");
    assert_eq!(
        attr(alice, "title"),
        Some(&Value::str("Principal Engineer"))
    );
    assert_eq!(attr(alice, "sAMAccountName"), Some(&Value::str("asmith")));
    assert_eq!(
        deletes(&delta),
        vec!["CN=Bob Jones,OU=Users,DC=contoso,DC=com"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reading is linear in values per attribute and attributes per entry (`benches/ldif.rs` times
/// it): a 100,000-member group and a 10,000-attribute entry come through whole and in order,
/// with repeated values stored once and attribute names merged case-insensitively.
#[test]
fn ldif_large_groups_and_wide_entries_are_read_whole_and_in_order() {
    let n = 100_000;
    let member = |i: usize| format!("CN=User {i},OU=Users,DC=contoso,DC=com");
    let mut text = String::from("dn: CN=Big,OU=Groups,DC=contoso,DC=com\nobjectClass: group\n");
    for i in 0..n {
        // Every tenth member is listed again later, under another spelling of the name.
        text.push_str(&format!("member: {}\n", member(i)));
        if i % 10 == 9 {
            text.push_str(&format!("Member: {}\n", member(i - 5)));
        }
    }
    text.push_str("\ndn: CN=Wide,DC=contoso,DC=com\nobjectClass: top\nobjectClass: thing\n");
    text.push_str("objectClass: TOP\n");
    for i in 0..10_000 {
        text.push_str(&format!("attr{i}: v{i}\nATTR{i}: v{i}\nattr{i}: w{i}\n"));
    }
    let dir = tempdir("large");
    let path = dir.join("big.ldif");
    std::fs::write(&path, &text).unwrap();
    let mut src = LdifSource::new(&path).with_types(ad_types());
    let got = src.full_import().unwrap();
    assert!(got.rejected.is_empty(), "{:?}", got.rejected);
    let big = object(&got, "CN=Big,OU=Groups,DC=contoso,DC=com");
    assert_eq!(big.attrs.len(), 1);
    let members = attr(big, "member").unwrap().values();
    assert_eq!(members.len(), n);
    for (i, m) in members.iter().enumerate() {
        assert_eq!(m, &Value::Ref(member(i).into()), "member {i}");
    }
    let wide = object(&got, "CN=Wide,DC=contoso,DC=com");
    assert_eq!(wide.object_type, "thing");
    assert_eq!(wide.attrs.len(), 10_000);
    for (i, (name, v)) in wide.attrs.iter().enumerate() {
        assert_eq!(name, &format!("attr{i}"));
        assert_eq!(v, &strs(&[&format!("v{i}"), &format!("w{i}")]));
    }

    // Change records: members added a few records at a time, some again, and half of them
    // deleted by one record.
    let added = 20;
    let mut delta = String::new();
    for i in n..n + added {
        delta.push_str(&format!(
            "dn: CN=Big,OU=Groups,DC=contoso,DC=com\nchangetype: modify\nadd: member\nmember: {}\nmember: {}\n-\n\n",
            member(i),
            member(i - n)
        ));
    }
    delta.push_str("dn: CN=Big,OU=Groups,DC=contoso,DC=com\nchangetype: modify\ndelete: member\n");
    for i in (0..n).step_by(2) {
        delta.push_str(&format!("member: {}\n", member(i)));
    }
    delta.push_str("-\n");
    std::fs::write(&path, &delta).unwrap();
    let got = src.delta_import().unwrap();
    assert!(got.rejected.is_empty(), "{:?}", got.rejected);
    let big = object(&got, "CN=Big,OU=Groups,DC=contoso,DC=com");
    let members = attr(big, "member").unwrap().values();
    let want: Vec<Value> = (1..n)
        .step_by(2)
        .chain(n..n + added)
        .map(|i| Value::Ref(member(i).into()))
        .collect();
    assert_eq!(members.len(), want.len());
    assert!(members == want.as_slice());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// LDIF target

/// A change of an attribute as an export delta carries it: NULL clears, anything else
/// replaces (a replace by `IgnoreThisFlow` leaves the attribute alone).
fn op(v: Value) -> AttrOp {
    if matches!(v, Value::Null | Value::AuthoritativeNull) {
        AttrOp::Clear
    } else {
        AttrOp::Replace(v)
    }
}

fn add(dn: &str, ty: &str, attrs: Vec<(&str, Value)>) -> ExportDelta {
    attrs
        .into_iter()
        .fold(ExportDelta::new(ExportOp::Add, ty, dn), |d, (n, v)| {
            d.with(n, op(v))
        })
}

fn update(dn: &str, new_dn: Option<&str>, attrs: Vec<(&str, Value)>) -> ExportDelta {
    let mut d = ExportDelta::new(ExportOp::Update, "user", dn);
    d.new_dn = new_dn.map(Into::into);
    attrs.into_iter().fold(d, |d, (n, v)| d.with(n, op(v)))
}

fn delete(dn: &str) -> ExportDelta {
    ExportDelta::new(ExportOp::Delete, "user", dn)
}

const ALICE: &str = "CN=Alice,OU=Users,DC=contoso,DC=com";
const BOB: &str = "CN=Bob,OU=Users,DC=contoso,DC=com";
const CAROL: &str = "CN=Carol,OU=Users,DC=contoso,DC=com";

fn target_types() -> AttrTypes {
    types(&[
        ("objectGUID", Base::Bin),
        ("userAccountControl", Base::Num),
        ("accountEnabled", Base::Bool),
        ("manager", Base::Ref),
        ("lastLogon", Base::Dt),
    ])
}

#[test]
fn ldif_target_round_trip() {
    let dir = tempdir("ldif-target");
    let path = dir.join("out.ldif");
    let mut target = LdifTarget::new(&path).with_types(target_types());
    // A missing file is an empty directory.
    assert!(target.full_import().unwrap().changes.is_empty());

    let long = "x".repeat(150);
    let outcome = target
        .apply(&[
            add(
                ALICE,
                "user",
                vec![
                    ("cn", Value::str("Alice")),
                    ("objectGUID", Value::bin(vec![0u8, 1, 2, 255])),
                    ("userAccountControl", Value::Num(512)),
                    ("accountEnabled", Value::Bool(true)),
                    ("displayName", Value::str("Zoë Müller")),
                    ("description", Value::str(long.as_str())),
                    ("info", Value::str(" leading space")),
                    ("proxyAddresses", strs(&["SMTP:a@x.com", "smtp:b@x.com"])),
                    (
                        "lastLogon",
                        Value::Dt("2024-01-02T03:04:05Z".parse().unwrap()),
                    ),
                    ("title", Value::Null),
                ],
            ),
            add(
                BOB,
                "user",
                vec![
                    ("cn", Value::str("Bob")),
                    ("manager", Value::Ref(ALICE.into())),
                ],
            ),
            add(CAROL, "contact", vec![("cn", Value::str("Carol"))]),
        ])
        .unwrap();
    assert_eq!(outcome.applied, 3);
    assert!(outcome.failed.is_empty());

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("version: 1\n"), "{text}");
    assert!(text.lines().all(|l| l.len() <= 76), "{text}");
    assert!(text.contains("displayName:: "), "not safe: base64\n{text}");
    assert!(
        text.contains("info:: "),
        "a leading space is not safe\n{text}"
    );
    assert!(text.contains("objectGUID:: AAEC/w==\n"), "{text}");
    assert!(text.contains("lastLogon: 20240102030405.0Z\n"), "{text}");
    assert!(!text.contains("title"), "{text}");
    // Sorted by DN.
    let order: Vec<&str> = text.lines().filter(|l| l.starts_with("dn: ")).collect();
    assert_eq!(
        order,
        vec![
            format!("dn: {ALICE}"),
            format!("dn: {BOB}"),
            format!("dn: {CAROL}")
        ]
    );

    let back = target.full_import().unwrap();
    assert!(back.rejected.is_empty(), "{:?}", back.rejected);
    let alice = object(&back, ALICE);
    assert_eq!(alice.object_type, "user");
    assert_eq!(
        alice.attrs,
        vec![
            ("cn".to_string(), Value::str("Alice")),
            ("objectGUID".to_string(), Value::bin(vec![0u8, 1, 2, 255])),
            ("userAccountControl".to_string(), Value::Num(512)),
            ("accountEnabled".to_string(), Value::Bool(true)),
            ("displayName".to_string(), Value::str("Zoë Müller")),
            ("description".to_string(), Value::str(long.as_str())),
            ("info".to_string(), Value::str(" leading space")),
            (
                "proxyAddresses".to_string(),
                strs(&["SMTP:a@x.com", "smtp:b@x.com"])
            ),
            (
                "lastLogon".to_string(),
                Value::Dt("2024-01-02T03:04:05Z".parse().unwrap())
            ),
        ]
    );
    assert_eq!(object(&back, CAROL).object_type, "contact");
    assert_eq!(
        attr(object(&back, BOB), "manager"),
        Some(&Value::Ref(ALICE.into()))
    );

    // Updates (replace, remove), a rename, a delete, and changes that cannot apply.
    let renamed = "CN=Robert,OU=Staff,DC=contoso,DC=com";
    let outcome = target
        .apply(&[
            update(
                ALICE,
                None,
                vec![
                    ("userAccountControl", Value::Num(514)),
                    ("description", Value::Null),
                    ("title", Value::str("Engineer")),
                    ("proxyAddresses", Value::IgnoreThisFlow),
                ],
            ),
            update(BOB, Some(renamed), vec![("title", Value::str("Manager"))]),
            delete(CAROL),
            add(ALICE, "user", vec![("cn", Value::str("again"))]),
            update(
                "CN=Nobody,DC=contoso,DC=com",
                None,
                vec![("cn", Value::str("x"))],
            ),
            delete("CN=Nobody,DC=contoso,DC=com"),
        ])
        .unwrap();
    assert_eq!(outcome.applied, 3, "{:?}", outcome.failed);
    let failed: Vec<&str> = outcome.failed.iter().map(|(dn, _)| dn.as_str()).collect();
    assert_eq!(
        failed,
        vec![
            ALICE,
            "CN=Nobody,DC=contoso,DC=com",
            "CN=Nobody,DC=contoso,DC=com"
        ]
    );
    assert!(outcome.failed[0].1.contains("already exists"));

    let back = target.full_import().unwrap();
    let dns: Vec<&str> = upserts(&back).iter().map(|o| o.dn.as_str()).collect();
    // In file order: the file is written in tree order (OU=Staff before OU=Users).
    assert_eq!(dns, vec![renamed, ALICE]);
    let alice = object(&back, ALICE);
    assert_eq!(attr(alice, "userAccountControl"), Some(&Value::Num(514)));
    assert_eq!(attr(alice, "description"), None);
    assert_eq!(attr(alice, "title"), Some(&Value::str("Engineer")));
    assert_eq!(
        attr(alice, "proxyAddresses"),
        Some(&strs(&["SMTP:a@x.com", "smtp:b@x.com"]))
    );
    let bob = object(&back, renamed);
    assert_eq!(attr(bob, "cn"), Some(&Value::str("Robert")));
    assert_eq!(attr(bob, "title"), Some(&Value::str("Manager")));
    assert_eq!(attr(bob, "manager"), Some(&Value::Ref(ALICE.into())));

    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["out.ldif".to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn file_targets_apply_value_adds_and_removes_and_assign_anchors() {
    let dir = tempdir("member-add");
    let group = "CN=Big,OU=Groups,DC=contoso,DC=com";
    let member = |i: usize| Value::Ref(format!("CN=u{i},OU=Users,DC=contoso,DC=com").into());
    let ldif_types = types(&[("member", Base::Ref)]);
    let anchors: idflow::connector::Anchors =
        [("group".to_string(), "objectGUID".to_string())].into();
    let targets: Vec<(Box<dyn Connector>, PathBuf)> = vec![
        (
            Box::new(
                LdifTarget::new(dir.join("t.ldif"))
                    .with_types(ldif_types.clone())
                    .with_anchors(anchors.clone()),
            ),
            dir.join("t.ldif"),
        ),
        (
            Box::new(
                JsonlTarget::new(dir.join("t.jsonl"))
                    .with_types(ldif_types)
                    .with_anchors(anchors),
            ),
            dir.join("t.jsonl"),
        ),
    ];
    for (mut target, path) in targets {
        let all: Vec<Value> = (0..2000).map(member).collect();
        let outcome = target
            .apply(&[add(
                group,
                "group",
                vec![("member", Value::many(all.clone()))],
            )])
            .unwrap();
        assert_eq!(outcome.applied, 1, "{:?}", outcome.failed);
        // One member added: one value add of one value, applied to the stored entry.
        let one = ExportDelta::new(ExportOp::Update, "group", group)
            .with("member", AttrOp::Add(vec![member(5000)]));
        assert_eq!(target.apply(&[one]).unwrap().applied, 1);
        let back = target.full_import().unwrap();
        let g = object(&back, group);
        let mut expected = all.clone();
        expected.push(member(5000));
        // Compared without printing 2,000 values on a failure.
        let members = |g: &ImportObject| attr(g, "member").map(|v| v.values().to_vec());
        assert!(members(g) == Some(expected), "{}", path.display());
        // The target assigned the anchor of the new object.
        assert!(
            attr(g, "objectGUID")
                .and_then(Value::as_str)
                .is_some_and(|a| a.starts_with("Group_")),
            "{:?}",
            attr(g, "objectGUID")
        );
        // One member removed, a value added twice stays once.
        let change = ExportDelta::new(ExportOp::Update, "group", group)
            .with("member", AttrOp::Remove(vec![member(0)]))
            .with("member", AttrOp::Add(vec![member(1)]));
        assert_eq!(target.apply(&[change]).unwrap().applied, 1);
        let back = target.full_import().unwrap();
        let mut expected: Vec<Value> = (1..2000).map(member).collect();
        expected.push(member(5000));
        assert!(
            members(object(&back, group)) == Some(expected),
            "{}",
            path.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ldif_target_refuses_a_file_with_malformed_records() {
    let dir = tempdir("ldif-malformed");
    let path = dir.join("out.ldif");
    std::fs::copy(fixture("bad.ldif"), &path).unwrap();
    let before = std::fs::read(&path).unwrap();
    let e = LdifTarget::new(&path)
        .apply(&[delete("CN=Good One,OU=Users,DC=contoso,DC=com")])
        .unwrap_err();
    assert_eq!(e.line, Some(8), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn ldif_target_write_is_atomic_in_a_read_only_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir("ldif-readonly");
    let path = dir.join("out.ldif");
    let mut target = LdifTarget::new(&path);
    target
        .apply(&[add(ALICE, "user", vec![("cn", Value::str("Alice"))])])
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores directory permissions: then there is nothing to check.
    let probe = dir.join("probe");
    let enforced = std::fs::write(&probe, b"x").is_err();
    let result = target.apply(&[add(BOB, "user", vec![("cn", Value::str("Bob"))])]);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    if enforced {
        let e = result.unwrap_err();
        assert!(e.source.ends_with("out.ldif"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
    } else {
        eprintln!("directory permissions are not enforced (root?): skipped");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn atomic_write_failures_leave_the_old_content() {
    let dir = tempdir("atomic");
    // The target directory does not exist: an error naming the path.
    let path = dir.join("no-such-dir").join("out.ldif");
    let e = LdifTarget::new(&path)
        .apply(&[add(ALICE, "user", vec![("cn", Value::str("Alice"))])])
        .unwrap_err();
    assert!(e.source.contains("no-such-dir"), "{e}");
    assert!(!path.exists());
    // The rename fails (a non-empty directory is in the way): the temporary file is removed
    // and what was there is unchanged.
    let blocker = dir.join("blocker");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("keep"), b"kept").unwrap();
    let e = ldif::write_atomic(&blocker, b"new content").unwrap_err();
    assert!(e.source.ends_with("blocker"), "{e}");
    assert_eq!(std::fs::read(blocker.join("keep")).unwrap(), b"kept");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["blocker".to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// CSV

fn hr() -> CsvSource {
    let mut src = CsvSource::new(
        fixture("hr.csv"),
        "worker",
        "id",
        "CN={givenName} {sn},OU=HR",
    );
    src.columns.insert("id".into(), "employeeId".into());
    src.types = types(&[
        ("employeeNumber", Base::Num),
        ("active", Base::Bool),
        ("hired", Base::Dt),
    ]);
    src.multi_value_separator = Some(';');
    src
}

#[test]
fn csv_rows_with_bad_fields_are_rejected_with_their_line() {
    let got = hr().full_import().unwrap();
    assert_eq!(
        rejected_lines(&got),
        vec![4, 5, 6, 9, 10],
        "{:#?}",
        got.rejected
    );
    let msgs: Vec<&str> = got.rejected.iter().map(|r| r.message.as_str()).collect();
    assert!(msgs[0].contains("expected 7 fields"), "{}", msgs[0]);
    assert!(msgs[1].contains("anchor"), "{}", msgs[1]);
    assert!(
        msgs[2].contains("duplicate anchor `1001` (first at line 2)"),
        "{}",
        msgs[2]
    );
    assert!(msgs[3].contains("employeeNumber"), "{}", msgs[3]);
    assert!(msgs[4].contains("boolean"), "{}", msgs[4]);

    let dns: Vec<&str> = upserts(&got).iter().map(|o| o.dn.as_str()).collect();
    assert_eq!(
        dns,
        vec![
            "CN=Alice Smith,OU=HR",
            "CN=Bob Jones\\, Jr.,OU=HR",
            "CN=Eve Multi\\0ALine,OU=HR",
            "CN=Heidi King,OU=HR"
        ]
    );
    let alice = object(&got, "CN=Alice Smith,OU=HR");
    assert_eq!(alice.object_type, "worker");
    assert_eq!(
        alice.attrs,
        vec![
            ("employeeId".to_string(), Value::str("1001")),
            ("givenName".to_string(), Value::str("Alice")),
            ("sn".to_string(), Value::str("Smith")),
            ("employeeNumber".to_string(), Value::Num(42)),
            ("active".to_string(), Value::Bool(true)),
            ("groups".to_string(), strs(&["Finance", "Sales"])),
            (
                "hired".to_string(),
                Value::Dt("2024-01-02T03:04:05Z".parse().unwrap())
            ),
        ]
    );
    // Empty fields are no value.
    let bob = object(&got, "CN=Bob Jones\\, Jr.,OU=HR");
    assert_eq!(attr(bob, "groups"), None);
    assert_eq!(attr(bob, "active"), Some(&Value::Bool(false)));
    let heidi = object(&got, "CN=Heidi King,OU=HR");
    assert_eq!(attr(heidi, "groups"), Some(&strs(&["HR", "Legal"])));
    let eve = object(&got, "CN=Eve Multi\\0ALine,OU=HR");
    assert_eq!(
        attr(eve, "hired"),
        Some(&Value::Dt("2024-05-06T07:08:09Z".parse().unwrap()))
    );
}

#[test]
fn csv_settings_errors_and_export() {
    let mut src = hr();
    src.anchor = "nope".into();
    let e = src.full_import().unwrap_err();
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("nope"), "{e}");
    let mut src = hr();
    src.dn_template = "CN={missing}".into();
    assert!(src.full_import().unwrap_err().message.contains("missing"));
    let mut src = hr();
    src.path = fixture("missing.csv");
    assert!(src.full_import().is_err());
    let e = hr().apply(&[delete(ALICE)]).unwrap_err();
    assert!(e.message.contains("source only"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// JSON lines

#[test]
fn jsonl_source_rejects_malformed_lines() {
    let jtypes = types(&[("manager", Base::Ref)]);
    let got = JsonlSource::new(fixture("people.jsonl"))
        .with_types(jtypes)
        .full_import()
        .unwrap();
    assert_eq!(
        rejected_lines(&got),
        vec![2, 4, 5, 7, 8, 9],
        "{:#?}",
        got.rejected
    );
    let alice = object(&got, "CN=Alice,OU=Users,DC=contoso,DC=com");
    assert_eq!(attr(alice, "uac"), Some(&Value::Num(512)));
    assert_eq!(attr(alice, "guid"), Some(&Value::bin(vec![0u8, 1, 2])));
    assert_eq!(
        attr(alice, "manager"),
        Some(&Value::Ref("CN=Bob,OU=Users,DC=contoso,DC=com".into()))
    );
    let bob = object(&got, "CN=Bob,OU=Users,DC=contoso,DC=com");
    assert_eq!(
        attr(bob, "when"),
        Some(&Value::Dt("2024-01-02T03:04:05Z".parse().unwrap()))
    );
    assert_eq!(attr(bob, "absent"), None);
    assert_eq!(upserts(&got).len(), 2);
    // Not JSON lines at all.
    let e = JsonlSource::new(fixture("hr.csv"))
        .full_import()
        .unwrap_err();
    assert_eq!(e.line, Some(1));
}

#[test]
fn jsonl_target_round_trip() {
    let dir = tempdir("jsonl-target");
    let path = dir.join("out.jsonl");
    let mut target = JsonlTarget::new(&path).with_types(types(&[("manager", Base::Ref)]));
    let when: Value = Value::Dt("2024-01-02T03:04:05Z".parse().unwrap());
    let outcome = target
        .apply(&[
            add(
                BOB,
                "user",
                vec![
                    ("cn", Value::str("Bob")),
                    ("manager", Value::Ref(ALICE.into())),
                ],
            ),
            add(
                ALICE,
                "user",
                vec![
                    ("cn", Value::str("Alice")),
                    ("guid", Value::bin(vec![0u8, 255])),
                    ("n", Value::Num(-7)),
                    ("ok", Value::Bool(false)),
                    ("when", when.clone()),
                    ("proxies", strs(&["a", "b"])),
                ],
            ),
        ])
        .unwrap();
    assert_eq!(outcome.applied, 2);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with(&format!("{{\"dn\":\"{ALICE}\",\"type\":\"user\"")),
        "{text}"
    );

    let back = target.full_import().unwrap();
    assert!(back.rejected.is_empty(), "{:?}", back.rejected);
    let alice = object(&back, ALICE);
    assert_eq!(attr(alice, "guid"), Some(&Value::bin(vec![0u8, 255])));
    assert_eq!(attr(alice, "n"), Some(&Value::Num(-7)));
    assert_eq!(attr(alice, "ok"), Some(&Value::Bool(false)));
    assert_eq!(attr(alice, "when"), Some(&when));
    assert_eq!(attr(alice, "proxies"), Some(&strs(&["a", "b"])));
    assert_eq!(
        attr(object(&back, BOB), "manager"),
        Some(&Value::Ref(ALICE.into()))
    );

    let outcome = target
        .apply(&[
            update(ALICE, Some(CAROL), vec![("n", Value::Null)]),
            delete(BOB),
            delete(BOB),
        ])
        .unwrap();
    assert_eq!(outcome.applied, 2);
    assert_eq!(outcome.failed.len(), 1);
    let back = target.full_import().unwrap();
    let dns: Vec<&str> = upserts(&back).iter().map(|o| o.dn.as_str()).collect();
    assert_eq!(dns, vec![CAROL]);
    let carol = object(&back, CAROL);
    assert_eq!(attr(carol, "n"), None);
    assert_eq!(attr(carol, "cn"), Some(&Value::str("Carol")));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// The connector contract: pages in, one result per delta out

/// `n` users, as entries with string values.
fn people(n: usize) -> Vec<ldif::Entry> {
    (0..n)
        .map(|i| {
            let mut e = ldif::Entry::new(format!("CN=User {i},OU=Users,DC=contoso,DC=com"), "user");
            e.set("cn", vec![Value::str(format!("User {i}"))]);
            e.set("employeeId", vec![Value::str(format!("E{i}"))]);
            e.set("title", vec![Value::str(format!("Title {}", i % 7))]);
            e
        })
        .collect()
}

/// An object, comparable: DN, type and attributes.
type Shown = (String, String, Vec<(String, Value)>);

/// The objects of a read, in the order read.
fn objects(imported: &Imported) -> Vec<Shown> {
    upserts(imported)
        .into_iter()
        .map(|o| (o.dn.clone(), o.object_type.clone(), o.attrs.clone()))
        .collect()
}

/// A sink that fails the second page it is given.
#[derive(Default)]
struct StopAtTheSecondPage {
    pages: usize,
}

impl connector::ImportSink for StopAtTheSecondPage {
    fn page(&mut self, _changes: Vec<ImportChange>) -> Result<(), ConnectorError> {
        self.pages += 1;
        if self.pages == 2 {
            return Err(ConnectorError {
                source: "sink".into(),
                line: None,
                message: "stopped".into(),
            });
        }
        Ok(())
    }

    fn reject(&mut self, _rejected: connector::Rejected) {}
}

#[test]
fn file_imports_hand_over_pages_as_they_read() {
    let n = 2_500;
    let entries = people(n);
    let expected: Vec<Shown> = entries
        .iter()
        .map(|e| {
            let o = e.to_import_object();
            (o.dn, o.object_type, o.attrs)
        })
        .collect();
    let dir = tempdir("pages");
    let ldif_text = ldif::write_ldif(&entries);
    std::fs::write(dir.join("people.ldif"), &ldif_text).unwrap();
    std::fs::write(
        dir.join("people.jsonl"),
        idflow::connector::jsonl::write_jsonl(&entries),
    )
    .unwrap();
    let mut csv = String::from("id,name\n");
    for i in 0..n {
        csv.push_str(&format!("{i},Person {i}\n"));
    }
    std::fs::write(dir.join("people.csv"), &csv).unwrap();
    // The files are written in tree order: the order a read hands the objects over.
    let parsed = ldif::parse(ldif_text.as_bytes(), "x", &AttrTypes::default()).unwrap();
    let position: std::collections::HashMap<&str, usize> = parsed
        .records
        .iter()
        .enumerate()
        .filter_map(|(i, (_, r))| match r {
            ldif::Record::Content(e) => Some((e.dn.as_str(), i)),
            _ => None,
        })
        .collect();
    let mut in_file_order = expected.clone();
    in_file_order.sort_by_key(|(dn, _, _)| position[dn.as_str()]);

    let mut conns: Vec<(&str, Box<dyn Connector>)> = vec![
        (
            "ldif source",
            Box::new(LdifSource::new(dir.join("people.ldif"))),
        ),
        (
            "ldif target",
            Box::new(LdifTarget::new(dir.join("people.ldif"))),
        ),
        (
            "jsonl source",
            Box::new(JsonlSource::new(dir.join("people.jsonl"))),
        ),
        (
            "jsonl target",
            Box::new(JsonlTarget::new(dir.join("people.jsonl"))),
        ),
    ];
    for (what, conn) in &mut conns {
        let got = conn.full_import().unwrap();
        assert_eq!(got.pages, vec![1000, 1000, 500], "{what}");
        assert!(got.rejected.is_empty(), "{what}: {:?}", got.rejected);
        assert_eq!(got.end.kind, connector::ImportKind::Full, "{what}");
        // The same objects as a read of the whole file.
        assert!(objects(&got) == in_file_order, "{what}");
        // A file has no change tracking: a delta request is answered with a full read (an
        // LDIF source that has read the file applies its records to that read instead).
        let delta = conn.delta_import().unwrap();
        let kind = match *what {
            "ldif source" => connector::ImportKind::Delta,
            _ => connector::ImportKind::Full,
        };
        assert_eq!(delta.end.kind, kind, "{what}");
        assert_eq!(delta.pages, vec![1000, 1000, 500], "{what}");
        // A sink that fails a page stops the read with its error.
        let mut stop = StopAtTheSecondPage::default();
        let e = conn.import(ImportMode::Full, &mut stop).unwrap_err();
        assert_eq!((e.message.as_str(), stop.pages), ("stopped", 2), "{what}");
    }
    let mut hr = CsvSource::new(dir.join("people.csv"), "worker", "id", "CN={id},OU=HR");
    let got = hr.full_import().unwrap();
    assert_eq!(got.pages, vec![1000, 1000, 500]);
    let rows = objects(&got);
    assert_eq!(rows.len(), n);
    assert_eq!(
        rows[1234],
        (
            "CN=1234,OU=HR".to_string(),
            "worker".to_string(),
            vec![
                ("id".to_string(), Value::str("1234")),
                ("name".to_string(), Value::str("Person 1234"))
            ]
        )
    );
    let mut stop = StopAtTheSecondPage::default();
    assert!(hr.import(ImportMode::Full, &mut stop).is_err());
    assert_eq!(stop.pages, 2);

    // A file with change records is applied whole first, then handed over in pages.
    let modify = "\ndn: CN=User 7,OU=Users,DC=contoso,DC=com\nchangetype: modify\nreplace: title\ntitle: Changed\n-\n";
    std::fs::write(dir.join("changes.ldif"), format!("{ldif_text}{modify}")).unwrap();
    let got = LdifSource::new(dir.join("changes.ldif"))
        .full_import()
        .unwrap();
    assert_eq!(got.pages, vec![1000, 1000, 500]);
    let seven = object(&got, "CN=User 7,OU=Users,DC=contoso,DC=com");
    assert_eq!(attr(seven, "title"), Some(&Value::str("Changed")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn file_targets_answer_one_result_per_delta_with_the_assigned_anchor() {
    let dir = tempdir("results");
    let anchors: idflow::connector::Anchors =
        [("user".to_string(), "objectGUID".to_string())].into();
    let targets: Vec<Box<dyn Connector>> = vec![
        Box::new(LdifTarget::new(dir.join("t.ldif")).with_anchors(anchors.clone())),
        Box::new(JsonlTarget::new(dir.join("t.jsonl")).with_anchors(anchors)),
    ];
    let nobody = "CN=Nobody,DC=contoso,DC=com";
    for mut target in targets {
        // A file is confirmed by reading it back.
        assert!(target.confirms_by_reimport());
        let out = target
            .apply(&[
                add(ALICE, "user", vec![("cn", Value::str("Alice"))]),
                add(
                    BOB,
                    "user",
                    vec![
                        ("cn", Value::str("Bob")),
                        ("objectGUID", Value::str("given")),
                    ],
                ),
                add(CAROL, "contact", vec![("cn", Value::str("Carol"))]),
                add(ALICE, "user", vec![("cn", Value::str("again"))]),
                update(nobody, None, vec![("cn", Value::str("x"))]),
                update(BOB, None, vec![("title", Value::str("Lead"))]),
                delete(nobody),
            ])
            .unwrap();
        let failed = |category, detail: &str| ExportResult::Failed {
            category,
            detail: detail.into(),
        };
        let generated = connector::generated_anchor("user", ALICE);
        assert_eq!(
            out.results,
            vec![
                // The anchor the target assigned; the one the add gave; a type without an
                // anchor attribute.
                ExportResult::Applied {
                    anchor: Some(generated.clone())
                },
                ExportResult::Applied {
                    anchor: Some(Value::str("given"))
                },
                ExportResult::Applied { anchor: None },
                failed(
                    ExportErrorCategory::AlreadyExists,
                    "an object with this DN already exists"
                ),
                failed(ExportErrorCategory::NoSuchObject, "no object with this DN"),
                ExportResult::Applied { anchor: None },
                failed(ExportErrorCategory::NoSuchObject, "no object with this DN"),
            ]
        );
        // The file holds what the results say.
        let back = target.full_import().unwrap();
        assert_eq!(attr(object(&back, ALICE), "objectGUID"), Some(&generated));
        assert_eq!(attr(object(&back, BOB), "title"), Some(&Value::str("Lead")));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A JSON lines target in tree order is patched: only the lines the deltas name are read whole
/// and written anew. The patched file is byte for byte the file a whole rewrite writes (the same
/// lines out of order are read and written whole), with the same results and the same written
/// changes, over rounds of random adds (new parents and children, existing DNs), updates
/// (values set, cleared, added and removed; renames that move an object; missing DNs) and
/// deletes.
#[test]
fn jsonl_target_patch_is_the_whole_rewrite() {
    let dir = tempdir("jsonl-patch");
    let (sorted, shuffled) = (dir.join("sorted.jsonl"), dir.join("shuffled.jsonl"));
    let ou = |i: usize| format!("OU=Dept{},DC=contoso,DC=com", i % 7);
    let dn = |i: usize| format!("CN=User {i},{}", ou(i));
    // A small deterministic generator (xorshift), so a failure names its round.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut first: Vec<ExportDelta> = (0..7)
        .map(|d| add(&format!("OU=Dept{d},DC=contoso,DC=com"), "ou", vec![]))
        .collect();
    first.extend((0..200).map(|i| {
        add(
            &dn(i),
            "user",
            vec![
                ("cn", Value::str(format!("User {i}"))),
                (
                    "mail",
                    strs(&[&format!("u{i}@contoso.com"), "x@contoso.com"]),
                ),
            ],
        )
    }));
    let mut whole = JsonlTarget::new(&sorted);
    whole.apply(&first).unwrap();
    let mut patched = JsonlTarget::new(&sorted);
    let mut rewritten = JsonlTarget::new(&shuffled);
    for round in 0..25 {
        // The same file, its lines reversed: not in tree order, so read and written whole.
        let text = std::fs::read_to_string(&sorted).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.reverse();
        std::fs::write(&shuffled, lines.join("\n") + "\n").unwrap();
        let mut deltas = Vec::new();
        for _ in 0..1 + next(12) {
            let i = next(260);
            let mut v = ExportDelta::new(ExportOp::Update, "user", &dn(i));
            deltas.push(match next(6) {
                0 => add(&dn(i), "user", vec![("cn", Value::str(format!("New {i}")))]),
                1 => delete(&dn(i)),
                2 => update(&dn(i), Some(&dn(300 + next(40))), vec![]),
                3 => {
                    v.changes.push(AttrChange {
                        attr: "mail".into(),
                        op: AttrOp::Add(vec![Value::str(format!("r{round}@contoso.com"))]),
                    });
                    v.changes.push(AttrChange {
                        attr: "mail".into(),
                        op: AttrOp::Remove(vec![Value::str("x@contoso.com")]),
                    });
                    v
                }
                4 => update(
                    &dn(i),
                    None,
                    vec![("title", Value::str("T")), ("cn", Value::Null)],
                ),
                _ => add(
                    &format!("CN=Child {round},{}", dn(i)),
                    "user",
                    vec![("cn", Value::str("Child"))],
                ),
            });
        }
        let a = patched.apply(&deltas).unwrap();
        let b = rewritten.apply(&deltas).unwrap();
        assert_eq!(a.results, b.results, "round {round}: {deltas:?}");
        assert_eq!(
            std::fs::read_to_string(&sorted).unwrap(),
            std::fs::read_to_string(&shuffled).unwrap(),
            "round {round}: {deltas:?}"
        );
        assert_eq!(
            format!("{:?}", patched.take_written()),
            format!("{:?}", rewritten.take_written()),
            "round {round}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a patch reads of the lines no delta names: their shape. A line that is not a JSON
/// object of the target's shape stops the export and the file is not rewritten (as a whole
/// rewrite does); a line of the right shape with a malformed value is left as it is, and the
/// next read reports it.
#[test]
fn jsonl_target_patch_checks_the_shape_of_the_lines_it_copies() {
    let dir = tempdir("jsonl-patch-shape");
    let path = dir.join("t.jsonl");
    let mut target = JsonlTarget::new(&path);
    target
        .apply(&[
            add(ALICE, "user", vec![("cn", Value::str("Alice"))]),
            add(BOB, "user", vec![("cn", Value::str("Bob"))]),
        ])
        .unwrap();
    let good = std::fs::read_to_string(&path).unwrap();
    let bob_line = good
        .lines()
        .find(|l| l.contains("Bob"))
        .unwrap()
        .to_string();

    // Not JSON: nothing is written, the error names the line.
    let broken = good.replace(&bob_line, "{\"dn\": \"CN=Bob");
    std::fs::write(&path, &broken).unwrap();
    let e = target
        .apply(&[update(ALICE, None, vec![("title", Value::str("T"))])])
        .unwrap_err();
    assert!(e.message.contains("not rewritten"), "{e:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);

    // A malformed value in a line no delta names: the patch leaves the line as it is.
    let odd = bob_line.replace("\"Bob\"", "{\"$binary\": \"not base64!\"}");
    let text = good.replace(&bob_line, &odd);
    std::fs::write(&path, &text).unwrap();
    let out = target
        .apply(&[update(ALICE, None, vec![("title", Value::str("T"))])])
        .unwrap();
    assert_eq!(out.applied, 1);
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.lines().any(|l| l == odd), "{after}");
    assert!(after.contains("\"title\":\"T\""), "{after}");
    let back = target.full_import().unwrap();
    assert_eq!(rejected_lines(&back).len(), 1, "{:?}", back.rejected);
    let _ = std::fs::remove_dir_all(&dir);
}
