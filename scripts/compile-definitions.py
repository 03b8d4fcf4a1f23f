import json, gzip, sys
d = sys.argv[1]
def load(p):
    if p.endswith('.gz'):
        return json.load(gzip.open(p))
    return json.load(open(p))
types = {}
for f in ['Bundle-types.json.gz', 'Bundle-resources.json.gz']:
    b = load(f"{d}/{f}")
    for e in b['entry']:
        r = e['resource']
        if r.get('resourceType') != 'StructureDefinition': continue
        if r.get('derivation') == 'constraint': continue
        kind = r['kind']
        if kind not in ('resource', 'complex-type', 'primitive-type'): continue
        els = []
        regex = None
        for el in r['snapshot']['element']:
            ts = [t['code'] for t in el.get('type', [])]
            # FHIRPath system types for primitive .value
            ts = [t.split('.')[-1] if t.startswith('http://hl7.org/fhirpath/System.') else t for t in ts]
            for t in el.get('type', []):
                for ext in t.get('extension', []):
                    if ext['url'].endswith('/regex') and el['path'].endswith('.value'):
                        regex = ext['valueString']
            # [path, min, max, types, contentReference|None, isSummary]
            item = [el['path'], el.get('min', 0), el.get('max', '*'), ts,
                    el.get('contentReference'), 1 if el.get('isSummary') else 0]
            els.append(item)
        types[r['name'] if kind != 'resource' else r['type']] = {'k': kind[0], 'a': r.get('abstract', False), 'e': els, **({'r': regex} if regex else {})}
sp = load(f"{d}/Bundle-searchParams.json")
params = []
for e in sp['entry']:
    r = e['resource']
    params.append({'c': r['code'], 'b': r['base'], 't': r['type'], 'x': r.get('expression'), 'g': r.get('target', []),
                   'u': r.get('url'), 'm': [[c['definition'], c['expression']] for c in r.get('component', [])]})
comp = load(f"{d}/CompartmentDefinition-patient.json")
pc = {res['code']: res.get('param', []) for res in comp['resource']}
out = {'types': types, 'params': params, 'patient_compartment': pc}
s = json.dumps(out, separators=(',', ':'))
gzip.open(sys.argv[2], 'wb', 9).write(s.encode())
print(len(types), len(params), len(s))
