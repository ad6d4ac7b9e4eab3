#!/usr/bin/env python3
"""Generates the directory schema data the Entra importer ships (schemas/*.txt).

`idflow import entra SCRIPT.ps1 -o BUNDLE` adds to a bundle's schema files the object types
and attributes its imported rules use that the bundle does not declare, with their types
taken from this data (src/import/extend.rs). Two files are generated:

  schemas/active-directory.txt   the Active Directory schema: structural object classes and
                                 attributes (idflow type, single- or multi-valued)
  schemas/entra.txt              the Microsoft Entra connector's object types and attributes

Usage (docs/IMPORT.md, "Schema data", says where the inputs come from):

  python3 tools/gen-schemas.py ad --attributes ATTRS.ldf --classes CLASSES.ldf \
      [--extensions AD_CONNECTOR.xml] > schemas/active-directory.txt
  python3 tools/gen-schemas.py entra ENTRA_CONNECTOR.xml > schemas/entra.txt

ATTRS.ldf and CLASSES.ldf are Microsoft's published AD DS schema definitions (Open
Specifications: "AD DS Attributes/Classes, Windows Server v1903", LDIF). AD_CONNECTOR.xml and
ENTRA_CONNECTOR.xml are connector files of a `Get-ADSyncServerConfiguration` export
(`Connectors/Connector_{id}.xml`): their DSML schema gives the Entra connector's attributes
and, for an AD connector, the schema extensions of that forest (Exchange, Skype for Business)
that AD DS itself does not define. Only names, types and multiplicity are written.

Output format: `#` comments; `%classes SOURCE` and `%attributes SOURCE` start sections; a
class line is its name; an attribute line is `NAME TYPE` or `NAME TYPE multi`, TYPE one of
idflow's schema types (string integer boolean binary reference). Lines are sorted by name.
"""

import argparse
import re
import sys
import xml.etree.ElementTree as ET

# AD attributeSyntax (and oMSyntax where it decides) -> idflow type, as Entra's AD connector
# presents them (the LDAP syntaxes of MS-ADTS 3.1.1.2.2.2; times stay strings, as in Entra's
# connector space; the same mapping as src/import/xml.rs gives DSML syntaxes).
AD_SYNTAX = {
    "2.5.5.1": "reference",  # DN
    "2.5.5.2": "string",  # OID
    "2.5.5.3": "string",  # case-sensitive string
    "2.5.5.4": "string",  # case-insensitive (teletex) string
    "2.5.5.5": "string",  # printable / IA5 string
    "2.5.5.6": "string",  # numeric string
    "2.5.5.7": "reference",  # DN-Binary, OR-Name
    "2.5.5.8": "boolean",
    "2.5.5.9": "integer",  # integer, enumeration
    "2.5.5.10": "binary",  # octet string, replica link
    "2.5.5.11": "string",  # UTC / generalized time
    "2.5.5.12": "string",  # Unicode string
    "2.5.5.13": "string",  # presentation address
    "2.5.5.14": "reference",  # DN-String, access point
    "2.5.5.15": "binary",  # NT security descriptor
    "2.5.5.16": "integer",  # large integer
    "2.5.5.17": "binary",  # SID
}

# DSML (LDAP) syntax OIDs -> idflow type: src/import/xml.rs `syntax_type`.
DSML_SYNTAX = {
    "1.3.6.1.4.1.1466.115.121.1.7": "boolean",
    "1.3.6.1.4.1.1466.115.121.1.27": "integer",
    "1.3.6.1.4.1.1466.115.121.1.5": "binary",
    "1.3.6.1.4.1.1466.115.121.1.40": "binary",
    "1.3.6.1.4.1.1466.115.121.1.12": "reference",
    "1.2.840.113556.1.4.906": "integer",
    "1.2.840.113556.1.4.903": "reference",
    "1.2.840.113556.1.4.904": "reference",
    "1.2.840.113556.1.4.1221": "reference",
    "1.2.840.113556.1.4.905": "string",
    "1.2.840.113556.1.4.1362": "string",
    "1.2.840.113556.1.4.907": "binary",
}
for n in ("11", "15", "24", "26", "36", "38", "41", "43", "44", "50", "53"):
    DSML_SYNTAX["1.3.6.1.4.1.1466.115.121.1." + n] = "string"


def ldif_records(path):
    """The records of an LDIF file as dicts of lower-cased name -> [values] (folded lines
    joined; base64 values are not needed and kept as written)."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace").replace("\r\n", "\n")
    for block in re.split(r"\n\s*\n", text):
        lines = []
        for line in block.split("\n"):
            if line.startswith(" ") and lines:
                lines[-1] += line[1:]
            elif line and not line.startswith("#"):
                lines.append(line)
        rec = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                rec.setdefault(name.strip().lower(), []).append(value.lstrip(": ").strip())
        if rec:
            yield rec


def one(rec, name):
    v = rec.get(name.lower())
    return v[0] if v else None


def ad_ldf(attributes, classes):
    attrs, cls = {}, {}
    for rec in ldif_records(attributes):
        name = one(rec, "lDAPDisplayName")
        syntax = one(rec, "attributeSyntax")
        if not name or not syntax:
            continue
        ty = AD_SYNTAX.get(syntax)
        if ty is None:
            sys.exit(f"{attributes}: {name}: unknown attributeSyntax {syntax}")
        multi = one(rec, "isSingleValued") != "TRUE"
        attrs[name.lower()] = (name, ty, multi)
    for rec in ldif_records(classes):
        name = one(rec, "lDAPDisplayName")
        # 1 structural, 0 an 88 class; abstract (2) and auxiliary (3) classes are never an
        # object's type.
        if name and one(rec, "objectClassCategory") in ("0", "1"):
            cls[name.lower()] = name
    return attrs, cls


def strip_ns(tag):
    return tag.rsplit("}", 1)[-1]


def dsml(path):
    """The attribute types and structural classes of a connector file's DSML schema, with the
    classes' attribute names."""
    root = ET.parse(path).getroot()
    attrs, classes = {}, {}
    by_id = {}
    for el in root.iter():
        tag = strip_ns(el.tag)
        if tag == "attribute-type":
            name = syntax = None
            for c in el:
                t = strip_ns(c.tag)
                if t == "name":
                    name = (c.text or "").strip()
                elif t == "syntax":
                    syntax = (c.text or "").strip()
            if not name:
                continue
            ty = DSML_SYNTAX.get(syntax)
            if ty is None:
                print(f"{path}: {name}: unknown syntax {syntax}, left out", file=sys.stderr)
                continue
            multi = el.get("single-value") != "true"
            attrs[name.lower()] = (name, ty, multi)
            by_id[el.get("id")] = name
    for el in root.iter():
        if strip_ns(el.tag) == "class" and el.get("type", "structural") == "structural":
            name = None
            members = []
            for c in el:
                t = strip_ns(c.tag)
                if t == "name":
                    name = (c.text or "").strip()
                elif t == "attribute":
                    members.append(c.get("ref", "").lstrip("#"))
            if name:
                classes[name.lower()] = (name, [by_id.get(m, m) for m in members])
    return attrs, classes


def write_section(out, kind, source, lines):
    out.append(f"%{kind} {source}")
    out.extend(sorted(lines, key=str.lower))


def attr_line(a):
    name, ty, multi = a
    return f"{name} {ty} multi" if multi else f"{name} {ty}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    ad = sub.add_parser("ad")
    ad.add_argument("--attributes", required=True)
    ad.add_argument("--classes", required=True)
    ad.add_argument("--extensions")
    en = sub.add_parser("entra")
    en.add_argument("connector")
    args = p.parse_args()
    out = [
        "# Generated by tools/gen-schemas.py; do not edit (docs/IMPORT.md, \"Schema data\").",
    ]
    if args.what == "ad":
        attrs, cls = ad_ldf(args.attributes, args.classes)
        out.append(
            "# active-directory: Microsoft's published AD DS schema (Open Specifications,"
        )
        out.append(
            "# Windows Server v1903): structural classes and attributes, typed as Entra's AD"
        )
        out.append("# connector presents them (its schema wins where the two differ).")
        ext_attrs, ext_cls = {}, {}
        if args.extensions:
            x_attrs, x_cls = dsml(args.extensions)
            for k, a in x_attrs.items():
                if k in attrs:
                    # Rules read attributes as Entra's AD connector presents them: its type
                    # wins (SIDs it shows as references, unicodePwd as a string).
                    if attrs[k][1:] != a[1:]:
                        print(
                            f"note: {a[0]}: {attrs[k][1:]} in AD DS, {a[1:]} in the connector schema: the connector's kept",
                            file=sys.stderr,
                        )
                        attrs[k] = (attrs[k][0],) + a[1:]
                else:
                    ext_attrs[k] = a
            for k, (name, _) in x_cls.items():
                if k not in cls:
                    ext_cls[k] = name
            out.append(
                "# extension: classes and attributes AD DS does not define (Exchange, Skype for"
            )
            out.append(
                "# Business, ...), from the AD connector schema of an Entra Connect export."
            )
        write_section(out, "classes", "active-directory", cls.values())
        write_section(out, "attributes", "active-directory", map(attr_line, attrs.values()))
        if args.extensions:
            write_section(out, "classes", "extension", ext_cls.values())
            write_section(out, "attributes", "extension", map(attr_line, ext_attrs.values()))
    else:
        attrs, classes = dsml(args.connector)
        out.append(
            "# entra: the object types and attributes of the Microsoft Entra connector, from the"
        )
        out.append("# connector schema of an Entra Connect export.")
        write_section(out, "classes", "entra", [n for n, _ in classes.values()])
        write_section(out, "attributes", "entra", map(attr_line, attrs.values()))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
