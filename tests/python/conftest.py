"""Fixtures for the external-client tests.

Each test module gets a real `wardline serve --demo` (binary from env
`WARDLINE_BIN`) on 127.0.0.1 with a free port: once on SQLite in a temporary
data directory, and once on a fresh PostgreSQL database when
`WARDLINE_TEST_PG_URL` is set (skipped otherwise, unless `WARDLINE_REQUIRE_PG`
is set, as `scripts/test.sh` does: then a missing database fails the test).

Every HTTP response the tests receive from the server, through any client
library (fhirclient and fhirpy both use `requests`), is checked by
`validate_response`: a JSON body must be a FHIR R4 resource that the
`fhir.resources` R4 models accept (Bundles are validated with all their entries).
"""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import requests
from fhir.resources import __fhir_version__ as MODEL_FHIR_VERSION
from fhir.resources import construct_fhir_element

REPO = Path(__file__).resolve().parents[2]
# The server is on loopback: never send its traffic through a proxy from the environment.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(x for x in ("127.0.0.1", "localhost", os.environ.get(_var)) if x)
STARTUP_TIMEOUT_S = 300

assert MODEL_FHIR_VERSION == "4.0.1", (
    f"fhir.resources models are FHIR {MODEL_FHIR_VERSION}, not R4 4.0.1: "
    "install tests/python/requirements.txt"
)


def wardline_bin() -> str:
    path = os.environ.get("WARDLINE_BIN")
    if path:
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"WARDLINE_BIN={path} is not an executable")
        return path
    for profile in ("release", "debug"):
        candidate = REPO / "target" / profile / "wardline"
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("set WARDLINE_BIN to the wardline binary (cargo build -p wardline)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_dbname(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


# Bearer tokens of the running test servers, by "http://127.0.0.1:PORT": every
# request to one of them carries its token unless the test set its own
# Authorization header (the suites are about FHIR, not sign-in; the access
# tests build their own tokens).
TOKENS: dict = {}

TEST_CLIENT_SCOPE = "system/*.cruds"


class WardlineServer:
    def __init__(self, backend: str, extra_args=()):
        self.backend = backend
        self.extra_args = list(extra_args)
        self.tmp = tempfile.TemporaryDirectory(prefix="wardline-py-")
        self.db_name = None
        self.admin_url = None
        self.proc = None
        self.port = None
        self.log_path = Path(self.tmp.name) / "server.log"

    def start(self):
        args = [wardline_bin(), "serve", "--demo", "--data-dir", str(Path(self.tmp.name) / "data")]
        if self.backend == "postgres":
            self.admin_url = os.environ["WARDLINE_TEST_PG_URL"]
            self.db_name = "wl_py_" + uuid.uuid4().hex
            subprocess.run(
                ["psql", self.admin_url, "-v", "ON_ERROR_STOP=1", "-qc", f"CREATE DATABASE {self.db_name}"],
                check=True,
            )
            args += ["--database", with_dbname(self.admin_url, self.db_name)]
        last = ""
        for _attempt in range(3):
            self.port = free_port()
            env = dict(os.environ)
            env.setdefault("RUST_LOG", "warn")
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    args + ["--listen", f"127.0.0.1:{self.port}"] + self.extra_args,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                )
            ok, last = self._wait_healthy()
            if ok:
                self.token = self.mint_token()
                TOKENS[self.root] = self.token
                return self
            self.kill()
        raise RuntimeError(f"wardline serve --demo did not start ({self.backend}): {last}\n{self.log_tail()}")

    def store_args(self):
        args = ["--data-dir", str(Path(self.tmp.name) / "data")]
        if self.db_name:
            args += ["--database", with_dbname(self.admin_url, self.db_name)]
        return args

    def cli(self, *args, input_text=None, env_extra=None):
        """Run a `wardline` operator command on this server's store; its stdout."""
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        env.update(env_extra or {})
        out = subprocess.run(
            [wardline_bin(), *args, *self.store_args()],
            input=input_text, capture_output=True, text=True, env=env, timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"wardline {' '.join(args)} failed: {out.stderr}")
        return out.stdout

    def put(self, path, body):
        """PUT a resource with the suite's token; asserts it was stored."""
        r = requests.put(
            f"{self.base}/{path}",
            json=body,
            headers={"Content-Type": "application/fhir+json", "Authorization": f"Bearer {self.token}"},
            timeout=60,
        )
        assert r.status_code in (200, 201), f"PUT {path}: {r.status_code} {r.text}"
        return r

    def mint_token(self, scope=TEST_CLIENT_SCOPE) -> str:
        try:
            self.cli("client", "add", "wardline-py-tests", "--name", "Python test suite", "--scope", TEST_CLIENT_SCOPE)
        except RuntimeError as e:
            if "already" not in str(e):
                raise
        return self.cli("token", "--client", "wardline-py-tests", "--scope", scope, "--minutes", "600").strip()

    def _wait_healthy(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        session = requests.Session()
        session.trust_env = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, f"exited with {self.proc.returncode}"
            try:
                if session.get(f"{self.root}/healthz", timeout=5).ok:
                    return True, ""
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return False, "no healthy /healthz in time"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        return f"{self.root}/fhir"

    def log_tail(self, n=4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        TOKENS.pop(self.root, None)
        self.kill()
        if self.db_name:
            subprocess.run(
                ["psql", self.admin_url, "-qc", f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)"],
                check=False,
            )
        self.tmp.cleanup()


def require_backend(backend):
    """Skips a PostgreSQL variant when no test database is given, or fails it
    when one is required (`WARDLINE_REQUIRE_PG`, set by scripts/test.sh)."""
    if backend != "postgres" or os.environ.get("WARDLINE_TEST_PG_URL", "").strip():
        return
    if os.environ.get("WARDLINE_REQUIRE_PG", "").strip() not in ("", "0"):
        pytest.fail("WARDLINE_REQUIRE_PG is set but WARDLINE_TEST_PG_URL is not: PostgreSQL is missing")
    pytest.skip("WARDLINE_TEST_PG_URL not set")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request):
    require_backend(request.param)
    srv = WardlineServer(request.param).start()
    yield srv
    srv.stop()


# --- validation of every response ------------------------------------------------

class Validation:
    def __init__(self):
        self.validated = 0
        self.errors = []


def validate_resource(res: dict) -> None:
    """Raise if `res` is not a valid FHIR R4 resource per the fhir.resources models."""
    rtype = res.get("resourceType")
    if not isinstance(rtype, str):
        raise ValueError(f"no resourceType: {json.dumps(res)[:300]}")
    construct_fhir_element(rtype, res)


@pytest.fixture(autouse=True)
def validate_responses(monkeypatch):
    """Validate every JSON body the Wardline server sends back, whichever client asked."""
    state = Validation()
    original_send = requests.Session.send

    def send(self, request, **kwargs):
        url = request.url or ""
        for root, token in TOKENS.items():
            if url.startswith(root + "/") and "Authorization" not in request.headers:
                request.headers["Authorization"] = f"Bearer {token}"
        response = original_send(self, request, **kwargs)
        url = request.url or ""
        # FHIR responses only: the SMART discovery document under /fhir is OAuth JSON.
        is_fhir = "/fhir" in url and "/.well-known/" not in url
        if is_fhir and url.startswith("http://127.0.0.1:") and response.content:
            ctype = response.headers.get("Content-Type", "")
            where = f"{request.method} {url} -> {response.status_code}"
            if "json" not in ctype:
                state.errors.append(f"{where}: Content-Type {ctype!r} is not JSON")
            else:
                try:
                    validate_resource(response.json())
                    state.validated += 1
                except Exception as e:  # noqa: BLE001 - any failure is a finding
                    state.errors.append(f"{where}: {type(e).__name__}: {str(e)[:2000]}")
        return response

    monkeypatch.setattr(requests.Session, "send", send)
    yield state
    assert not state.errors, "server responses that are not valid FHIR R4:\n" + "\n".join(state.errors[:20])


# --- NHS numbers -----------------------------------------------------------------

def nhs_check_digit(first9: str):
    total = sum(int(d) * w for d, w in zip(first9, range(10, 1, -1)))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def is_valid_nhs_number(value: str) -> bool:
    if len(value) != 10 or not value.isdigit():
        return False
    return nhs_check_digit(value[:9]) == int(value[9])


def new_nhs_number() -> str:
    """A fresh, valid NHS number in the synthetic 999 range."""
    while True:
        first9 = "999" + f"{uuid.uuid4().int % 10**6:06d}"
        check = nhs_check_digit(first9)
        if check is not None:
            return first9 + str(check)
