"""Compiles the required bindings of the FHIR R4 (4.0.1) core definitions into
crates/wardline-fhir/data/r4-bindings.json.gz, which the validator embeds.

Input: the unpacked npm package hl7.fhir.r4.examples@4.0.1 (CC0-1.0), which
carries the specification's StructureDefinitions, ValueSets and CodeSystems:

    npm pack hl7.fhir.r4.examples@4.0.1 && tar xzf hl7.fhir.r4.examples-4.0.1.tgz
    python3 scripts/compile-bindings.py package crates/wardline-fhir/data/r4-bindings.json.gz

Output: {"b": {element path: value set url}, "v": {value set url: [[system, [code, ...]], ...]}}
for every element of a resource or data type (the same StructureDefinitions as
r4-model.json.gz: no constraints) bound `required` to a value set whose codes
can be listed from the package alone: explicit concepts, whole code systems
whose content is `complete`, imported value sets, exclusions by concept or
system. A value set that needs anything else (a filter, or a code system the
package does not define in full: MIME types, UCUM, ISO 4217 currencies, LOINC)
is left out, and so are the elements bound to it; the script names them.
"""
import glob, gzip, json, os, sys

src, dst = sys.argv[1], sys.argv[2]


def load_all(prefix):
    out = {}
    for f in sorted(glob.glob(os.path.join(src, prefix + '-*.json'))):
        r = json.load(open(f, encoding='utf-8'))
        if 'url' in r:
            out[r['url']] = r
    return out


value_sets, code_systems = load_all('ValueSet'), load_all('CodeSystem')


def all_concepts(c):
    for x in c.get('concept', []):
        yield x['code']
        yield from all_concepts(x)


def expand(url, seen=()):
    """The (system, code) pairs of a value set, or a string saying why not."""
    url = url.split('|')[0]
    v = value_sets.get(url)
    if v is None:
        return f'value set {url} is not in the package'
    if url in seen:
        return f'value set {url} imports itself'
    compose = v.get('compose')
    if not compose:
        return f'value set {url} has no compose'
    out = set()
    for inc in compose.get('include', []):
        part = None
        for sub in inc.get('valueSet', []):
            e = expand(sub, seen + (url,))
            if isinstance(e, str):
                return e
            part = e if part is None else part & e
        if 'system' in inc:
            system = inc['system']
            if inc.get('filter'):
                return f'{url} filters {system}'
            if inc.get('concept'):
                codes = {(system, c['code']) for c in inc['concept']}
            else:
                cs = code_systems.get(system)
                if cs is None or cs.get('content') != 'complete':
                    return f'{url} draws on {system}, not defined in full here'
                codes = {(system, c) for c in all_concepts(cs)}
            part = codes if part is None else part & codes
        out |= part or set()
    for exc in compose.get('exclude', []):
        if exc.get('filter') or exc.get('valueSet'):
            return f'{url} excludes by filter or value set'
        if exc.get('concept'):
            out -= {(exc['system'], c['code']) for c in exc['concept']}
        else:
            out = {x for x in out if x[0] != exc['system']}
    return out


bindings, sets, skipped = {}, {}, []
for f in sorted(glob.glob(os.path.join(src, 'StructureDefinition-*.json'))):
    r = json.load(open(f, encoding='utf-8'))
    if r.get('derivation') == 'constraint':
        continue
    if r.get('kind') not in ('resource', 'complex-type', 'primitive-type'):
        continue
    for el in r['snapshot']['element']:
        b = el.get('binding') or {}
        if b.get('strength') != 'required' or 'valueSet' not in b:
            continue
        url = b['valueSet'].split('|')[0]
        e = expand(url)
        if isinstance(e, str):
            skipped.append(f"{el['path']}: {e}")
            continue
        bindings[el['path']] = url
        by_system = {}
        for system, code in sorted(e):
            by_system.setdefault(system, []).append(code)
        sets[url] = sorted(by_system.items())

out = json.dumps({'b': dict(sorted(bindings.items())), 'v': dict(sorted(sets.items()))},
                 separators=(',', ':'), ensure_ascii=False)
# No file name or time in the gzip header, so the output is reproducible.
with open(dst, 'wb') as f, gzip.GzipFile('', 'wb', 9, f, mtime=0) as g:
    g.write(out.encode('utf-8'))
print(f'{len(bindings)} bindings to {len(sets)} value sets, {len(out)} bytes; skipped {len(skipped)}:')
for s in skipped:
    print('  ' + s)
