"""Does a reader of Orthanc's ``/changes`` see a change's seq appear *below* one it saw already,
when Orthancs write one PostgreSQL index (Debian's ``orthanc-postgresql`` 4.0)?

Run from the repository root::

    .venv/bin/python bench/orthanc_change_order.py [--studies 60] [--instances 4] [--senders 4]

A change's seq comes from a PostgreSQL sequence when its transaction inserts it, but
transactions commit in their own order, and a transaction that is rolled back (plugin 4.0
retries one that collided with another writer) leaves its seqs unused for ever. Each phase
C-STOREs the same number of small studies from ``--senders`` threads, while a reader polls
``/changes`` every few milliseconds and notes each seq it gets that is below the highest it had
(a *late* change: how far below, how long after the gap was first seen) and the gaps that never
filled. The reference phase is one Orthanc on the same PostgreSQL; then two Orthancs on one
index, the senders split between them. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.demo.synthetic import StudySpec, make_study  # noqa: E402
from service.dicom.send import send_datasets  # noqa: E402
from service.runtime.orthanc.client import OrthancClient  # noqa: E402
from service.runtime.orthanc.process import SharedIndex, load_or_create_credentials  # noqa: E402
from tests.postgres_server import PostgresServer, start_postgres  # noqa: E402
from tests.shared_archive import start_shared_orthanc  # noqa: E402

POLL_SECONDS = 0.002


@dataclass
class FeedWatch:
    """What a reader of the feed saw: every seq once, the late ones, the gaps left open."""

    head: int = 0
    seen: set[int] = field(default_factory=set)
    missing: dict[int, float] = field(default_factory=dict)  # seq -> when first skipped
    late: list[tuple[int, float]] = field(default_factory=list)  # (seqs below head, seconds)

    def take(self, seqs: list[int], now: float) -> None:
        for seq in sorted(seqs):
            if seq in self.seen:
                continue
            self.seen.add(seq)
            if seq > self.head:
                for skipped in range(self.head + 1, seq):
                    self.missing[skipped] = now
                self.head = seq
            else:
                self.late.append((self.head - seq, now - self.missing.pop(seq, now)))

    def gaps(self) -> list[tuple[int, int]]:
        """The open gaps as (first, last) ranges of seqs."""
        ranges: list[tuple[int, int]] = []
        for seq in sorted(self.missing):
            if ranges and ranges[-1][1] == seq - 1:
                ranges[-1] = (ranges[-1][0], seq)
            else:
                ranges.append((seq, seq))
        return ranges


async def watch(client: OrthancClient, feed: FeedWatch, stop: asyncio.Event) -> None:
    """Poll what follows the highest seq seen, and every open gap again (from where it starts,
    as many as it spans), so that a late change is read as soon as it commits."""
    while not stop.is_set():
        for first, last in feed.gaps():
            raw = await client.get("/changes", since=first - 1, limit=last - first + 1)
            feed.take([c["Seq"] for c in raw["Changes"] if c["Seq"] <= last], time.monotonic())
        raw = await client.get("/changes", since=feed.head, limit=1000)
        feed.take([c["Seq"] for c in raw["Changes"]], time.monotonic())
        await asyncio.sleep(POLL_SECONDS)


def send_studies(port: int, studies: list[list], failures: list[int]) -> None:
    for datasets in studies:
        result = send_datasets(
            datasets, host="127.0.0.1", port=port, calling_aet="BENCH", called_aet="TELEREAD"
        )
        failures.append(result.failed)


async def phase(
    name: str, postgres: PostgresServer, directory: Path, orthancs: int, args: argparse.Namespace
) -> str:
    index = SharedIndex(postgres.new_database(), directory / name / "storage")
    credentials = load_or_create_credentials(directory / name)
    started = [
        await start_shared_orthanc(directory / name / f"o{i}", index, credentials)
        for i in range(orthancs)
    ]
    client = OrthancClient(started[0].url, credentials.username, credentials.password)
    specs = [
        StudySpec(f"P{n}", f"BENCH^{n}", "CT", "HEAD", args.instances) for n in range(args.studies)
    ]
    studies = [make_study(replace(spec, rows=32, columns=32)) for spec in specs]
    feed, stop, failures = FeedWatch(), asyncio.Event(), []
    watcher = asyncio.create_task(watch(client, feed, stop))
    threads = [
        threading.Thread(
            target=send_studies,
            args=(started[s % orthancs].config.dicom_port, studies[s :: args.senders], failures),
        )
        for s in range(args.senders)
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    await asyncio.gather(*(asyncio.to_thread(thread.join) for thread in threads))
    sent = time.monotonic() - began
    await asyncio.sleep(1.0)  # the last commits, and late changes, come in
    stop.set()
    await watcher
    await client.close()
    for orthanc in started:
        await orthanc.kill()
    errors = orthanc_errors(directory / name)
    late = sorted(feed.late)
    worst_below = max((below for below, _ in late), default=0)
    worst_wait = max((wait for _, wait in late), default=0.0)
    return (
        f"{name:<28} {len(feed.seen):>8} {len(late):>6} {worst_below:>11} "
        f"{worst_wait * 1000:>11.1f} {len(feed.missing):>10} {sent:>7.1f}  "
        f"failed C-STOREs: {sum(failures)}"
        + "".join(f"\n    Orthanc error x{n}: {text}" for text, n in errors.most_common(3))
    )


def orthanc_errors(directory: Path) -> Counter[str]:
    """The error lines of the phase's Orthanc logs, without their time and thread."""
    errors: Counter[str] = Counter()
    for log in directory.glob("o*/orthanc.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("E"):
                errors[line.split("] ", 1)[-1][:160]] += 1
    return errors


async def run(args: argparse.Namespace) -> None:
    directory = Path(tempfile.mkdtemp(prefix="teleread-change-order-"))
    postgres = start_postgres()
    try:
        print(
            f"{args.studies} studies x {args.instances} instances from {args.senders} senders;"
            f" the feed polled every {POLL_SECONDS * 1000:.0f} ms"
        )
        print(
            f"{'phase':<28} {'changes':>8} {'late':>6} {'max below':>11} "
            f"{'max wait ms':>11} {'never came':>10} {'send s':>7}"
        )
        print(await phase("one Orthanc (reference)", postgres, directory, 1, args))
        print(await phase("two Orthancs, one index", postgres, directory, 2, args))
    finally:
        postgres.stop()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=60)
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--senders", type=int, default=4)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
