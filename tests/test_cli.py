"""The teleread command as an administrator and `make run` use it, in real subprocesses."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

import hl7
import pydicom
import pytest

from service.runtime.orthanc.auth import basic_auth_header

from .conftest import free_port

TELEREAD = str(Path(sys.executable).with_name("teleread"))


@pytest.fixture
def env(tmp_path):
    """A private data dir and free ports, so nothing collides with a real deployment."""
    return {
        **os.environ,
        "TELEREAD_DATA_DIR": str(tmp_path / "var"),
        "TELEREAD_PORT": str(free_port()),
        "TELEREAD_ORTHANC_HTTP_PORT": str(free_port()),
        "TELEREAD_ORTHANC_DICOM_PORT": str(free_port()),
        "TELEREAD_STABLE_AGE": "1",
    }


def teleread(env, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TELEREAD, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_facility_add_prints_the_new_id_and_refuses_a_taken_aet(env):
    """Ids are printed for scripts; a duplicate AE title is an error with a reason."""
    first = teleread(
        env, "facility", "add", "--name", "Dongxiang", "--kind", "township", "--aet", "DONGXIANG_DR"
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "1"
    second = teleread(
        env, "facility", "add", "--name", "Other", "--kind", "county", "--aet", "DONGXIANG_DR"
    )
    assert second.returncode == 1
    assert "DONGXIANG_DR" in second.stderr and "already registered" in second.stderr
    listed = [json.loads(line) for line in teleread(env, "facility", "list").stdout.splitlines()]
    assert [(f["id"], f["aet"], f["kind"]) for f in listed] == [(1, "DONGXIANG_DR", "township")]


def test_facility_add_refuses_bad_kinds_and_aets(env):
    """Kinds are township, county or regional; AE titles at most 16 characters."""
    kind = teleread(env, "facility", "add", "--name", "X", "--kind", "village", "--aet", "X")
    assert kind.returncode == 2
    aet = teleread(env, "facility", "add", "--name", "X", "--kind", "county", "--aet", "A" * 17)
    assert aet.returncode == 1 and "AE title" in aet.stderr


def test_user_add_reads_the_password_from_stdin_and_stores_only_a_hash(env, tmp_path):
    """The password never appears in argv or the database."""
    teleread(env, "facility", "add", "--name", "Centre", "--kind", "regional", "--aet", "CENTRE")
    result = teleread(
        env,
        "user",
        "add",
        "dr.li",
        "--role",
        "specialist",
        "--facility",
        "1",
        "--password-stdin",
        stdin="s3cret-passw0rd\n",
    )
    assert result.returncode == 0, result.stderr
    database = (tmp_path / "var" / "teleread.db").read_bytes()
    assert b"s3cret-passw0rd" not in database
    assert b"$argon2id$" in database
    missing = teleread(
        env,
        "user",
        "add",
        "x",
        "--role",
        "specialist",
        "--facility",
        "9",
        "--password-stdin",
        stdin="another-password\n",
    )
    assert missing.returncode == 1 and "facility 9" in missing.stderr
    short = teleread(
        env,
        "user",
        "add",
        "y",
        "--role",
        "admin",
        "--facility",
        "1",
        "--password-stdin",
        stdin="short\n",
    )
    assert short.returncode == 1 and "at least" in short.stderr


def read_until(
    process: subprocess.Popen, marker: str, timeout: float = 60, errors: IO[str] | None = None
) -> str:
    """Read the child's stdout until a line contains marker; a failure shows what it wrote to
    the ``errors`` file too, when its stderr goes to one (a service that exits says why there)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    written = ""
    if errors is not None:
        errors.seek(0)
        written = f"\nstderr:\n{errors.read()}"
    raise AssertionError(f"{marker!r} never printed; output:\n{''.join(seen)}{written}")


def api(port: str, path: str, token: str | None = None, body: dict | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        headers=headers,
        data=json.dumps(body).encode() if body is not None else None,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


EVERY_STATUS = "&".join(
    f"status={s}"
    for s in ("awaiting_images", "awaiting_request", "ready", "signed", "closed", "cancelled")
)


def wait_for_worklist(port: str, token: str, count: int, timeout: float = 60) -> list[dict]:
    """Every consultation with its images (open or signed), once there are ``count``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = api(port, f"/api/worklist?{EVERY_STATUS}", token)["items"]
        received = [i for i in items if i["received_at"]]
        if len(received) >= count:
            return received
        time.sleep(0.5)
    raise AssertionError(f"worklist never reached {count} items with images")


def demo_worklist(env, aet: str, timeout: float = 30) -> list[pydicom.Dataset]:
    """The demo's modality worklist as dcmtk's findscu shows it to ``aet`` (once not empty)."""
    answers = Path(env["TELEREAD_DATA_DIR"]) / f"findscu-{aet}"
    answers.mkdir()
    deadline = time.monotonic() + timeout
    while True:
        found = subprocess.run(
            ["findscu", "-W", "-aet", aet, "-aec", "TELEREAD", "-X", "-od", str(answers)]
            + ["-k", "PatientName", "-k", "AccessionNumber"]
            + ["127.0.0.1", env["TELEREAD_ORTHANC_DICOM_PORT"]],
            capture_output=True,
            text=True,
            timeout=30,
        )
        items = [pydicom.dcmread(path) for path in sorted(answers.glob("rsp*.dcm"))]
        if items or time.monotonic() > deadline:
            assert found.returncode == 0, found.stderr
            return items
        time.sleep(0.5)


def serve(env) -> subprocess.Popen:
    return subprocess.Popen(
        [TELEREAD, "serve", "--demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def demo_his_result(inbox: Path, timeout: float = 90) -> hl7.Message:
    """The first message the demo's county HIS received, parsed (it keeps one file each)."""
    deadline = time.monotonic() + timeout
    while not (files := sorted(inbox.glob("*.hl7")) if inbox.exists() else []):
        assert time.monotonic() < deadline, "the county HIS never received its result"
        time.sleep(0.5)
    return hl7.parse(files[0].read_text(encoding="utf-8").replace("\n", "\r"))


def stop(process: subprocess.Popen) -> int:
    """Ctrl-C, as a user at the terminal."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    finally:
        process.stdout.close()


def orthanc_pid(env) -> int:
    return int((Path(env["TELEREAD_DATA_DIR"]) / "orthanc" / "orthanc.pid").read_text())


@pytest.mark.orthanc  # `teleread serve`/`demo` run a managed Orthanc
def test_serve_demo_seeds_prints_logins_stops_cleanly_and_keeps_data(env):
    """`make run`'s command: demo studies go by C-STORE to the worklist; Ctrl-C stops Orthanc
    too; a second start keeps everything and seeds nothing twice."""
    port = env["TELEREAD_PORT"]
    env = {**env, "TELEREAD_HL7_PORT": str(free_port())}  # as `make run` sets it
    process = serve(env)
    try:
        banner = read_until(process, "Press Ctrl-C")
        assert f"http://127.0.0.1:{port}/" in banner
        assert "dr.li" in banner and "teleread-demo" in banner
        token = api(port, "/api/login", body={"username": "dr.li", "password": "teleread-demo"})[
            "token"
        ]
        items = wait_for_worklist(port, token, 6)
        assert {i["facility"] for i in items} >= {
            "County People's Hospital",
            "Xiping Township Health Centre",
        }
        assert any(i["priority"] == "stat" and i["status"] == "ready" for i in items)
        assert "王建国" in {i["patient_name"] for i in items}
        # Dr Li's demo report on Dongxiang's chest film reaches Dr Chen's portal, signed.
        chen = api(port, "/api/login", body={"username": "chen", "password": "teleread-demo"})
        deadline = time.monotonic() + 60
        while not (reports := api(port, "/api/portal/reports", chen["token"])["items"]):
            assert time.monotonic() < deadline, "the demo report was never signed"
            time.sleep(0.5)
        assert reports[0]["signer_name"] == "Dr Li" and reports[0]["patient_name"] == "张伟"
        # The county HIS ordered its MR by HL7 and gets Dr Li's signed result back: an ORU^R01
        # with the report's PDF, kept by the demo's HIS receiver (docs/integration.md).
        result = demo_his_result(Path(env["TELEREAD_DATA_DIR"]) / "demo-his")
        assert str(result.segment("OBR")(2)) == "HIS-ORD-8820"
        assert str(result.segment("OBR")(25)) == "F"
        [pdf] = [obx for obx in result.segments("OBX") if str(obx(2)) == "ED"]
        assert base64.b64decode(str(pdf(5)).split("^")[4]).startswith(b"%PDF")
        # Xiping's CT finds the request filed for a patient on the way (docs/integration.md).
        scheduled = demo_worklist(env, "XIPING_CT")
        assert [(i.AccessionNumber, str(i.PatientName)) for i in scheduled] == [
            ("XP24118", "孙^丽")
        ]

        # The demo runs with repeat-exam windows: Dongxiang asking for another chest film of
        # 张伟 (README's walk-through) is stopped before anything is filed, naming the first.
        wang = api(port, "/api/login", body={"username": "wang", "password": "teleread-demo"})
        repeat = {
            "accession_number": "DX24901",
            "patient_id": "DX0001",
            "modality": "CR",
            "body_part": "CHEST",
        }
        with pytest.raises(urllib.error.HTTPError) as refused:
            api(port, "/api/consultations", wang["token"], body=repeat)
        answer = json.loads(refused.value.read())
        assert refused.value.code == 409 and answer["error"] == "repeat_exam", answer
        assert answer["window_days"] == 30
        assert answer["matches"][0]["facility_name"] == "Dongxiang Township Health Centre"

        added = teleread(
            env, "facility", "add", "--name", "Beishan", "--kind", "township", "--aet", "BEISHAN_DR"
        )
        assert added.returncode == 0 and "registered AE title" in added.stderr
        credentials = json.loads(
            (Path(env["TELEREAD_DATA_DIR"]) / "orthanc" / "credentials.json").read_text()
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{env['TELEREAD_ORTHANC_HTTP_PORT']}/modalities",
            headers=basic_auth_header(credentials["username"], credentials["password"]),
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert {"BEISHAN_DR", "COUNTY_CT"} <= set(json.loads(response.read()))
        child = orthanc_pid(env)
    finally:
        code = stop(process)
    assert code == 0
    assert not Path(f"/proc/{child}").exists(), "Orthanc outlived the service"

    again = serve(env)
    try:
        read_until(again, "Press Ctrl-C")
        token = api(port, "/api/login", body={"username": "dr.li", "password": "teleread-demo"})[
            "token"
        ]
        time.sleep(1.5)
        items = api(port, f"/api/worklist?{EVERY_STATUS}", token)["items"]
        assert len(items) == 7  # the six studies and the request awaiting its images
        assert sum(i["status"] == "signed" for i in items) == 2  # signed once, not again
        assert len(list((Path(env["TELEREAD_DATA_DIR"]) / "demo-his").iterdir())) == 1
    finally:
        assert stop(again) == 0


@pytest.mark.orthanc  # `teleread serve`/`demo` run a managed Orthanc
def test_demo_seeds_accounts_and_studies_then_exits(env, tmp_path):
    """`teleread demo` runs the real path (C-STORE, change feed) and leaves nothing running."""
    result = teleread(env, "demo")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "demo data seeded" in result.stdout
    import sqlite3

    with sqlite3.connect(tmp_path / "var" / "teleread.db") as db:
        consultations = db.execute(
            "SELECT COUNT(*) FROM consultations WHERE received_at IS NOT NULL"
        ).fetchone()[0]
        users = db.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    db.close()
    assert consultations == 6
    assert users >= 8
    assert not (tmp_path / "var" / "orthanc" / "orthanc.pid").exists()
