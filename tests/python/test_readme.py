"""The README's quick start, run exactly as written.

Every command block of README.md's "Quick start" section (the indented code
blocks up to "## Commands") is extracted and run as a newcomer would, with bash,
one block after another, from one scratch working directory inside the checkout
(so `cargo run` finds the workspace, as it does from the clone's root; CI's
checkout is a fresh clone). The block that starts the server runs in the
background; the next blocks run while it serves. Two blocks are not run, and the
test says why: the one that is the suite itself (`./scripts/test.sh`), and the
sample of the server's own output (it is compared with what the server prints).

The scratch directory is under `target/` (git-ignored), so the demo's
`wardline-data` never lands in a developer's checkout. The port is the one the
README names (8080): if something else holds it, the test fails saying so.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 900  # a cold `cargo run` builds the workspace first
COMMAND_TIMEOUT_S = 900


def quick_start_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## Quick start")
    end = text.index("## Commands", start)
    blocks, current = [], []
    for line in text[start:end].splitlines():
        if line.startswith("    "):
            current.append(line[4:])
        elif current and line.strip() == "":
            current.append("")
        elif current:
            blocks.append("\n".join(current).strip("\n"))
            current = []
    if current:
        blocks.append("\n".join(current).strip("\n"))
    return blocks


def test_readme_blocks_are_what_this_test_expects():
    """The classification below must see every block: a new block that is
    neither run nor explicitly excluded fails here, not silently."""
    blocks = quick_start_blocks()
    assert any(is_serve(b) for b in blocks), blocks
    assert any(is_output(b) for b in blocks), blocks
    assert any(is_suite(b) for b in blocks), blocks
    assert sum(1 for b in blocks if runnable(b)) >= 2, blocks


def is_serve(block: str) -> bool:
    return block.startswith("cargo run") and " serve " in f"{block} "


def is_output(block: str) -> bool:
    return block.startswith("Wardline is running.")


def is_suite(block: str) -> bool:
    return block.strip() == "./scripts/test.sh"


def runnable(block: str) -> bool:
    return not (is_serve(block) or is_output(block) or is_suite(block))


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_quick_start_runs_as_written():
    blocks = quick_start_blocks()
    serve = [b for b in blocks if is_serve(b)]
    assert len(serve) == 1, f"one serve command expected in the quick start, found {serve}"
    expected_output = next(b for b in blocks if is_output(b))
    assert port_free(8080), "port 8080 (the README's) is in use: stop what holds it and run again"

    scratch_root = REPO / "target" / "readme-run"
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=scratch_root))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDLINE_")}
    server = subprocess.Popen(
        ["bash", "-c", serve[0]],
        cwd=scratch,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump():
        for line in server.stdout:
            lines.append(line.rstrip("\n"))
            if line.strip().startswith("Data "):
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert ready.wait(STARTUP_TIMEOUT_S), "the server printed no start-up lines in time"
        assert server.poll() is None, "the server stopped:\n" + "\n".join(lines[-40:])

        # The start-up lines are the README's sample, but for the data path.
        start = next(i for i, l in enumerate(lines) if l == "Wardline is running.")
        printed = lines[start : start + 4]
        sample = expected_output.splitlines()
        assert printed[:3] == sample[:3], (printed, sample)
        data_dir = scratch / "wardline-data"
        assert printed[3].split() == ["Data", f"{data_dir / 'wardline.db'}", "(SQLite)"], printed
        assert (data_dir / "wardline.db").is_file(), "the data directory is where the README says"

        # The workspace address answers (the sign-in page).
        ui = requests.get("http://127.0.0.1:8080/ui/", timeout=30)
        assert ui.status_code == 200 and "Sign in" in ui.text, ui.status_code

        # Every other block, in order, as written, in one directory.
        outputs = []
        for block in (b for b in blocks if runnable(b)):
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block],
                cwd=scratch,
                env=env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
            )
            assert done.returncode == 0, f"README block failed:\n{block}\n{done.stdout}\n{done.stderr}"
            outputs.append((block, done.stdout))

        # What those blocks say: a security code, then a FHIR search Bundle.
        code = next(o for b, o in outputs if " user code " in b)
        assert re.search(r"\b\d{6}\b", code), code
        found = next(o for b, o in outputs if "curl " in b)
        bundle = json.loads(found)
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset", found[:500]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        shutil.rmtree(scratch, ignore_errors=True)
