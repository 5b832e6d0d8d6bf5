"""Reproducer: pynetdicom's association reactor takes a C-STORE response meant for the sender.

Run from the repository root::

    .venv/bin/python bench/pynetdicom_race.py                 # raw pynetdicom, provoked
    .venv/bin/python bench/pynetdicom_race.py --natural --burners 2 --associations 200
    .venv/bin/python bench/pynetdicom_race.py --teleread      # service.dicom.send, provoked

The symptom (``make test`` on a busy machine): pynetdicom logs "Received unexpected C-STORE
service message", then the sender waits for the DIMSE timeout and aborts the association.

The cause (pynetdicom 3.0.4, ``association.py``). Every ``send_c_store`` pauses the
association's reactor thread so that only the sender reads the DIMSE message queue::

    sender                                   reactor (loop)
    checkpoint.clear()                       _is_paused = True
    while not _is_paused: sleep(0.0001)      checkpoint.wait()
    dimse.send_msg(C-STORE-RQ)               _is_paused = False
    dimse.get_msg(block=True)                dimse.get_msg(block=False) -> _serve_request(msg)
    checkpoint.set()

``_is_paused`` says the reactor *reached* ``wait()``, not that it is still blocked there. When
one C-STORE ends (``set()``) and the next begins (``clear()``) before the woken reactor thread
has run again, the sender sees the stale ``_is_paused = True`` and sends; the reactor then
returns from ``wait()`` (it was notified), takes the response off the queue and drops it
("unexpected ... service message": a response is no valid request). The same happens when a
thread switch falls between the reactor's ``wait()`` returning and ``_is_paused = False``. The
window is a few bytecodes wide unless the reactor thread is descheduled, i.e. when the cores are
busy, and it only matters when the peer answers before the reactor runs again (Orthanc and
storescp answer small instances within a millisecond on loopback).

Modes:

* default (provoked): once per association, the reactor's checkpoint returns from ``wait()``
  only after the next response has arrived, and that response is queued without waking the
  sender: the scheduling a busy machine produces by chance, made certain
  (``tests/pynetdicom_race.py``). Raw pynetdicom loses that response, waits for the DIMSE
  timeout and aborts the association with the rest unsent.
* ``--natural``: nothing patched; ``--burners`` processes spin on the cores meanwhile. Losses
  are rare and depend on the machine's load.
* ``--teleread``: the same sends through :func:`service.dicom.send.send_datasets`, which hands a
  response the reactor took back to the sender (and re-sends on a fresh association whatever a
  lost association left unsent).

The peer is dcmtk's ``storescp`` (a separate process, answering fast, storing nothing). Figures
are printed, never asserted.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.demo.synthetic import StudySpec, make_study  # noqa: E402
from service.dicom.send import StoreError, send_datasets  # noqa: E402
from tests.pynetdicom_race import provoked_reactor  # noqa: E402

PEER_AET = "STORESCP"


class Counter(logging.Handler):
    """Counts pynetdicom's "Received unexpected ... service message" warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.unexpected = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Received unexpected" in record.getMessage():
            self.unexpected += 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def storescp(directory: Path) -> Iterator[int]:
    """dcmtk's storescp on a free port, ignoring what it receives (answers at once)."""
    port = free_port()
    process = subprocess.Popen(
        ["storescp", "--ignore", "-aet", PEER_AET, "-od", str(directory), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        yield port
    finally:
        process.terminate()
        process.wait()


@contextmanager
def burners(count: int) -> Iterator[None]:
    """``count`` processes spinning on the cores."""
    spinning = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for process in spinning:
            process.kill()
            process.wait()


@contextmanager
def spinners(count: int) -> Iterator[None]:
    """``count`` threads of this process spinning (holding the GIL in turns), as a busy event
    loop does in the service or under pytest."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    threads = [threading.Thread(target=spin, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def raw_pynetdicom(port: int, datasets: list, timeout: float) -> tuple[int, int]:
    """One association, ``send_c_store`` each dataset: (stored, lost) as pynetdicom does it."""
    ae = AE(ae_title="RACE")
    ae.dimse_timeout = timeout
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title=PEER_AET)
    stored = 0
    try:
        for ds in datasets:
            if not assoc.is_established:
                break
            if assoc.send_c_store(ds).get("Status") == 0x0000:
                stored += 1
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()
    return stored, len(datasets) - stored


def teleread(port: int, datasets: list, timeout: float) -> tuple[int, int]:
    """The same through :func:`service.dicom.send.send_datasets`."""
    try:
        result = send_datasets(
            datasets,
            host="127.0.0.1",
            port=port,
            calling_aet="RACE",
            called_aet=PEER_AET,
            timeout=timeout,
        )
    except StoreError as exc:
        return (exc.result.sent if exc.result else 0), len(datasets)
    return result.sent, len(datasets) - result.sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--natural", action="store_true", help="do not provoke the race")
    parser.add_argument("--teleread", action="store_true", help="send with send_datasets")
    parser.add_argument("--associations", type=int, default=5)
    parser.add_argument("--instances", type=int, default=5, help="C-STOREs per association")
    parser.add_argument("--burners", type=int, default=0, help="spinning processes meanwhile")
    parser.add_argument("--spinners", type=int, default=0, help="spinning threads meanwhile")
    parser.add_argument("--timeout", type=float, default=2.0, help="DIMSE timeout, seconds")
    args = parser.parse_args()

    counter = Counter()
    logging.getLogger("pynetdicom").addHandler(counter)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    logging.getLogger("pynetdicom").propagate = False
    spec = StudySpec("RACE1", "RACE^TEST", "CT", "HEAD", instances=args.instances, rows=32)
    datasets = make_study(spec)
    send = teleread if args.teleread else raw_pynetdicom
    provoke = contextmanager(lambda: iter([None]))() if args.natural else provoked_reactor()
    stored = lost = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory, storescp(Path(directory)) as port:
        with burners(args.burners), spinners(args.spinners), provoke:
            for _ in range(args.associations):
                ok, missing = send(port, datasets, args.timeout)
                stored += ok
                lost += missing
    elapsed = time.monotonic() - started
    print(
        f"sender={'teleread send_datasets' if args.teleread else 'raw pynetdicom'} "
        f"mode={'natural' if args.natural else 'provoked'} burners={args.burners} "
        f"spinners={args.spinners} "
        f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}"
    )
    print(
        f"associations={args.associations} instances={args.associations * args.instances} "
        f"stored={stored} lost={lost} unexpected_messages={counter.unexpected} "
        f"elapsed={elapsed:.1f}s"
    )


if __name__ == "__main__":
    main()
