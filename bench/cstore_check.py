"""What the file check of C-STOREd instances adds to the ingest of a stable study.

Run from the repository root::

    .venv/bin/python bench/cstore_check.py [--instances 100] [--repeat 5]

C-STOREs one synthetic CT (512x512, 16 bits) into a throwaway ``ManagedOrthanc`` from a clinic's
AE title, then times ``ChangeFollower.read_study`` (what ingest reads of a stable study) three
ways: without the check (the reading it adds to), with every file checked then (nothing was
checked on arrival), and with the files already checked (as on arrival, ``NewInstance``, or on a
replay). Medians of ``--repeat`` runs; figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ingest import start_orthanc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.demo.synthetic import StudySpec, make_study  # noqa: E402
from service.dicom.send import send_datasets  # noqa: E402
from service.intake.ingest import ChangeFollower  # noqa: E402
from service.runtime.orthanc.client import OrthancClient  # noqa: E402
from service.storage import Database  # noqa: E402
from service.storage import ingest as ingest_store  # noqa: E402


async def measure(directory: Path, instances: int, repeat: int) -> None:
    orthanc = await start_orthanc(directory, stable_age=1)
    credentials = orthanc.config.credentials
    client = OrthancClient(orthanc.url, credentials.username, credentials.password)
    database = Database(directory / "bench.db")
    try:
        study = make_study(StudySpec("BENCH1", "BENCH^CT", "CT", "CHEST", instances=instances))
        port = orthanc.config.dicom_port
        sent = await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: send_datasets(
                study, host="127.0.0.1", port=port, calling_aet="BENCH", called_aet="TELEREAD"
            ),
        )
        assert sent.failed == 0, sent
        [study_id] = await client.get("/studies")
        follower = ChangeFollower(client, database, None)  # type: ignore[arg-type]
        check_files = follower._check_files

        async def unchecked(*_: object) -> tuple[list, list]:
            return [], []

        without, first, again = [], [], []
        for _ in range(repeat):
            follower._check_files = unchecked  # type: ignore[method-assign]
            start = time.perf_counter()
            await follower.read_study(study_id)
            without.append(time.perf_counter() - start)
            follower._check_files = check_files  # type: ignore[method-assign]
            await database.write(lambda db: db.execute("DELETE FROM instance_checks"))
            start = time.perf_counter()
            read = await follower.read_study(study_id)
            first.append(time.perf_counter() - start)
            assert len(read.checks) == instances and not read.malformed
            await database.write(ingest_store.record_checks, list(read.checks), "bench")
            start = time.perf_counter()
            read = await follower.read_study(study_id)
            again.append(time.perf_counter() - start)
            assert not read.checks
        base, checked, known = (statistics.median(t) * 1000 for t in (without, first, again))
        print(
            f"{instances}-instance CT 512x512, {os.cpu_count()} CPUs, load"
            f" {os.getloadavg()[0]:.1f}, medians of {repeat}:\n"
            f"  read of the stable study without the check  {base:7.0f} ms\n"
            f"  every file checked at StableStudy           {checked:7.0f} ms"
            f" (+{checked - base:.0f} ms)\n"
            f"  files checked before (arrival, replay)      {known:7.0f} ms"
            f" (+{known - base:.0f} ms)"
        )
    finally:
        await client.close()
        await orthanc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100, help="instances of the CT (100)")
    parser.add_argument("--repeat", type=int, default=5, help="runs, medians printed (5)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="teleread-cstore-check-"))
    try:
        asyncio.run(measure(directory, args.instances, args.repeat))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
