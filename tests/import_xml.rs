//! `import::xml` against the real 2016 Contoso export in `../shared/data/entra-contoso-2016`:
//! counts cross-checked with counts taken directly from the XML, connector resolution, the
//! `In from AD - User Join` rule in detail, connector kinds and schemas, and I/O / XML errors.

use idflow::import::model::{AttrType, Config, Direction, FlowKind, JoinCondition, ScopeClause};
use idflow::import::xml;
use std::path::{Path, PathBuf};

fn export_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/entra-contoso-2016")
}

fn contoso() -> Config {
    xml::read(&export_dir()).expect("the Contoso export reads")
}

/// Counts elements named `name` in every `SynchronizationRules/*.xml`, independently of the
/// reader.
fn count_in_rules(name: &str) -> usize {
    let dir = export_dir().join("SynchronizationRules");
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "xml") {
            let text = std::fs::read_to_string(&p).unwrap();
            let doc = roxmltree::Document::parse(&text).unwrap();
            total += doc
                .descendants()
                .filter(|n| n.is_element() && n.tag_name().name() == name)
                .count();
        }
    }
    total
}

#[test]
fn reads_every_rule_and_the_counts_match_the_xml() {
    let c = contoso();
    for u in &c.unmapped {
        eprintln!(
            "unmapped: {} [{}]: {}",
            u.source.display(),
            u.context,
            u.what
        );
    }
    let counts = c.counts();
    eprintln!("counts: {counts:?}");
    assert_eq!(counts.rules, 62);
    assert_eq!(counts.scope_clauses, count_in_rules("scope"));
    assert_eq!(counts.join_conditions, count_in_rules("condition"));
    assert_eq!(counts.flows, count_in_rules("mapping"));
    assert_eq!(
        c.rules
            .iter()
            .filter(|r| r.direction == Direction::Inbound)
            .count(),
        28
    );
    assert_eq!(
        c.rules
            .iter()
            .filter(|r| r.direction == Direction::Outbound)
            .count(),
        34
    );
    // Sorted by (direction, precedence).
    let keys: Vec<(bool, i64)> = c
        .rules
        .iter()
        .map(|r| (r.direction == Direction::Outbound, r.precedence))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(
        c.unmapped.is_empty(),
        "the Contoso export maps completely: {:#?}",
        c.unmapped
    );
}

#[test]
fn rules_resolve_and_flows_are_complete() {
    let c = contoso();
    let by_id = c.connectors_by_id();
    for r in &c.rules {
        assert!(
            by_id.contains_key(r.connector.as_str()),
            "{}: connector {} not found",
            r.name,
            r.connector
        );
        assert!(!r.id.is_empty() && !r.source_type.is_empty() && !r.target_type.is_empty());
        for f in &r.flows {
            assert!(!f.target.is_empty(), "{}: flow without target", r.name);
            assert!(
                !f.source.is_empty(),
                "{}: flow to {} without source",
                r.name,
                f.target
            );
        }
    }
    let kinds = |k: FlowKind| {
        c.rules
            .iter()
            .flat_map(|r| &r.flows)
            .filter(|f| f.kind == k)
            .count()
    };
    assert_eq!(kinds(FlowKind::Expression), count_in_rules("expression"));
    assert_eq!(kinds(FlowKind::Constant), 7);
    assert_eq!(
        kinds(FlowKind::Direct) + kinds(FlowKind::Constant) + kinds(FlowKind::Expression),
        c.counts().flows
    );
    let once: Vec<&str> = c
        .rules
        .iter()
        .flat_map(|r| &r.flows)
        .filter(|f| f.execute_once)
        .map(|f| f.target.as_str())
        .collect();
    assert_eq!(once, ["cloudCreated", "registeredOwnerReference"]);
    let merge_ci = c
        .rules
        .iter()
        .flat_map(|r| &r.flows)
        .filter(|f| f.merge == "MergeCaseInsensitive")
        .count();
    assert_eq!(merge_ci, 5);
    assert_eq!(c.rules.iter().filter(|r| r.password_sync).count(), 2);
    assert!(c.rules.iter().all(|r| !r.disabled));
}

#[test]
fn user_join_rule_in_detail() {
    let c = contoso();
    let r = c
        .rules
        .iter()
        .find(|r| r.name == "In from AD - User Join")
        .unwrap();
    assert_eq!(r.direction, Direction::Inbound);
    assert_eq!(r.precedence, 100);
    assert_eq!(r.link_type, "Provision");
    assert_eq!(
        (r.source_type.as_str(), r.target_type.as_str()),
        ("user", "person")
    );
    assert_eq!(r.connector, "{ae4db4cc-b16b-4eb2-acf5-837ca84e4d7d}");
    let j = |cs: &str, mv: &str| {
        vec![JoinCondition {
            cs_attribute: cs.into(),
            mv_attribute: mv.into(),
            case_sensitive: false,
        }]
    };
    assert_eq!(
        r.joins,
        vec![
            j("objectSid", "objectSid"),
            j("msExchMasterAccountSid", "objectSid"),
            j("objectSid", "msExchMasterAccountSid"),
            j("msRTCSIP-OriginatorSid", "objectSid"),
            j("objectSid", "msRTCSIP-OriginatorSid"),
        ]
    );
    assert_eq!(
        r.scope,
        vec![vec![
            ScopeClause {
                attribute: "isCriticalSystemObject".into(),
                operator: "NOTEQUAL".into(),
                value: Some("TRUE".into())
            },
            ScopeClause {
                attribute: "adminDescription".into(),
                operator: "NOTSTARTSWITH".into(),
                value: Some("User_".into())
            },
        ]]
    );
}

#[test]
fn expressions_keep_their_text_and_unary_operators_have_no_value() {
    let c = contoso();
    let r = c
        .rules
        .iter()
        .find(|r| r.name == "Out to AAD - Group Join")
        .unwrap();
    let dn = r.flows.iter().find(|f| f.target == "dn").unwrap();
    assert_eq!(dn.kind, FlowKind::Expression);
    assert_eq!(
        dn.source,
        r#""CN={" & ConvertToUTF8Hex([sourceAnchor]) & "}""#
    );
    let aad_join = c
        .rules
        .iter()
        .find(|r| r.name == "In from AAD - User Join")
        .unwrap();
    assert!(
        aad_join
            .joins
            .iter()
            .flatten()
            .any(|j| j.case_sensitive && j.cs_attribute == "sourceAnchor")
    );
    for clause in c.rules.iter().flat_map(|r| r.scope.iter().flatten()) {
        if clause.operator == "ISNULL" || clause.operator == "ISNOTNULL" {
            assert_eq!(clause.value, None, "{clause:?}");
        } else {
            assert!(clause.value.is_some(), "{clause:?}");
        }
    }
}

#[test]
fn connectors_and_schemas() {
    let c = contoso();
    let mut kinds: Vec<&str> = c.connectors.iter().map(|c| c.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["ad", "entra"]);

    let ad = c.connectors.iter().find(|c| c.kind == "ad").unwrap();
    assert_eq!(ad.name, "contoso.com");
    assert_eq!(ad.category, "AD");
    for t in [
        "user",
        "group",
        "contact",
        "inetOrgPerson",
        "foreignSecurityPrincipal",
    ] {
        let o = ad
            .object_types
            .iter()
            .find(|o| o.name == t)
            .unwrap_or_else(|| panic!("AD type {t}"));
        assert_eq!(o.anchor.as_deref(), Some("objectGUID"));
        let guid = o
            .attributes
            .iter()
            .find(|a| a.name == "objectGUID")
            .unwrap();
        assert_eq!((guid.ty, guid.multi), (AttrType::Binary, false), "{t}");
        if t != "foreignSecurityPrincipal" {
            let proxy = o
                .attributes
                .iter()
                .find(|a| a.name == "proxyAddresses")
                .unwrap();
            assert_eq!((proxy.ty, proxy.multi), (AttrType::String, true), "{t}");
        }
    }
    let user = ad.object_types.iter().find(|o| o.name == "user").unwrap();
    let ty = |n: &str| {
        user.attributes
            .iter()
            .find(|a| a.name == n)
            .map(|a| (a.ty, a.multi))
    };
    assert_eq!(ty("member"), None);
    assert_eq!(ty("pwdLastSet"), Some((AttrType::Integer, false)));
    assert_eq!(ty("manager"), Some((AttrType::Reference, false)));
    assert_eq!(ty("userAccountControl"), Some((AttrType::Integer, false)));
    assert_eq!(ty("msExchMailboxGuid"), Some((AttrType::Binary, false)));
    assert_eq!(ty("whenCreated"), Some((AttrType::String, false)));
    let group = ad.object_types.iter().find(|o| o.name == "group").unwrap();
    let member = group
        .attributes
        .iter()
        .find(|a| a.name == "member")
        .unwrap();
    assert_eq!((member.ty, member.multi), (AttrType::Reference, true));
    // Every connector-space attribute an inbound AD rule reads is in its object type.
    for r in c
        .rules
        .iter()
        .filter(|r| r.connector == ad.id && r.direction == Direction::Inbound)
    {
        let o = ad
            .object_types
            .iter()
            .find(|o| o.name == r.source_type)
            .unwrap();
        for f in r.flows.iter().filter(|f| f.kind == FlowKind::Direct) {
            assert!(
                o.attributes.iter().any(|a| a.name == f.source),
                "{}: {}",
                r.name,
                f.source
            );
        }
    }
    assert!(ad.included_attributes.iter().any(|a| a == "proxyAddresses"));
    assert_eq!(ad.included_attributes.len(), 132);
    assert!(
        ad.parameters
            .iter()
            .any(|p| p.name == "forest-name" && p.value.as_deref() == Some("contoso.com"))
    );
    assert!(
        ad.parameters
            .iter()
            .any(|p| p.name == "password" && p.value.is_none())
    );
    assert_eq!(ad.partitions.len(), 1);
    let p = &ad.partitions[0];
    assert_eq!(p.name, "DC=contoso,DC=com");
    assert!(p.selected);
    assert_eq!(p.include_containers, ["OU=CORP,DC=contoso,DC=com"]);
    assert_eq!(p.exclude_containers, ["DC=contoso,DC=com"]);
    assert!(
        p.parameters
            .iter()
            .any(|p| p.name == "Domain.Netbios" && p.value.as_deref() == Some("CONTOSO"))
    );

    let aad = c.connectors.iter().find(|c| c.kind == "entra").unwrap();
    assert_eq!(aad.id, "{b891884f-051e-4a83-95af-2544101c9083}");
    assert_eq!(aad.category, "Extensible2");
    let names: Vec<&str> = aad.object_types.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        ["contact", "device", "group", "publicFolder", "user"]
    );
    for o in &aad.object_types {
        assert_eq!(o.anchor.as_deref(), Some("cloudAnchor"), "{}", o.name);
    }
    let user = aad.object_types.iter().find(|o| o.name == "user").unwrap();
    let proxy = user
        .attributes
        .iter()
        .find(|a| a.name == "proxyAddresses")
        .unwrap();
    assert_eq!((proxy.ty, proxy.multi), (AttrType::String, true));
    let enabled = user
        .attributes
        .iter()
        .find(|a| a.name == "accountEnabled")
        .unwrap();
    assert_eq!((enabled.ty, enabled.multi), (AttrType::Boolean, false));
    assert!(aad.parameters.iter().any(|p| p.name == "UserName"));
    assert_eq!(aad.partitions.len(), 1);
    assert!(aad.partitions[0].include_containers.is_empty());
}

#[test]
fn metaverse() {
    let c = contoso();
    let names: Vec<&str> = c.metaverse.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["person", "group", "device"]);
    let person = &c.metaverse[0];
    assert_eq!(person.anchor, None);
    assert_eq!(person.attributes.len(), 182);
    let src = person
        .attributes
        .iter()
        .find(|a| a.name == "sourceAnchorBinary")
        .unwrap();
    assert_eq!(src.ty, AttrType::Binary);
    let group = &c.metaverse[1];
    let member = group
        .attributes
        .iter()
        .find(|a| a.name == "member")
        .unwrap();
    assert_eq!((member.ty, member.multi), (AttrType::Reference, true));
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("idflow-import-xml-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    for sub in ["SynchronizationRules", "Connectors", "GlobalSettings"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    d
}

#[test]
fn missing_folder_is_an_error_naming_it() {
    let missing = export_dir().join("no-such-folder");
    let e = xml::read(&missing).unwrap_err();
    assert!(e.contains("no-such-folder"), "{e}");

    // A folder without the export's subfolders.
    let d = std::env::temp_dir().join(format!("idflow-import-xml-{}-empty", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let e = xml::read(&d).unwrap_err();
    assert!(e.contains("SynchronizationRules"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn malformed_xml_is_an_error_with_path_and_position() {
    let d = temp_dir("broken");
    let bad = d
        .join("SynchronizationRules")
        .join("SynchronizationRule_{bad}.xml");
    std::fs::write(
        &bad,
        "<synchronizationRule>\n  <name>x</nam>\n</synchronizationRule>\n",
    )
    .unwrap();
    let e = xml::read(&d).unwrap_err();
    assert!(e.contains("SynchronizationRule_{bad}.xml"), "{e}");
    assert!(e.contains(":2:"), "line number expected: {e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_well_formed_but_odd_export_reports_instead_of_failing() {
    let d = temp_dir("odd");
    std::fs::write(
        d.join("SynchronizationRules").join("r.xml"),
        "<synchronizationRule><id>{1}</id><name>Odd</name><direction>Inbound</direction>\
         <connector>{00000000-0000-0000-0000-000000000001}</connector><sourceObjectType>user</sourceObjectType>\
         <targetObjectType>person</targetObjectType><linkType>Join</linkType><precedence>1</precedence>\
         <newThing>1</newThing><attribute-mappings><mapping><dest>a</dest></mapping></attribute-mappings>\
         </synchronizationRule>",
    )
    .unwrap();
    std::fs::write(
        d.join("Connectors").join("c.xml"),
        "<ma-data><id>{00000000-0000-0000-0000-000000000002}</id><name>ldap1</name><category>Extensible2</category>\
         <ma-listname>Generic LDAP</ma-listname></ma-data>",
    )
    .unwrap();
    std::fs::write(
        d.join("GlobalSettings").join("MV.xml"),
        "<saved-mv-configuration><mv-data/></saved-mv-configuration>",
    )
    .unwrap();
    let c = xml::read(&d).unwrap();
    assert_eq!(c.rules.len(), 1);
    assert!(c.rules[0].flows.is_empty());
    assert_eq!(c.connectors[0].kind, "ldap");
    let whats: Vec<&str> = c.unmapped.iter().map(|u| u.what.as_str()).collect();
    for part in [
        "<newThing>",
        "neither <src> nor <expression>",
        "imported as ldap",
        "no DSML schema",
        "does not define",
    ] {
        assert!(
            whats.iter().any(|w| w.contains(part)),
            "{part} not in {whats:#?}"
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn deeply_nested_elements_do_not_overflow_the_stack() {
    // Every file kind, with elements nested 100,000 deep where the importer reads text and
    // children (the parser and the importer are iterative; this guards that they stay so).
    let d = temp_dir("deep");
    let deep = |tag: &str| {
        format!(
            "{}x{}",
            format!("<{tag}>").repeat(100_000),
            format!("</{tag}>").repeat(100_000)
        )
    };
    std::fs::write(
        d.join("SynchronizationRules").join("r.xml"),
        format!(
            "<synchronizationRule><id>{{1}}</id><name>{}</name><direction>Inbound</direction>\
             <scope-module>{}</scope-module></synchronizationRule>",
            deep("n"),
            deep("scope")
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("Connectors").join("c.xml"),
        format!("<ma-data><name>{}</name></ma-data>", deep("x")),
    )
    .unwrap();
    std::fs::write(
        d.join("GlobalSettings").join("MV.xml"),
        format!(
            "<saved-mv-configuration>{}</saved-mv-configuration>",
            deep("mv-data")
        ),
    )
    .unwrap();
    // Read, with what could not be mapped reported.
    let c = xml::read(&d).unwrap();
    assert!(!c.unmapped.is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}
