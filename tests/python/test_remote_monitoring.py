"""Remote monitoring over the FHIR API with a real client (issue 20).

A device gateway — `fhirpy` with a backend-services token of exactly
`system/Observation.c` (SMART v2 create) — posts 10,010 vital-signs readings (1,430 sets of
the seven NEWS2 parameters) for 40 patients at home, in transaction Bundles
of 20 sets. The suite's own client then checks that every reading is
stored, every set scored once with the NEWS2 this file computes
independently from the Royal College of Physicians 2017 chart (SpO2 scale 1
for most patients, scale 2 for those a clinician flagged), and escalation
Tasks exist exactly where the scores say: a task per rise to a higher
response level, each raised score linked to an open task at least as high,
no task for a low score. The readings are taken over the last nine hours
(only recent readings are scored: the 24-hour window), and each task
follows the shared Task convention (kind, owner the community team, due
time).
"""

import datetime
import random

from fhirpy import SyncFHIRClient

LOINC = "http://loinc.org"
WL = "https://fhir.wardline.invalid/CodeSystem/observation"
ACVPU = "https://fhir.wardline.invalid/CodeSystem/acvpu"
TASK_KIND = "https://fhir.wardline.invalid/CodeSystem/task-kind"
KINDS = {"urgent-ward": "news2-single-3", "urgent": "news2-urgent", "emergency": "news2-emergency"}
ESC_EXT = "https://fhir.wardline.invalid/StructureDefinition/news2-escalation"
PATIENTS = 40
SETS = 1430
PER_BUNDLE = 20
LEVELS = ["low", "urgent-ward", "urgent", "emergency"]


def band(v, edges):
    """edges: [(upper inclusive, score)...], last is the rest."""
    for hi, s in edges[:-1]:
        if v <= hi:
            return s
    return edges[-1][1]


def news2(v, scale2):
    rr = band(v["rr"], [(8, 3), (11, 1), (20, 0), (24, 2), (None, 3)])
    if scale2:
        if v["spo2"] <= 83:
            sat = 3
        elif v["spo2"] <= 85:
            sat = 2
        elif v["spo2"] <= 87:
            sat = 1
        elif v["spo2"] <= 92 or not v["o2"]:
            sat = 0
        else:
            sat = band(v["spo2"], [(94, 1), (96, 2), (None, 3)])
    else:
        sat = band(v["spo2"], [(91, 3), (93, 2), (95, 1), (None, 0)])
    parts = [
        rr,
        sat,
        2 if v["o2"] else 0,
        band(v["sbp"], [(90, 3), (100, 2), (110, 1), (219, 0), (None, 3)]),
        band(v["hr"], [(40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (None, 3)]),
        0 if v["acvpu"] == "A" else 3,
        band(round(v["temp"] * 10), [(350, 3), (360, 1), (380, 0), (390, 1), (None, 2)]),
    ]
    total = sum(parts)
    if total >= 7:
        level = "emergency"
    elif total >= 5:
        level = "urgent"
    elif max(parts) == 3:
        level = "urgent-ward"
    else:
        level = "low"
    return total, level


def readings(patient, at, v):
    def obs(system, code, **value):
        return {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": at,
            **value,
        }

    def q(x, unit):
        return {"valueQuantity": {"value": x, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}

    return [
        obs(LOINC, "9279-1", **q(v["rr"], "/min")),
        obs(LOINC, "2708-6", **q(v["spo2"], "%")),
        obs(WL, "supplemental-oxygen", valueBoolean=v["o2"]),
        obs(LOINC, "8480-6", **q(v["sbp"], "mm[Hg]")),
        obs(LOINC, "8867-4", **q(v["hr"], "/min")),
        obs(LOINC, "67775-7", valueCodeableConcept={"coding": [{"system": ACVPU, "code": v["acvpu"]}]}),
        obs(LOINC, "8310-5", **q(v["temp"], "Cel")),
    ]


def test_ten_thousand_readings_all_scored_none_lost(server):
    rnd = random.Random(20)
    suite = SyncFHIRClient(server.base, extra_headers={"Accept": "application/fhir+json"})
    tag = f"rm{rnd.randrange(10**6)}"
    patients = [f"{tag}-{i}" for i in range(PATIENTS)]
    scale2 = {p for i, p in enumerate(patients) if i % 5 == 0}
    for i, p in enumerate(patients):
        server.put(f"Patient/{p}", {"resourceType": "Patient", "id": p, "active": True, "name": [{"family": f"Remote{i}"}]})
        server.put(f"CareTeam/ct-{p}", {"resourceType": "CareTeam", "id": f"ct-{p}", "status": "active",
                                        "name": "Community respiratory team", "subject": {"reference": f"Patient/{p}"}})
        if p in scale2:
            # Recorded by a clinician in the ward UI; here as the Flag it is,
            # by the suite's system client (no position: the scale rule leaves
            # integrations to their access).
            server.put(f"Flag/s2-{p}", {"resourceType": "Flag", "id": f"s2-{p}", "status": "active",
                                        "code": {"coding": [{"system": WL, "code": "news2-spo2-scale-2"}]},
                                        "subject": {"reference": f"Patient/{p}"}})

    # The gateway: a fhirpy client with a backend-services token for the
    # registered client, asking for create on Observation only.
    gateway_token = server.mint_token("system/Observation.c")
    gateway = SyncFHIRClient(server.base, authorization=f"Bearer {gateway_token}",
                             extra_headers={"Accept": "application/fhir+json"})
    start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(hours=9)
    expected = {}  # (patient, at) -> (total, level)
    entries, posted = [], 0
    for i in range(SETS):
        p = patients[i % PATIENTS]
        minute = (i // PATIENTS) * 15
        at = (start + datetime.timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
        v = {
            "rr": rnd.choice([7, 8, 9, 11, 12, 16, 20, 21, 24, 25, 30]),
            "spo2": rnd.choice([82, 83, 84, 86, 88, 91, 92, 93, 94, 95, 96, 97, 99]),
            "o2": rnd.random() < 0.3,
            "sbp": rnd.choice([85, 90, 91, 100, 101, 110, 111, 150, 219, 220]),
            "hr": rnd.choice([38, 40, 41, 50, 51, 75, 90, 91, 110, 111, 130, 131]),
            "acvpu": rnd.choices(["A", "C", "V", "P", "U"], [90, 4, 3, 2, 1])[0],
            "temp": rnd.choice([34.8, 35.0, 35.1, 36.0, 36.1, 37.0, 38.0, 38.1, 39.0, 39.1, 40.2]),
        }
        expected[(p, at)] = news2(v, p in scale2)
        for r in readings(p, at, v):
            entries.append({"resource": r, "request": {"method": "POST", "url": "Observation"}})
        if (i + 1) % PER_BUNDLE == 0 or i + 1 == SETS:
            resp = gateway.execute("", method="post", data={"resourceType": "Bundle", "type": "transaction", "entry": entries})
            assert resp["type"] == "transaction-response"
            assert all(e["response"]["status"].startswith("201") for e in resp["entry"])
            posted += len(entries)
            entries = []
    assert posted == SETS * 7 >= 10_000

    # None lost: every reading stored.
    stored = 0
    for p in patients:
        bundle = suite.execute("Observation", method="get", params={"subject": f"Patient/{p}", "category": "vital-signs", "_summary": "count"})
        stored += bundle["total"]
    assert stored == posted

    # All scored, each with the chart's NEWS2.
    got = {}
    for p in patients:
        for s in suite.resources("Observation").search(code=f"{WL}|news2", subject=f"Patient/{p}").fetch_all():
            got[(p, s["effectiveDateTime"])] = s
    assert len(got) == SETS
    for key, (total, level) in expected.items():
        s = got[key]
        assert s["valueInteger"] == total, key
        assert len(s["derivedFrom"]) == 7
        exts = {e["url"]: e for e in s.get("extension", [])}
        assert exts["https://fhir.wardline.invalid/StructureDefinition/news2-response"]["valueCode"] == level, key
        assert exts["https://fhir.wardline.invalid/StructureDefinition/news2-scale"]["valueInteger"] == (2 if key[0] in scale2 else 1)
        assert (ESC_EXT in exts) == (level != "low"), key

    # Escalation Tasks exactly where the scores say.
    for p in patients:
        kinds = ",".join(f"{TASK_KIND}|{k}" for k in KINDS.values())
        tasks = suite.resources("Task").search(patient=f"Patient/{p}", code=kinds).fetch_all()
        by_id = {t["id"]: t for t in tasks}
        highest, raised = -1, 0
        for key in sorted(k for k in expected if k[0] == p):
            lvl = LEVELS.index(expected[key][1])
            if lvl > 0 and lvl > highest:
                raised += 1
                highest = lvl
            if lvl > 0:
                ref = {e["url"]: e for e in got[key]["extension"]}[ESC_EXT]["valueReference"]["reference"]
                t = by_id[ref.split("/", 1)[1]]
                assert t["status"] == "requested"
                assert t["owner"]["reference"] == f"CareTeam/ct-{p}"
                assert t["intent"] == "order" and t["restriction"]["period"]["end"]
                kind = t["code"]["coding"][0]
                assert kind["system"] == TASK_KIND
                assert LEVELS.index(t["businessStatus"]["coding"][0]["code"]) >= lvl
                assert kind["code"] == KINDS[t["businessStatus"]["coding"][0]["code"]]
        assert len(tasks) == raised, p
