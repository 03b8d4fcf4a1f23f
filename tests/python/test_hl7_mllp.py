"""HL7 v2 over MLLP from a real external client: PyPI `hl7` (python-hl7).

The shared HL7 v2 test data (every message of every file under
`$WARDLINE_TESTDATA/hl7v2`, in sorted order) is sent to `wardline serve
--mllp-listen` with python-hl7's `MLLPClient`, in original acknowledgement
mode: a message whose MSH-15/MSH-16 ask for enhanced mode (some samples carry
`AL`/`NE` out of habit) has those two fields emptied in flight, so that every
message gets exactly the one reply this request/response client reads. Each
reply must be an ACK that python-hl7 parses, acknowledging that message's
control id. Enhanced mode itself is tested separately below with the
messages as they are (commit ACK `CA`, then the application ACK, as the
sender asks). Each message is
then read back over the FHIR API: its record (`Communication`, found by the
control id and compared byte for byte), and for an applied message its patient
and every resource it touched. Every FHIR response is validated against the R4
models by conftest's autouse fixture. The `mllp_send` command-line tool sends a
project-written feed and prints one AA per message.
"""

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import hl7
import pytest
import requests
from hl7.client import MLLPClient

from conftest import REPO, WardlineServer, free_port, require_backend

TESTDATA = Path(os.environ.get("WARDLINE_TESTDATA", REPO.parent / "shared" / "testdata"))
SHARED_HL7 = TESTDATA / "hl7v2"
BATCH = ("FHS", "BHS", "BTS", "FTS")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def mllp(request):
    require_backend(request.param)
    port = free_port()
    srv = WardlineServer(request.param, ["--mllp-listen", f"127.0.0.1:{port}"]).start()
    srv.mllp_port = port
    yield srv
    srv.stop()


def split_messages(data: bytes):
    """The messages of a file: segments from one MSH to the next (batch
    envelope segments dropped), joined with CR as MLLP senders do."""
    text = data.decode("utf-8", errors="surrogateescape")
    text = text.lstrip("\ufeff")
    current = []
    for line in re.split(r"\r\n|\r|\n", text):
        if not line.strip():
            continue
        if line.startswith("MSH"):
            if current:
                yield "\r".join(current) + "\r"
            current = [line]
        elif line[:3] in BATCH:
            if current:
                yield "\r".join(current) + "\r"
            current = []
        elif current:
            current.append(line)
    if current:
        yield "\r".join(current) + "\r"


def msh_fields(msg: str):
    first = msg.split("\r", 1)[0]
    sep = first[3] if len(first) > 3 else "|"
    return [""] + first.split(sep)  # fields[n] is MSH-n


def original_mode(msg: str) -> str:
    """`msg` with MSH-15 and MSH-16 emptied (original acknowledgement mode)."""
    first, _, rest = msg.partition("\r")
    sep = first[3] if len(first) > 3 else "|"
    parts = first.split(sep)  # parts[n - 1] is MSH-n (MSH-1 is the separator)
    for n in (15, 16):
        if len(parts) > n - 1:
            parts[n - 1] = ""
    return sep.join(parts) + "\r" + rest


def read_frames(sock, n: int) -> list:
    """`n` MLLP frames from `sock` (the socket has a timeout)."""
    buf, frames = b"", []
    while len(frames) < n:
        while b"\x1c\r" not in buf:
            chunk = sock.recv(65536)
            assert chunk, "the connection closed before the replies came"
            buf += chunk
        frame, buf = buf.split(b"\x1c\r", 1)
        frames.append(frame.lstrip(b"\x0b").decode("utf-8"))
    assert buf == b"", f"more than {n} replies: {buf!r}"
    return frames


def unframe(reply: bytes) -> str:
    return reply.strip(b"\x0b\x1c\r").decode("utf-8")


def session():
    s = requests.Session()
    s.trust_env = False
    return s


def record_of(http, base, ctrl: str, sent: str):
    """The inbound record of the message `sent` (by control id, then payload)."""
    r = http.get(f"{base}/Communication", params={"identifier": ctrl, "_count": "100"})
    assert r.status_code == 200, r.text
    for e in r.json().get("entry", []):
        res = e["resource"]
        payload = res.get("payload", [{}])[0].get("contentAttachment", {}).get("data")
        if payload and base64.b64decode(payload) == sent.encode("utf-8", errors="surrogateescape"):
            return res
    return None


def test_shared_messages_over_mllp_then_fhir(mllp):
    if not SHARED_HL7.is_dir():
        pytest.skip(f"SKIPPED: shared test data not found at {SHARED_HL7}")
    files = sorted(p for p in SHARED_HL7.rglob("*") if p.is_file())
    http = session()
    seen = set()
    counts = {"AA": 0, "AE": 0, "AR": 0, "checked": 0, "unreadable_msh": 0, "unmapped": 0}
    with MLLPClient("127.0.0.1", mllp.mllp_port) as client:
        client.socket.settimeout(60)  # a missing reply fails, never hangs
        for path in files:
            for msg in split_messages(path.read_bytes()):
                msg = original_mode(msg)
                f = msh_fields(msg)
                ctrl = f[10] if len(f) > 10 else ""
                reply = unframe(client.send_message(msg.encode("utf-8", errors="surrogateescape")))
                ack = hl7.parse(reply)  # python-hl7 must read our ACK
                msa = ack.segment("MSA")
                code = str(msa[1])
                assert code in ("AA", "AE", "AR"), f"{path.name} {ctrl}: {reply!r}"
                counts[code] += 1
                if ctrl and code == "AR" and str(msa[2]) == "":
                    # The MSH itself is unreadable (e.g. bad encoding
                    # characters): refused without knowing its control id.
                    counts["unreadable_msh"] += 1
                    continue
                if ctrl:
                    assert str(msa[2]) == ctrl, f"{path.name}: ACK names {msa[2]} not {ctrl}"
                if code != "AA":
                    assert "ERR" in reply or "|" in str(msa), reply
                if code == "AR" and re.search(r"MSH\^1\^9(\^20[01]&|\|20[01]\^)", reply):
                    # A type or event Wardline does not map: refused, never AA,
                    # and kept for reprocessing (the record below is checked).
                    counts["unmapped"] += 1
                key = (f[3] if len(f) > 3 else "", f[4] if len(f) > 4 else "", ctrl)
                if not ctrl or key in seen:
                    continue
                seen.add(key)
                rec = record_of(http, mllp.base, ctrl, msg)
                assert rec is not None, f"{path.name} {ctrl}: no record of the message"
                expected = {"AA": ("completed", "on-hold"), "AE": ("not-done",), "AR": ("not-done",)}[code]
                assert rec["status"] in expected, f"{path.name} {ctrl}: {rec['status']} after {code}"
                if rec["status"] == "completed":
                    for ref in [rec.get("subject")] + rec.get("about", []):
                        if ref:
                            got = http.get(f"{mllp.base}/{ref['reference']}")
                            assert got.status_code == 200, f"{path.name} {ctrl}: {ref} -> {got.status_code}"
                    counts["checked"] += 1
    print(f"shared HL7 v2 over MLLP: {counts}")
    total = counts["AA"] + counts["AE"] + counts["AR"]
    assert total >= 500, counts
    # Nearly everything Wardline maps is accepted; the rest is refused with a
    # reason, never dropped, and no unmapped message is acknowledged AA.
    assert counts["AA"] >= 0.9 * (total - counts["unmapped"]), counts
    assert 0 < counts["unmapped"] <= 0.1 * total, counts
    assert counts["checked"] >= 400, counts
    assert counts["unreadable_msh"] <= 5, counts


def test_enhanced_mode_messages_get_the_acks_they_ask_for(mllp):
    """Shared messages asking for enhanced mode, sent as they are: `AL` in
    MSH-15 gets the commit ACK `CA` after the commit, and `AL` in MSH-16 the
    application ACK after it, on the same connection; `NE` gets none."""
    if not SHARED_HL7.is_dir():
        pytest.skip(f"SKIPPED: shared test data not found at {SHARED_HL7}")
    wanted = {}
    for path in sorted(p for p in SHARED_HL7.rglob("*") if p.is_file()):
        for msg in split_messages(path.read_bytes()):
            f = msh_fields(msg)
            accept = f[15] if len(f) > 15 else ""
            app = f[16] if len(f) > 16 else ""
            # Conditions whose reply count does not depend on the outcome.
            if accept in ("AL", "NE") and app in ("AL", "NE") and (accept, app) != ("NE", "NE"):
                wanted.setdefault((accept, app), msg)
    if not wanted:
        pytest.skip("SKIPPED: no shared message asks for enhanced mode")
    with MLLPClient("127.0.0.1", mllp.mllp_port) as client:
        client.socket.settimeout(60)
        for (accept, app), msg in sorted(wanted.items()):
            ctrl = msh_fields(msg)[10]
            client.socket.sendall(b"\x0b" + msg.encode("utf-8", errors="surrogateescape") + b"\x1c\r")
            frames = read_frames(client.socket, (accept == "AL") + (app == "AL"))
            codes = [str(hl7.parse(fr).segment("MSA")[1]) for fr in frames]
            if accept == "AL":
                assert codes[0] in ("CA", "CE", "CR"), f"{ctrl} {accept}/{app}: {codes}"
            if app == "AL":
                assert codes[-1] in ("AA", "AE", "AR"), f"{ctrl} {accept}/{app}: {codes}"
            for fr in frames:
                assert str(hl7.parse(fr).segment("MSA")[2]) == ctrl, fr
    print(f"enhanced mode: {sorted(wanted)}")


def test_mllp_send_command(mllp, tmp_path):
    feed = tmp_path / "feed.hl7"
    msgs = []
    for i, nhs in enumerate(["9434765919", "9434765870"]):
        msgs.append(
            f"MSH|^~\\&|PYPAS|RWG|WARDLINE|RWG|20261123090000||ADT^A28^ADT_A05|PY{i}|P|2.4\r"
            f"EVN|A28|20261123090000\r"
            f"PID|1||{nhs}^^^NHS^NH||PYTHON^MONTY||19691005|M\r"
        )
    # mllp_send reads MLLP-framed input.
    feed.write_bytes(b"".join(b"\x0b" + m.encode() + b"\x1c\r" for m in msgs))
    exe = Path(sys.executable).parent / "mllp_send"
    out = subprocess.run(
        [str(exe), "--file", str(feed), "--port", str(mllp.mllp_port), "127.0.0.1"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout.decode()
    assert out.count("MSA|AA|PY") == 2, out
    http = session()
    for nhs in ["9434765919", "9434765870"]:
        r = http.get(f"{mllp.base}/Patient", params={"identifier": f"https://fhir.nhs.uk/Id/nhs-number|{nhs}"})
        assert r.status_code == 200
        names = [e["resource"]["name"][0]["family"] for e in r.json().get("entry", [])]
        assert names == ["PYTHON"], names
