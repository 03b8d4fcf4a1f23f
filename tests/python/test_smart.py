"""SMART on FHIR driven by real clients.

* An app launch: PyPI `fhirclient` builds the authorization URL (with PKCE and
  `launch/patient`), a user signs in on Wardline's own form (password, TOTP
  code, position and patient), and `fhirclient.handle_callback` exchanges the
  code for a token. The app then reads its patient and is refused another.
* A backend service: a client assertion signed with ES384 by PyJWT
  (`private_key_jwt`), exchanged for a system token at the token endpoint.

The server's side of both flows is tested in depth by
crates/wardline-http/tests/smart.rs; this shows that standard clients work.
"""

import html.parser
import json
import time
import urllib.parse
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from fhirclient import client, server as fhirserver
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient

from conftest import new_nhs_number

PASSWORD = "correct horse battery staple 9"
REDIRECT = "http://127.0.0.1:9/smart-callback"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


class Form(html.parser.HTMLParser):
    """The fields of the first <form> on a page: hidden inputs, the checked
    radio, and the form's action."""

    def __init__(self, text):
        super().__init__()
        self.action = None
        self.fields = {}
        self.inputs = set()
        self._in_form = False
        self._done = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self._done:
            return
        if tag == "form":
            self._in_form = True
            self.action = a.get("action")
        elif tag == "input" and self._in_form:
            name = a.get("name")
            if not name:
                return
            self.inputs.add(name)
            kind = a.get("type", "text")
            if kind == "hidden" or (kind == "radio" and "checked" in a):
                self.fields[name] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form" and self._in_form:
            self._in_form = False
            self._done = True


@pytest.fixture(scope="module")
def world(server):
    """A consultant on watford-w1; P1 (with an NHS number) in a bed there and
    P2 elsewhere; a registered app and a registered backend service."""
    tag = uuid.uuid4().hex[:8]
    p1, p2 = f"py-smart-{tag}-1", f"py-smart-{tag}-2"
    nhs = new_nhs_number()
    for pid in (p1, p2):
        body = {
            "resourceType": "Patient", "id": pid, "active": True,
            "name": [{"family": f"Pysmart{tag}", "given": ["Test"]}], "gender": "unknown",
        }
        if pid == p1:
            body["identifier"] = [{"system": NHS_SYSTEM, "value": nhs}]
        server.put(f"Patient/{pid}", body)
        server.put(f"Observation/{pid}-obs", {
            "resourceType": "Observation", "id": f"{pid}-obs", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
        })
    server.put(f"Encounter/{p1}-enc", {
        "resourceType": "Encounter", "id": f"{p1}-enc", "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": f"Patient/{p1}"},
        "location": [{"location": {"reference": "Location/watford-w1-b1-1"}}],
    })
    user = f"py.smart.{tag}"
    server.cli("user", "add", user, "--name", "Py Smart Consultant", env_extra={"WARDLINE_NEW_PASSWORD": PASSWORD})
    server.cli("user", "grant", user, "--role", "consultant", "--location", "watford-w1")
    app_id = f"py-app-{tag}"
    server.cli(
        "client", "add", app_id, "--name", "Python SMART app",
        "--scope", "launch/patient openid fhirUser patient/*.rs",
        "--redirect-uri", REDIRECT,
    )
    return {"p1": p1, "p2": p2, "nhs": nhs, "user": user, "app_id": app_id, "tag": tag}


def sign_in(server, session, url, user, nhs, password=PASSWORD):
    """A person at the browser: open the authorization URL, sign in, choose
    the patient. Returns the final response (a redirect back to the app, or
    the page that refused)."""
    r = session.get(url, allow_redirects=False, timeout=30)
    assert r.status_code == 200, f"authorize page: {r.status_code} {r.text[:500]}"
    form = Form(r.text)
    assert {"username", "password", "code"} <= form.inputs, form.inputs
    action = urllib.parse.urljoin(server.root, form.action)
    fields = dict(form.fields, username=user, password=password,
                  code=server.cli("user", "code", user).strip(), action="sign-in")
    r = session.post(action, data=fields, allow_redirects=False, timeout=30)
    if r.status_code != 200:
        return r
    form = Form(r.text)
    assert "patient" in form.inputs, f"expected the patient chooser: {r.text[:800]}"
    fields = dict(form.fields, patient=nhs, action="continue")
    return session.post(action, data=fields, allow_redirects=False, timeout=30)


def smart_client(server, world, state=None):
    settings = {
        "app_id": world["app_id"],
        "api_base": server.base,
        "redirect_uri": REDIRECT,
        "scope": "openid fhirUser patient/*.rs",
    }
    return client.FHIRClient(settings=settings, state=state)


def test_app_launch_with_fhirclient(server, world):
    app = smart_client(server, world)
    assert not app.ready
    url = app.authorize_url
    assert url.startswith(server.root + "/auth/authorize?"), url
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query["code_challenge_method"] == "S256" and "launch/patient" in query["scope"]

    browser = requests.Session()
    browser.trust_env = False
    done = sign_in(server, browser, url, world["user"], world["nhs"])
    assert done.status_code in (302, 303), f"{done.status_code} {done.text[:500]}"
    callback = done.headers["Location"]
    assert callback.startswith(REDIRECT + "?"), callback

    app.handle_callback(callback)
    assert app.ready
    assert app.patient_id == world["p1"]
    token = app.server.auth.access_token
    assert token and token != server.token

    # The app's own token, not the suite's: fhirclient sets the header itself.
    p = app.patient
    assert p.id == world["p1"]
    obs = Observation.where(struct={"patient": world["p1"]}).perform_resources(app.server)
    assert [o.id for o in obs] == [f"{world['p1']}-obs"]
    with pytest.raises(fhirserver.FHIRPermissionDeniedException) as e:
        Patient.read(world["p2"], app.server)
    assert e.value.response.status_code == 403

    # The state survives a round trip (what a web app keeps in its session).
    again = smart_client(server, world, state=json.loads(json.dumps(app.state)))
    assert again.ready and again.patient_id == world["p1"]

    # A code works once.
    with pytest.raises(Exception):
        smart_client(server, world, state=None).handle_callback(callback)


def test_wrong_password_gets_no_code(server, world):
    app = smart_client(server, world)
    browser = requests.Session()
    browser.trust_env = False
    r = sign_in(server, browser, app.authorize_url, world["user"], world["nhs"], password="not the password")
    assert r.status_code == 401
    assert "Location" not in r.headers
    assert "Sign in" in r.text


def test_backend_service_with_pyjwt(server, world, tmp_path):
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    kid = f"py-{world['tag']}"
    jwk.update({"kid": kid, "alg": "ES384", "use": "sig"})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    client_id = f"py-backend-{world['tag']}"
    server.cli("client", "add", client_id, "--name", "Python backend", "--scope", "system/Patient.rs",
               "--jwks-file", str(jwks))

    conf = requests.get(f"{server.base}/.well-known/smart-configuration", timeout=30).json()
    token_url = conf["token_endpoint"]
    assert "private_key_jwt" in conf["token_endpoint_auth_methods_supported"]

    def assertion():
        now = int(time.time())
        return jwt.encode(
            {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 240, "jti": uuid.uuid4().hex},
            key, algorithm="ES384", headers={"kid": kid, "typ": "JWT"},
        )

    def exchange(signed, scope="system/Patient.rs"):
        return requests.post(token_url, data={
            "grant_type": "client_credentials", "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": signed,
        }, timeout=30)

    signed = assertion()
    r = exchange(signed)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"].lower() == "bearer" and body["scope"] == "system/Patient.rs"

    svc = client.FHIRClient(settings={"app_id": client_id, "api_base": server.base + "/"})
    svc.server.session.headers["Authorization"] = f"Bearer {body['access_token']}"
    assert Patient.read(world["p2"], svc.server).id == world["p2"]
    with pytest.raises(fhirserver.FHIRPermissionDeniedException):
        Observation.read(f"{world['p2']}-obs", svc.server)

    # The same assertion again is a replay; another key's signature is refused.
    replay = exchange(signed)
    assert replay.status_code in (400, 401) and replay.json()["error"] == "invalid_client"
    stranger = jwt.encode(
        {"iss": client_id, "sub": client_id, "aud": token_url, "exp": int(time.time()) + 240,
         "jti": uuid.uuid4().hex},
        ec.generate_private_key(ec.SECP384R1()), algorithm="ES384", headers={"kid": kid},
    )
    assert exchange(stranger).status_code in (400, 401)
