"""Access control through an external client (`fhirclient`): a member of
staff's token reads a patient they care for and is refused (403, raised by
fhirclient) one they have no relationship with.

The server's policy is tested in depth by crates/wardline/tests/e2e/access.rs;
this checks that a standard SMART client sees the same answers.
"""

import uuid

import pytest
import requests
from fhirclient import client, server as fhirserver
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient

PASSWORD = "correct horse battery staple 7"


def observation(oid, pid):
    return {
        "resourceType": "Observation", "id": oid, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": 70, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
    }


@pytest.fixture(scope="module")
def ward(server):
    """A consultant on watford-w1, a patient in a bed there (P1) and one elsewhere (P2)."""
    tag = uuid.uuid4().hex[:8]
    p1, p2 = f"py-acc-{tag}-1", f"py-acc-{tag}-2"
    for pid in (p1, p2):
        server.put(f"Patient/{pid}", {
            "resourceType": "Patient", "id": pid, "active": True,
            "name": [{"family": f"Pyaccess{tag}", "given": ["Test"]}], "gender": "unknown",
        })
        server.put(f"Observation/{pid}-obs", observation(f"{pid}-obs", pid))
    server.put(f"Encounter/{p1}-enc", {
        "resourceType": "Encounter", "id": f"{p1}-enc", "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": f"Patient/{p1}"},
        "location": [{"location": {"reference": "Location/watford-w1-b1-1"}}],
    })
    user = f"py.cons.{tag}"
    server.cli("user", "add", user, "--name", "Py Consultant", env_extra={"WARDLINE_NEW_PASSWORD": PASSWORD})
    server.cli("user", "grant", user, "--role", "consultant", "--location", "watford-w1")
    token = server.cli("token", "--user", user, "--scope", "user/*.cruds", "--minutes", "60").strip()
    return {"p1": p1, "p2": p2, "user": user, "token": token}


@pytest.fixture(scope="module")
def staff_client(server, ward):
    c = client.FHIRClient(settings={"app_id": "wardline-py-access", "api_base": server.base + "/"})
    c.server.session.headers["Authorization"] = f"Bearer {ward['token']}"
    return c


def test_reads_a_patient_in_their_care(staff_client, ward):
    p = Patient.read(ward["p1"], staff_client.server)
    assert p.id == ward["p1"]
    o = Observation.read(f"{ward['p1']}-obs", staff_client.server)
    assert o.subject.reference == f"Patient/{ward['p1']}"


def test_refused_without_a_relationship(staff_client, ward):
    with pytest.raises(fhirserver.FHIRPermissionDeniedException) as e:
        Observation.read(f"{ward['p2']}-obs", staff_client.server)
    assert e.value.response.status_code == 403
    assert e.value.response.json()["resourceType"] == "OperationOutcome"


def test_no_token_is_401(server, ward):
    # conftest adds the suite's token only when there is no Authorization header.
    r = requests.get(
        f"{server.base}/Patient/{ward['p1']}", headers={"Authorization": "Bearer not-a-token"}, timeout=30
    )
    assert r.status_code == 401
