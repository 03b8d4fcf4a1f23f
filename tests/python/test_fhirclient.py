"""Drive Wardline with SMART on FHIR's `fhirclient` (R4 models), as an open server.

Every response body is also validated against the `fhir.resources` R4 models by
the autouse fixture in conftest.py.
"""

import pytest
import requests
from fhirclient import client
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient

from conftest import is_valid_nhs_number, new_nhs_number

NHS = "https://fhir.nhs.uk/Id/nhs-number"


@pytest.fixture(scope="module")
def smart(server):
    c = client.FHIRClient(settings={"app_id": "wardline-tests", "api_base": server.base + "/"})
    return c


def new_patient(family, nhs):
    return Patient(
        {
            "resourceType": "Patient",
            "identifier": [{"system": NHS, "value": nhs}],
            "name": [{"use": "official", "family": family, "given": ["Ada", "May"]}],
            "gender": "female",
            "birthDate": "1984-02-29",
            "telecom": [{"system": "phone", "value": "01632 960001", "use": "home"}],
            "address": [{"line": ["1 Test Street"], "city": "Leeds", "postalCode": "LS1 1AA", "country": "GB"}],
        }
    )


def test_capability_statement(smart):
    cs = CapabilityStatement.read_from("metadata", smart.server)
    assert cs.fhirVersion == "4.0.1"
    assert cs.kind == "instance"
    assert any("json" in f for f in cs.format)
    rest = cs.rest[0]
    assert rest.mode == "server"
    types = {r.type: r for r in rest.resource}
    assert "Patient" in types and "Observation" in types
    patient_interactions = {i.code for i in types["Patient"].interaction}
    assert {"read", "vread", "update", "create", "search-type", "history-instance"} <= patient_interactions
    search_params = {p.name for p in types["Patient"].searchParam}
    assert {"identifier", "family", "birthdate", "gender"} <= search_params


def test_create_read_update_delete(smart):
    nhs = new_nhs_number()
    created = new_patient("Lovelace-FC", nhs).create(smart.server)
    assert created is not None, "create returned no body (expected return=representation by default)"
    pid = created["id"]
    assert created["meta"]["versionId"] == "1"

    p = Patient.read(pid, smart.server)
    assert p.id == pid
    assert p.name[0].family == "Lovelace-FC"
    assert p.birthDate.isostring == "1984-02-29"
    assert p.identifier[0].system == NHS and p.identifier[0].value == nhs
    assert p.meta.versionId == "1"

    p.name[0].family = "Byron-FC"
    p.active = True
    updated = p.update(smart.server)
    assert updated["meta"]["versionId"] == "2"

    again = Patient.read(pid, smart.server)
    assert again.name[0].family == "Byron-FC"
    assert again.active is True
    assert again.meta.versionId == "2"

    v1 = Patient.read_from(f"Patient/{pid}/_history/1", smart.server)
    assert v1.name[0].family == "Lovelace-FC"

    again.delete(smart.server)
    with pytest.raises(requests.HTTPError) as err:
        Patient.read(pid, smart.server)
    assert err.value.response.status_code == 410


def test_search(smart):
    family = "Searchable-FC"
    ids = set()
    for _ in range(3):
        ids.add(new_patient(family, new_nhs_number()).create(smart.server)["id"])
    found = list(Patient.where(struct={"family": family}).perform_resources_iter(smart.server))
    assert {p.id for p in found} == ids
    assert all(p.name[0].family == family for p in found)

    one = next(iter(ids))
    nhs = Patient.read(one, smart.server).identifier[0].value
    by_nhs = list(Patient.where(struct={"identifier": f"{NHS}|{nhs}"}).perform_resources_iter(smart.server))
    assert [p.id for p in by_nhs] == [one]

    # Paging: fhirclient follows the server's `next` links.
    paged = list(Patient.where(struct={"family": family, "_count": "1"}).perform_resources_iter(smart.server))
    assert sorted(p.id for p in paged) == sorted(ids)


def test_observation_and_compartment(smart):
    pid = new_patient("Obs-FC", new_nhs_number()).create(smart.server)["id"]
    obs = Observation(
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": "2024-03-01T10:15:00Z",
            "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
        }
    )
    oid = obs.create(smart.server)["id"]
    found = list(Observation.where(struct={"subject": f"Patient/{pid}"}).perform_resources_iter(smart.server))
    assert [o.id for o in found] == [oid]
    assert found[0].valueQuantity.value == 72
    compartment = Bundle.read_from(f"Patient/{pid}/Observation", smart.server)
    assert [e.resource.id for e in compartment.entry] == [oid]
    high = list(Observation.where(struct={"subject": f"Patient/{pid}", "value-quantity": "gt100"}).perform_resources_iter(smart.server))
    assert high == []


def test_demo_patients_have_valid_nhs_numbers(smart):
    patients = list(Patient.where(struct={"_count": "50"}).perform_resources_iter(smart.server))
    demo = [p for p in patients if not (p.name and p.name[0].family and p.name[0].family.endswith("-FC"))]
    assert len(demo) >= 50, f"expected ~100 demo patients, found {len(demo)}"
    for p in demo:
        nhs = [i.value for i in (p.identifier or []) if i.system == NHS]
        assert nhs, f"demo Patient/{p.id} has no NHS number"
        assert all(is_valid_nhs_number(v) for v in nhs), f"Patient/{p.id}: invalid NHS number {nhs}"
