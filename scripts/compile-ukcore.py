#!/usr/bin/env python3
"""Compiles the UK Core definitions Wardline validates against into
crates/wardline-fhir/data/uk-core.json (read by wardline_fhir::profile).

Usage: python3 scripts/compile-ukcore.py ../shared/testdata/uk-core-r4/definitions \
           crates/wardline-fhir/data/uk-core.json

Input: the XML StructureDefinitions and ValueSets of the UK Core package
UKCore.R4.STU.02.00.00 (NHSDigital/FHIR-R4-UKCORE-STAGING-MAIN, Apache-2.0).
Kept: the profiles in PROFILES; every extension definition they name (and the
extensions those name); the value sets that any kept element binds `required`,
expanded to (system, code) pairs. Of each element only what constrains an
instance: slicing, sliceName, min, max, types (with their profiles), fixed[x],
pattern[x] and the binding (strength and value set). The few HL7 core
extensions UK Core Patient slices are not in the package; their constraints are
transcribed from the FHIR R4 extension definitions (CC0) in CORE_EXTENSIONS.
"""
import json
import os
import sys
import xml.etree.ElementTree as ET

NS = {"f": "http://hl7.org/fhir"}
F = "{http://hl7.org/fhir}"

PROFILES = ["UKCore-Patient", "UKCore-Encounter"]

# FHIR R4 (4.0.1) extension definitions UK Core Patient slices (CC0): only
# the constraints an instance is checked against.
CORE_EXTENSIONS = [
    {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "name": "patient-birthPlace",
     "context": ["Patient"],
     "elements": [{"id": "Extension", "max": "1"},
                  {"id": "Extension.value[x]", "min": 1, "types": [{"code": "Address"}]}]},
    {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "name": "patient-birthTime",
     "context": ["Patient.birthDate"],
     "elements": [{"id": "Extension", "max": "1"},
                  {"id": "Extension.value[x]", "min": 1, "types": [{"code": "dateTime"}]}]},
    {"url": "http://hl7.org/fhir/StructureDefinition/patient-cadavericDonor", "name": "patient-cadavericDonor",
     "context": ["Patient"],
     "elements": [{"id": "Extension", "max": "1"},
                  {"id": "Extension.value[x]", "min": 1, "types": [{"code": "boolean"}]}]},
    {"url": "http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired",
     "name": "patient-interpreterRequired", "context": ["Patient"],
     "elements": [{"id": "Extension", "max": "1"},
                  {"id": "Extension.value[x]", "min": 1, "types": [{"code": "boolean"}]}]},
    {"url": "http://hl7.org/fhir/StructureDefinition/patient-proficiency", "name": "patient-proficiency",
     "context": ["Patient.communication"],
     "elements": [{"id": "Extension", "max": "1"},
                  {"id": "Extension.extension:level", "slice": "level", "max": "1"},
                  {"id": "Extension.extension:level.url", "fixed": {"type": "Uri", "value": "level"}},
                  {"id": "Extension.extension:level.value[x]", "min": 1, "types": [{"code": "Coding"}]},
                  {"id": "Extension.extension:type", "slice": "type"},
                  {"id": "Extension.extension:type.url", "fixed": {"type": "Uri", "value": "type"}},
                  {"id": "Extension.extension:type.value[x]", "min": 1, "types": [{"code": "Coding"}]},
                  {"id": "Extension.value[x]", "max": "0"}]},
]

# Value sets defined by a grammar rather than a list of codes.
GRAMMAR_VALUE_SETS = {
    "http://hl7.org/fhir/ValueSet/all-languages": {"name": "all-languages", "system": "urn:ietf:bcp:47",
                                                   "grammar": "bcp47"},
}


def attr(el, name):
    c = el.find(f"f:{name}", NS)
    return None if c is None else c.get("value")


def load(folder):
    out = {}
    for fn in sorted(os.listdir(folder)):
        if fn.endswith(".xml"):
            root = ET.parse(os.path.join(folder, fn)).getroot()
            url = attr(root, "url")
            if url:
                out[url] = root
    return out


def element(el):
    e = {"id": el.get("id")}
    s = attr(el, "sliceName")
    if s:
        e["slice"] = s
    mn = attr(el, "min")
    if mn is not None:
        e["min"] = int(mn)
    mx = attr(el, "max")
    if mx is not None:
        e["max"] = mx
    types = []
    for t in el.findall("f:type", NS):
        item = {"code": attr(t, "code")}
        profiles = [p.get("value") for p in t.findall("f:profile", NS)]
        if profiles:
            item["profile"] = profiles
        types.append(item)
    if types:
        e["types"] = types
    for child in el:
        tag = child.tag.replace(F, "")
        for kind in ("fixed", "pattern"):
            if tag.startswith(kind) and tag[len(kind):][:1].isupper():
                value = child.get("value")
                if value is None:
                    raise SystemExit(f"{e['id']}: complex {tag} is not supported by this script")
                e[kind] = {"type": tag[len(kind):], "value": value}
    b = el.find("f:binding", NS)
    if b is not None and attr(b, "valueSet"):
        e["binding"] = {"strength": attr(b, "strength"), "valueSet": attr(b, "valueSet").split("|")[0]}
    sl = el.find("f:slicing", NS)
    if sl is not None:
        e["slicing"] = {
            "discriminator": [[attr(d, "type"), attr(d, "path")] for d in sl.findall("f:discriminator", NS)],
            "rules": attr(sl, "rules") or "open",
        }
    keep = set(e) - {"id"}
    return e if keep else None


def structure(root):
    els = [element(el) for el in root.findall("f:differential/f:element", NS)]
    return [e for e in els if e]


def main():
    src, dest = sys.argv[1], sys.argv[2]
    sds = load(os.path.join(src, "structuredefinitions"))
    vss = load(os.path.join(src, "valuesets"))
    by_name = {attr(r, "id"): r for r in sds.values()}
    profiles, extensions, wanted_vs = [], {}, set()
    core = {e["url"]: e for e in CORE_EXTENSIONS}

    def note(elements):
        for e in elements:
            b = e.get("binding")
            if b and b["strength"] == "required":
                wanted_vs.add(b["valueSet"])
            for t in e.get("types", []):
                for p in t.get("profile", []):
                    if t["code"] == "Extension" and p not in extensions:
                        add_extension(p)

    def add_extension(url):
        if url in core:
            extensions[url] = core[url]
            note(core[url]["elements"])
            return
        root = sds.get(url)
        if root is None:
            print(f"note: extension {url} is not in the package; not checked", file=sys.stderr)
            return
        ctx = [attr(c, "expression") for c in root.findall("f:context", NS)]
        ext = {"url": url, "name": attr(root, "id"), "version": attr(root, "version"), "context": ctx,
               "elements": structure(root)}
        extensions[url] = ext
        note(ext["elements"])

    for name in PROFILES:
        root = by_name[name]
        p = {"url": attr(root, "url"), "name": name, "version": attr(root, "version"),
             "type": attr(root, "type"), "elements": structure(root)}
        profiles.append(p)
        note(p["elements"])

    value_sets, unchecked = [], []
    for url in sorted(wanted_vs):
        if url in GRAMMAR_VALUE_SETS:
            value_sets.append({"url": url, **GRAMMAR_VALUE_SETS[url]})
            continue
        root = vss.get(url)
        if root is None:
            print(f"note: required value set {url} is not in the package; not checked", file=sys.stderr)
            unchecked.append(url)
            continue
        codes = [[attr(c, "system"), attr(c, "code")] for c in root.findall("f:expansion/f:contains", NS)]
        if not codes:
            raise SystemExit(f"required value set {url} has no expansion")
        value_sets.append({"url": url, "name": attr(root, "id"), "codes": codes})

    out = {
        "package": "UKCore.R4.STU.02.00.00",
        "source": "NHSDigital/FHIR-R4-UKCORE-STAGING-MAIN commit 3d2827e3e9918674640d0c14a0f870084397a615",
        "licence": "Apache-2.0 (Copyright 2021+ HL7 UK); the HL7 core extensions: CC0-1.0",
        "generator": "scripts/compile-ukcore.py",
        "profiles": profiles,
        "extensions": sorted(extensions.values(), key=lambda e: e["url"]),
        "valueSets": value_sets,
        "uncheckedValueSets": unchecked,
    }
    with open(dest, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(len(profiles), "profiles,", len(extensions), "extensions,", len(value_sets), "value sets")


if __name__ == "__main__":
    main()
