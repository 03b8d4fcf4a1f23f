"""Drive Wardline with `fhirpy` (sync client), and check that every resource of
every type the server reports in its CapabilityStatement validates against the
`fhir.resources` R4 models (the autouse fixture in conftest.py validates every
response body; these tests also validate what they fetch explicitly).
"""

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError, OperationOutcome, ResourceNotFound

from conftest import new_nhs_number, validate_resource

NHS = "https://fhir.nhs.uk/Id/nhs-number"


@pytest.fixture(scope="module")
def fhir(server):
    return SyncFHIRClient(server.base, extra_headers={"Accept": "application/fhir+json"})


def make_patient(fhir, family, **extra):
    p = fhir.resource(
        "Patient",
        identifier=[{"system": NHS, "value": new_nhs_number()}],
        name=[{"family": family, "given": ["Grace"]}],
        gender="female",
        birthDate="1906-12-09",
        **extra,
    )
    p.save()
    return p


def test_crud(fhir):
    p = make_patient(fhir, "Hopper-PY")
    assert p.id
    assert p["meta"]["versionId"] == "1"
    fetched = fhir.reference("Patient", p.id).to_resource()
    assert fetched["name"][0]["family"] == "Hopper-PY"
    validate_resource(fetched.serialize())

    fetched["name"][0]["family"] = "Hopper-Updated-PY"
    fetched.save()
    again = fhir.reference("Patient", p.id).to_resource()
    assert again["name"][0]["family"] == "Hopper-Updated-PY"
    assert again["meta"]["versionId"] == "2"

    history = fhir.execute(f"Patient/{p.id}/_history", method="get")
    validate_resource(history)
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]

    again.delete()
    with pytest.raises((ResourceNotFound, OperationOutcome)):
        fhir.reference("Patient", p.id).to_resource()


def test_search_and_count(fhir):
    ids = {make_patient(fhir, "Lamarr-PY").id for _ in range(4)}
    found = fhir.resources("Patient").search(family="Lamarr-PY").limit(2).fetch_all()
    assert {r.id for r in found} == ids
    assert fhir.resources("Patient").search(family="Lamarr-PY").count() == 4
    born = fhir.resources("Patient").search(family="Lamarr-PY", birthdate__ge="1906-12-09").fetch_all()
    assert len(born) == 4
    none = fhir.resources("Patient").search(family="Lamarr-PY", birthdate__lt="1906").fetch_all()
    assert none == []


def test_references_and_conditional_create(fhir):
    patient = make_patient(fhir, "Franklin-PY")
    enc = fhir.resource(
        "Encounter",
        status="finished",
        **{"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}},
        subject=patient.to_reference(),
        period={"start": "2024-01-01T09:00:00Z", "end": "2024-01-03T12:00:00Z"},
    )
    enc.save()
    encs = fhir.resources("Encounter").search(subject=patient.to_reference().reference).fetch_all()
    assert [e.id for e in encs] == [enc.id]
    assert encs[0]["subject"]["reference"] == f"Patient/{patient.id}"

    # A transaction Bundle with urn:uuid references.
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:6d7d3b57-9d43-4b55-9cc8-2f1f9d3e1a01",
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": NHS, "value": new_nhs_number()}],
                    "name": [{"family": "Txn-PY"}],
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:6d7d3b57-9d43-4b55-9cc8-2f1f9d3e1a02",
                "resource": {
                    "resourceType": "Condition",
                    "subject": {"reference": "urn:uuid:6d7d3b57-9d43-4b55-9cc8-2f1f9d3e1a01"},
                    "code": {"text": "Asthma"},
                },
                "request": {"method": "POST", "url": "Condition"},
            },
        ],
    }
    resp = fhir.execute("", method="post", data=bundle)
    validate_resource(resp)
    assert resp["type"] == "transaction-response"
    assert [e["response"]["status"][:3] for e in resp["entry"]] == ["201", "201"]
    pat_loc = resp["entry"][0]["response"]["location"]
    pat_id = pat_loc.split("Patient/")[1].split("/")[0]
    conds = fhir.resources("Condition").search(subject=f"Patient/{pat_id}").fetch_all()
    assert len(conds) == 1
    assert conds[0]["subject"]["reference"] == f"Patient/{pat_id}"


def test_invalid_resource_is_refused(fhir):
    bad = fhir.resource("Patient", name=[{"family": "Bad-PY"}], birthDate="not-a-date")
    with pytest.raises(OperationOutcome) as err:
        bad.save()
    outcome = err.value.resource
    validate_resource(outcome)
    assert any("birthDate" in x for i in outcome["issue"] for x in i.get("expression", []))
    assert fhir.resources("Patient").search(family="Bad-PY").count() == 0

    bad_nhs = fhir.resource("Patient", identifier=[{"system": NHS, "value": "9000000015"}])
    with pytest.raises(OperationOutcome):
        bad_nhs.save()


def test_every_resource_validates(fhir):
    """Page through every type the CapabilityStatement lists; validate everything."""
    cs = fhir.execute("metadata", method="get")
    validate_resource(cs)
    types = [r["type"] for r in cs["rest"][0]["resource"]]
    assert len(types) > 100, "the CapabilityStatement should list the R4 resource types"
    counts = {}
    for rtype in types:
        if rtype == "AuditEvent":
            # The audit trail is open to IG officers only, not to this
            # suite's backend token (test_access.py covers it).
            with pytest.raises(ForbiddenError):
                fhir.resources(rtype).limit(1).fetch_all()
            continue
        resources = fhir.resources(rtype).limit(200).fetch_all()
        for r in resources:
            validate_resource(r.serialize())
        if resources:
            counts[rtype] = len(resources)
    total = sum(counts.values())
    print(f"validated {total} resources of {len(counts)} types: {counts}")
    assert counts.get("Patient", 0) >= 50, f"expected the demo trust's ~100 patients, got {counts}"
    for t in ("Organization", "Location", "Practitioner"):
        assert counts.get(t, 0) > 0, f"the demo trust has no {t}: {counts}"
