"""Following Orthanc's ``/changes`` feed: every stable study becomes (or completes) consultations.

The cursor is stored in the same transaction as the work a change produced, so a crash or restart
loses nothing and replays duplicate nothing. Two traps of the real Orthanc are handled here:
a study that became stable while Orthanc was down never gets a ``StableStudy`` change (so stable
studies are reconciled at start-up), and every object the service itself later stores into a study
fires another ``StableStudy`` (so processing a study again only refreshes it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import sqlite_utils
from pydicom.charset import convert_encodings, decode_bytes

from worklists.sla import SlaPolicy

from ..clock import to_iso, utc_now
from ..dicom.files import RejectedFile, inspect_dicom
from ..identity_numbers import Identifier
from ..runtime.orthanc.client import Change, OrthancClient, OrthancError, OrthancUnavailable
from ..storage import Database
from ..storage import ingest as ingest_store
from .change_window import ChangeWindow
from .dicom_identifiers import dicom_identifiers
from .file_checks import FileChecks
from .intake import IngestOutcome, InstanceOrigin, ReceivedStudy
from .repeat_check import receive_checked_study

log = logging.getLogger(__name__)

MAX_FAILURES_PER_CHANGE = 5
MOVE_RETRY_SECONDS = 60.0
# Files of C-STOREd instances read and checked at once (each check runs in a worker thread).
CHECK_CONCURRENCY = 4
#: How long a seq skipped on the feed is waited for (change_window.py). Its change comes when
#: the transaction that took it commits (a transaction of the index lasts milliseconds) or never
#: (rolled back: most gaps, measured with two Orthancs on one index); waiting keeps the stored
#: cursor that far behind, so that a restart reads those changes again.
GAP_PATIENCE_SECONDS = 10.0


class ChangeFollower:
    """The background task that turns Orthanc's change feed into consultations."""

    def __init__(
        self,
        orthanc: OrthancClient,
        database: Database,
        sla: SlaPolicy,
        *,
        poll_interval: float = 0.5,
        clock: Callable[[], datetime] = utc_now,
        quarantine_dir: Path = Path("./var/quarantine"),
        max_file_bytes: int = 1 << 30,
        file_checks: FileChecks | None = None,
        gap_patience: float = GAP_PATIENCE_SECONDS,
    ) -> None:
        self.orthanc = orthanc
        self.database = database
        self.sla = sla
        self.poll_interval = poll_interval
        self.clock = clock
        self.quarantine_dir = quarantine_dir
        self.max_file_bytes = max_file_bytes  # what a deflated file may inflate to (uploads')
        self.file_checks = file_checks
        """Where C-STOREd files are checked: a worker process (service/intake/file_checks.py),
        or None for a thread of this process."""
        self.listeners: list[Callable[[IngestOutcome], None]] = []
        self.caught_up = asyncio.Event()
        self.state = "starting"
        """What /healthz reports: starting, following, waiting_for_orthanc or failing."""
        self.detail = ""
        self._failures: Counter[int] = Counter()
        self._moves_pending = True  # quarantined instances a crash may have left in Orthanc
        self._next_move_at = 0.0
        self._moving = asyncio.Lock()  # one mover at a time (the follower, the CLI, a test)
        self._reconcile = True
        self.gap_patience = gap_patience
        """Seconds a seq skipped on the feed is waited for (see GAP_PATIENCE_SECONDS)."""
        self._window: ChangeWindow | None = None
        self._stored_cursor = 0  # the cursor as this follower last read or wrote it
        self._round = asyncio.Lock()  # one round over the feed at a time (see follow_once)

    async def run(self) -> None:
        """Reconcile, then follow the feed forever, backing off while Orthanc is away."""
        backoff = self.poll_interval
        outage_logged = False
        while True:
            try:
                await self._move_out_if_pending()
                if self._reconcile:
                    await self.reconcile()
                    self._reconcile = False
                more = await self.follow_once()
                if outage_logged:
                    log.info("Orthanc is back; ingest caught up")
                    outage_logged = False
                self.state, self.detail = "following", ""
                backoff = self.poll_interval
                if not more:
                    self.caught_up.set()
                    await asyncio.sleep(self.poll_interval)
            except ingest_store.CursorMoved as exc:  # another replica's follower got there first
                log.warning("ingest: %s; reading it again", exc)
            except OrthancUnavailable as exc:
                self.state, self.detail = "waiting_for_orthanc", str(exc)
                if not outage_logged:
                    log.warning("Orthanc unavailable (%s); retrying with backoff", exc)
                    outage_logged = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception as exc:  # never let the follower die: log, back off, go on
                self.state, self.detail = "failing", f"{type(exc).__name__}: {exc}"
                log.exception("unexpected error while following Orthanc's changes")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    def orthanc_restarted(self) -> None:
        """Orthanc was restarted under us: a study that was still settling when it died gets
        no ``StableStudy`` change any more, so reconcile again before following the feed."""
        self._reconcile = True

    async def reconcile(self) -> int:
        """Ingest stable studies Orthanc holds but the service never processed; returns how many."""
        known = await self.database.read(ingest_store.known_study_ids)
        count = 0
        for orthanc_id in await self.orthanc.study_ids():
            if orthanc_id in known:
                continue
            try:
                info = await self.orthanc.study(orthanc_id)
            except OrthancError as exc:
                if isinstance(exc, OrthancUnavailable):
                    raise
                continue
            if info.get("IsStable"):
                await self.process_study(orthanc_id)
                count += 1
        if count:
            log.info("reconciled %d stable studies missed while the service was down", count)
        return count

    async def follow_once(self, limit: int = 100) -> bool:
        """Process one page of changes, and any that filled a gap; True when more are waiting.

        The page follows the highest seq read; each gap below it is asked for again, until its
        change comes or ``gap_patience`` runs out (service/intake/change_window.py). On an error
        the window is dropped, and the next round starts again from the stored cursor.

        Rounds are serialised: a caller driving the feed itself (the CLI, a test) while the
        background loop runs would otherwise share one window, and a round begun before the
        cursor was rewound could store its old head over the rewind.
        """
        async with self._round:
            return await self._follow_one_page(limit)

    async def _follow_one_page(self, limit: int) -> bool:
        window = await self._current_window()
        try:
            late: list[Change] = []
            for first, last in window.gaps():
                filled = await self.orthanc.changes(first - 1, last - first + 1)
                late += [c for c in filled.changes if c.seq <= last]
            page = await self.orthanc.changes(window.head, limit)
            now = asyncio.get_running_loop().time()
            await self._process_changes(window, window.take([*late, *page.changes], now))
            window.give_up(now, self.gap_patience)
            if window.low > self._stored_cursor:
                await self.database.write(ingest_store.set_cursor, window.low, self._stored_cursor)
                self._stored_cursor = window.low
        except BaseException:
            self._window = None
            raise
        return not page.done

    async def _current_window(self) -> ChangeWindow:
        """The window over the feed, made again from the stored cursor when there is none or
        the cursor is not where this follower left it (rewound, or moved by someone else)."""
        stored = await self.database.read(ingest_store.get_cursor)
        if self._window is None or stored != self._stored_cursor:
            self._window = ChangeWindow(stored)
            self._stored_cursor = stored
        return self._window

    async def _process_changes(self, window: ChangeWindow, changes: list[Change]) -> None:
        arrivals: list[str] = []  # checked before the next stable study, not held up by later
        for change in changes:
            if change.change_type == "NewInstance":
                arrivals.append(change.resource_id)
            elif change.change_type == "StableStudy":
                await self._check_arrivals(arrivals)
                arrivals = []
                cursor = window.cursor_after(change.seq)
                await self._process_change(change.resource_id, change.seq, cursor)
            window.done(change.seq)
        await self._check_arrivals(arrivals)

    async def _check_arrivals(self, instance_ids: list[str]) -> None:
        """Check the files of instances as they arrive, while their study waits to be stable
        (Orthanc's StableAge), so that processing the stable study finds them checked: the
        check is off the ingest's critical path (measured: +0.48 s for a 100-instance CT read
        at StableStudy, against a few ms when checked on arrival). Best effort: whatever is
        missed here is checked when the study is processed."""
        if not instance_ids:
            return
        try:
            metadata = await self._metadata(instance_ids)
            _, checks = await self._check_files(instance_ids, metadata)
            if checks:
                await self.database.write(ingest_store.record_checks, checks, to_iso(self.clock()))
        except OrthancUnavailable:
            raise
        except Exception:  # e.g. an instance deleted meanwhile (404): the study check catches up
            log.info("checking arrivals failed; they are checked with their study", exc_info=True)

    async def _process_change(self, orthanc_id: str, seq: int, cursor: int) -> None:
        """Ingest the study of change ``seq``, storing ``cursor`` with its work."""
        try:
            await self.process_study(orthanc_id, cursor)
        except (OrthancUnavailable, ingest_store.CursorMoved):
            raise
        except OrthancError as exc:
            if exc.status == 404:
                log.info("study %s was deleted before it could be ingested", orthanc_id)
                return
            self._count_failure(orthanc_id, seq, exc)
        except Exception as exc:  # a poison study must not stop the feed forever
            self._count_failure(orthanc_id, seq, exc)

    def _count_failure(self, orthanc_id: str, seq: int, exc: Exception) -> None:
        self._failures[seq] += 1
        log.exception("ingest of study %s (change %d) failed", orthanc_id, seq, exc_info=exc)
        if self._failures[seq] < MAX_FAILURES_PER_CHANGE:
            raise OrthancUnavailable(0, f"retrying change {seq}") from exc
        log.error("giving up on change %d after %d failures", seq, MAX_FAILURES_PER_CHANGE)

    async def process_study(self, orthanc_id: str, seq: int | None = None) -> IngestOutcome:
        """Ingest one study; ``seq``: the change cursor to store in the same transaction, which
        is refused (:class:`~service.storage.ingest.CursorMoved`) if another follower moved the
        cursor since this one read it."""
        study = await self.read_study(orthanc_id)
        cursor_read = self._stored_cursor if seq is not None else None
        outcome = await self.database.write(
            _receive_once, study, now=self.clock(), sla=self.sla, seq=seq, cursor_read=cursor_read
        )
        if seq is not None and cursor_read is not None:
            self._stored_cursor = max(cursor_read, seq)
        if outcome.moved_out:
            self._moves_pending = True
            self._next_move_at = 0.0
            await self._move_out_if_pending()
        for listener in self.listeners:
            listener(outcome)
        return outcome

    async def _move_out_if_pending(self) -> None:
        """Move quarantined instances out if some wait; a failure (other than an Orthanc
        outage) is logged and retried a minute later, without holding up the ingest."""
        loop = asyncio.get_running_loop()
        if not self._moves_pending or loop.time() < self._next_move_at:
            return
        try:
            async with self._moving:
                if self._moves_pending:  # else another mover did it while this round waited
                    await self._move_out()
        except OrthancUnavailable:
            raise
        except Exception:
            log.exception("could not move quarantined instances out of Orthanc; retrying")
            self._next_move_at = loop.time() + MOVE_RETRY_SECONDS

    async def move_out_quarantined(self) -> int:
        """Keep the files of quarantined instances under the data directory, then delete them
        from Orthanc, so the owner's study is left as the owner sent it and nobody reaches them
        through Orthanc; returns how many were moved.

        The ingest marked them in its own transaction; each is written (and synced) to
        ``quarantine/<entry>/<orthanc id>.dcm`` before it is deleted, and recorded as moved
        after, so a crash anywhere repeats a step and loses nothing; a failure leaves the rest
        pending for the follower's next round.
        """
        async with self._moving:
            return await self._move_out()

    async def _move_out(self) -> int:
        self._moves_pending = True
        moved = 0
        while pending := await self.database.read(ingest_store.pending_moves):
            done: list[tuple[int, str]] = []
            for row in pending:
                instance_id = row["orthanc_instance_id"]
                relative = f"{row['quarantine_id']}/{instance_id}.dcm"
                try:
                    content = await self.orthanc.get(f"/instances/{instance_id}/file")
                except OrthancUnavailable:
                    raise
                except OrthancError as exc:
                    if exc.status != 404:
                        raise
                    content = None  # already deleted (a crash after the delete): file kept
                if isinstance(content, bytes):
                    target = self.quarantine_dir / relative
                    await asyncio.to_thread(_keep_file, target, content)
                    await self._delete_instance(instance_id)
                done.append((row["id"], relative))
            await self.database.write(ingest_store.moved_out, done, to_iso(self.clock()))
            moved += len(done)
        self._moves_pending = False
        if moved:
            log.warning("moved %d quarantined instances out of Orthanc", moved)
        return moved

    async def _delete_instance(self, instance_id: str) -> None:
        try:
            await self.orthanc.request("DELETE", f"/instances/{instance_id}")
        except OrthancUnavailable:
            raise
        except OrthancError as exc:
            if exc.status != 404:
                raise

    async def read_study(self, orthanc_id: str) -> ReceivedStudy:
        """The study's main tags and the origin of each of its instances."""
        info = await self.orthanc.study(orthanc_id)
        series = await self.orthanc.study_series(orthanc_id)
        instance_ids = [i for s in series for i in s.get("Instances", [])]
        metadata = await self._metadata(instance_ids)
        origins = self._origins(instance_ids, metadata)
        malformed, checks = await self._check_files(instance_ids, metadata)
        tags = info.get("MainDicomTags", {})
        patient = info.get("PatientMainDicomTags", {})
        patient_name = _tidy_person_name(patient.get("PatientName", ""))
        identifiers: tuple[Identifier, ...] = ()
        if instance_ids:
            patient_name = await self._decoded_patient_name(instance_ids[0], patient_name)
            identifiers = await self._patient_identifiers(instance_ids[0])
        modalities: list[str] = []
        body_part = ""
        for s in series:
            series_tags = s.get("MainDicomTags", {})
            modality = series_tags.get("Modality", "")
            if modality and modality not in modalities:
                modalities.append(modality)
            body_part = body_part or series_tags.get("BodyPartExamined", "")
        return ReceivedStudy(
            orthanc_id=orthanc_id,
            study_instance_uid=tags.get("StudyInstanceUID", ""),
            patient_id=patient.get("PatientID", ""),
            patient_name=patient_name,
            patient_birth_date=patient.get("PatientBirthDate", ""),
            patient_sex=patient.get("PatientSex", ""),
            accession_number=tags.get("AccessionNumber", ""),
            study_date=tags.get("StudyDate", ""),
            study_description=tags.get("StudyDescription", ""),
            modalities=tuple(modalities),
            body_part=body_part.upper(),
            series_count=len(series),
            instances_count=len(instance_ids),
            origins=origins,
            malformed=tuple(malformed),
            checks=tuple(checks),
            identifiers=identifiers,
        )

    async def _metadata(self, instance_ids: list[str]) -> list[dict[str, str]]:
        """Orthanc's metadata of each instance (origin, sender, reception), in order."""
        limit = asyncio.Semaphore(8)

        async def metadata_of(instance_id: str) -> dict[str, str]:
            async with limit:
                return await self.orthanc.instance_metadata(instance_id)

        return list(await asyncio.gather(*(metadata_of(i) for i in instance_ids)))

    def _origins(
        self, instance_ids: list[str], metadata: list[dict[str, str]]
    ) -> tuple[InstanceOrigin, ...]:
        """The instances grouped by where they came from (Orthanc's metadata of each)."""

        def origin_of(meta: dict[str, str]) -> tuple[tuple[str, str, str, str, bool], str]:
            origin, user = meta.get("Origin", ""), meta.get("HttpUsername", "")
            own = origin == "RestApi" and bool(user) and user == self.orthanc.username
            key = (origin, meta.get("RemoteAET", "").strip(), meta.get("RemoteIP", ""), user, own)
            return key, meta.get("ReceptionDate", "")

        answers = [origin_of(meta) for meta in metadata]
        groups: dict[tuple[str, str, str, str, bool], list[tuple[str, str]]] = {}
        for instance_id, (key, received) in zip(instance_ids, answers, strict=True):
            groups.setdefault(key, []).append((instance_id, received))
        return tuple(
            InstanceOrigin(
                origin,
                aet,
                ip,
                user,
                len(members),
                own,
                tuple(i for i, _ in members),
                min(r for _, r in members),
            )
            for (origin, aet, ip, user, own), members in groups.items()
        )

    async def _check_files(
        self, instance_ids: list[str], metadata: list[dict[str, str]]
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
        """Check the file of every instance that arrived by C-STORE as an upload's is checked
        (``inspect_dicom``: the same reasons), except those already checked in the reception
        Orthanc holds now; returns the malformed ones (id, reason), checked now or before, and
        the checks done now (id, reception, reason or '').

        Uploads and STOW-RS were checked before they reached Orthanc and the service's own
        objects need none, so only ``DicomProtocol`` instances are read: each file once, over
        ``CHECK_CONCURRENCY`` requests, checked in ``file_checks``' process (or a thread).
        """
        arrived = {
            i: meta.get("ReceptionDate", "")
            for i, meta in zip(instance_ids, metadata, strict=True)
            if meta.get("Origin") == "DicomProtocol"
        }
        if not arrived:
            return [], []
        known = await self.database.read(ingest_store.instance_checks, list(arrived))
        malformed = [
            (i, reason)
            for i, (received, reason) in known.items()
            if reason and received == arrived[i]
        ]
        todo = [i for i, received in arrived.items() if known.get(i, ("", ""))[0] != received]
        limit = asyncio.Semaphore(CHECK_CONCURRENCY)
        loop = asyncio.get_running_loop()

        async def check(instance_id: str) -> tuple[str, str, str] | None:
            async with limit:
                try:
                    content = await self.orthanc.get(f"/instances/{instance_id}/file")
                except OrthancUnavailable:
                    raise
                except OrthancError as exc:
                    if exc.status == 404:
                        return None  # deleted meanwhile: nothing to check
                    raise
                if self.file_checks is not None:
                    reason = await self.file_checks.reason(
                        _file_check, bytes(content), self.max_file_bytes
                    )
                else:
                    reason = await loop.run_in_executor(
                        None, _file_check, bytes(content), self.max_file_bytes
                    )
            return instance_id, arrived[instance_id], reason

        checks = [c for c in await asyncio.gather(*(check(i) for i in todo)) if c is not None]
        malformed += [(i, reason) for i, _, reason in checks if reason]
        return malformed, checks

    async def _decoded_patient_name(self, instance_id: str, fallback: str) -> str:
        """Decode (0010,0010) *Patient's Name* with pydicom from the raw bytes and charset.

        pydicom implements PS3.5 6.1 character repertoires (GB18030, GBK, ISO 2022 escapes)
        exactly; relying on it keeps names right whatever Orthanc's own conversion does.
        """
        raw = await self._raw_element(instance_id, "0010-0010")
        if raw is None:
            return fallback
        charset = await self._raw_element(instance_id, "0008-0005") or b""
        terms = charset.decode("ascii", "replace").strip("\0 ").split("\\")
        text = decode_bytes(raw.rstrip(b"\0 "), convert_encodings(terms), {0x5E, 0x3D})
        return _tidy_person_name(text)

    async def _patient_identifiers(self, instance_id: str) -> tuple[Identifier, ...]:
        """The national identifiers the study's patient carries (Other Patient IDs and their
        sequence, or a Patient ID that is one), from one instance's tags."""
        try:
            tags = await self.orthanc.get(f"/instances/{instance_id}/tags?short")
        except OrthancUnavailable:
            raise
        except OrthancError:
            return ()
        return dicom_identifiers(tags) if isinstance(tags, dict) else ()

    async def _raw_element(self, instance_id: str, tag: str) -> bytes | None:
        """The raw value of a top-level element, or None when the instance has none."""
        try:
            raw = await self.orthanc.get(f"/instances/{instance_id}/content/{tag}")
        except OrthancUnavailable:
            raise
        except OrthancError:
            return None
        return raw if isinstance(raw, bytes) else None


def _receive_once(
    db: sqlite_utils.Database,
    study: ReceivedStudy,
    *,
    now: datetime,
    sla: SlaPolicy,
    seq: int | None,
    cursor_read: int | None,
) -> IngestOutcome:
    """``receive_checked_study``, in a transaction that first checks the cursor is still where
    this follower read it (one follower's work only, whatever an old leader still does)."""
    if cursor_read is not None:
        ingest_store.expect_cursor(db, cursor_read)
    return receive_checked_study(db, study, now=now, sla=sla, seq=seq)


def _tidy_person_name(name: str) -> str:
    """Drop trailing empty PN components ("陈国强^" reads "陈国强"), as PS3.5 6.2 allows."""
    groups = [group.rstrip("^ ") for group in name.rstrip("= ").split("=")]
    return "=".join(groups).rstrip("=")


def _file_check(content: bytes, max_file_bytes: int) -> str:
    """Why an upload of this file would be refused ('' when it would not); a worker's job
    (process or thread): ``inspect_dicom`` reads a file on disk, so the bytes go to a
    temporary file first."""
    with tempfile.NamedTemporaryFile(suffix=".dcm") as fh:
        fh.write(content)
        fh.flush()
        try:
            inspect_dicom(Path(fh.name), max_file_bytes)
        except RejectedFile as exc:
            return str(exc)
    return ""


def _keep_file(target: Path, content: bytes) -> None:
    """Write a quarantined instance's file durably (temporary name, fsync, rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    with partial.open("wb") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    partial.replace(target)
