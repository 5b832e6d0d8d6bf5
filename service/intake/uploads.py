"""Uploads through the service: multipart ``.dcm`` files or ``.zip`` archives, streamed to disk.

Nothing is held whole in memory: each part is spooled to a temporary file in chunks, checked,
attributed to the uploader's facility (Orthanc records only the service's own user), and streamed
to Orthanc. Every file gets its own verdict: accepted, or rejected with a reason.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import struct
import tempfile
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath

from ..auth.sessions import CurrentUser
from ..clock import to_iso, utc_now
from ..dicom.files import ZIP_MAGIC, RejectedFile, inspect_dicom
from ..runtime.orthanc.client import OrthancClient, OrthancError, OrthancUnavailable
from ..storage import Database
from ..storage import ingest as ingest_store

CHUNK = 1 << 20


@dataclass(frozen=True)
class UploadLimits:
    """Bytes allowed: per file and per request as sent, and as expanded (zip members unpacked,
    Deflated datasets inflated) per file and per request."""

    max_file_bytes: int
    max_request_bytes: int
    max_expanded_bytes: int = 8 << 30
    max_expanded_file_bytes: int = 1 << 30


@dataclass
class FileVerdict:
    filename: str
    status: str
    reason: str | None = None
    study_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    study_description: str | None = None
    sop_class_uid: str | None = None


@dataclass
class StudyReceived:
    """What the uploader sees of one study: whose it is, what it is, how much of it arrived, and
    its consultation when there is one already (so the result links to it)."""

    study_instance_uid: str
    patient_name: str = ""
    patient_id: str = ""
    study_description: str = ""
    instances: int = 0
    consultation_id: int | None = None


@dataclass
class UploadReport:
    files: list[FileVerdict] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(1 for f in self.files if f.status == "accepted")

    @property
    def studies(self) -> list[str]:
        seen: dict[str, None] = {}
        for f in self.files:
            if f.status == "accepted" and f.study_instance_uid:
                seen.setdefault(f.study_instance_uid)
        return list(seen)

    def studies_received(self) -> list[StudyReceived]:
        """One entry per accepted study, in the order first seen, counting accepted files."""
        found: dict[str, StudyReceived] = {}
        for f in self.files:
            if f.status != "accepted" or not f.study_instance_uid:
                continue
            study = found.setdefault(f.study_instance_uid, StudyReceived(f.study_instance_uid))
            study.instances += 1
            study.patient_name = study.patient_name or f.patient_name or ""
            study.patient_id = study.patient_id or f.patient_id or ""
            study.study_description = study.study_description or f.study_description or ""
        return list(found.values())

    @property
    def patients(self) -> set[str]:
        return {f.patient_id for f in self.files if f.status == "accepted" and f.patient_id}


class UploadTooLarge(Exception):
    """The whole request went over the request limit."""


class StudyUploader:
    """Stores the files of one upload request into Orthanc on behalf of one user."""

    def __init__(
        self,
        orthanc: OrthancClient,
        database: Database,
        user: CurrentUser,
        client_ip: str | None,
        limits: UploadLimits,
        via: str = "upload",
        expected_study: str | None = None,
    ) -> None:
        self.orthanc = orthanc
        self.database = database
        self.user = user
        self.client_ip = client_ip
        self.limits = limits
        self.via = via
        self.expected_study = expected_study
        self.report = UploadReport()
        self._attributed: set[str] = set()
        self._received = 0
        self._expanded = 0
        self._workdir = Path(tempfile.mkdtemp(prefix="teleread-upload-"))

    def close(self) -> None:
        shutil.rmtree(self._workdir, ignore_errors=True)

    async def add_stream(self, filename: str, chunks: AsyncIterator[bytes]) -> None:
        """Spool one uploaded part to disk, then store it (or each member of a zip)."""
        path = self._workdir / f"part-{len(self.report.files)}-{id(chunks)}"
        size = await self._spool(chunks, path)
        if size is None:
            self.report.files.append(
                FileVerdict(
                    filename,
                    "rejected",
                    f"over the size limit ({self.limits.max_file_bytes // (1 << 20)} MB per file)",
                )
            )
            return
        with path.open("rb") as fh:
            magic = fh.read(4)
        if magic == ZIP_MAGIC:
            await self._store_zip(filename, path)
        else:
            self._expanded += size
            await self._store_file(filename, path)
        path.unlink(missing_ok=True)

    async def _spool(self, chunks: AsyncIterator[bytes], path: Path) -> int | None:
        """Write the stream to ``path``; None (and the rest drained) when over the file limit."""
        loop = asyncio.get_running_loop()
        size = 0
        too_big = False
        with path.open("wb") as fh:
            async for chunk in chunks:
                self._received += len(chunk)
                if self._received > self.limits.max_request_bytes:
                    raise UploadTooLarge()
                size += len(chunk)
                if size > self.limits.max_file_bytes:
                    too_big = True
                    continue
                await loop.run_in_executor(None, fh.write, chunk)
        if too_big:
            await loop.run_in_executor(None, partial(path.unlink, missing_ok=True))
            return None
        return size

    async def _store_zip(self, filename: str, path: Path) -> None:
        """Store each member, unpacked one at a time within the expansion limits.

        Overlapping entries (a zip bomb's way of expanding one stored kernel many times) refuse
        the whole archive before anything is unpacked; members past the upload's expansion
        budget are refused unread; a member's copy stops at its limit whatever it declared.
        """
        loop = asyncio.get_running_loop()
        try:
            members = await loop.run_in_executor(None, _zip_members, path)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            self.report.files.append(FileVerdict(filename, "rejected", f"damaged zip ({exc})"))
            return
        for info in members:
            label = f"{filename}/{info.filename}"
            if info.file_size > self.limits.max_file_bytes:
                self.report.files.append(FileVerdict(label, "rejected", "over the size limit"))
                continue
            refusal = self._expansion_refusal(info.file_size)
            if refusal is not None:
                self.report.files.append(FileVerdict(label, "rejected", refusal))
                continue
            target = self._workdir / f"member-{len(self.report.files)}"
            limit = min(
                self.limits.max_expanded_file_bytes,
                self.limits.max_expanded_bytes - self._expanded,
            )
            try:
                written = await loop.run_in_executor(None, _extract, path, info, target, limit)
            except ExpansionLimit as exc:
                target.unlink(missing_ok=True)
                self.report.files.append(FileVerdict(label, "rejected", str(exc)))
                continue
            except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, EOFError) as exc:
                target.unlink(missing_ok=True)
                self.report.files.append(
                    FileVerdict(label, "rejected", f"damaged zip entry ({exc})")
                )
                continue
            self._expanded += written
            await self._store_file(label, target)
            target.unlink(missing_ok=True)

    def _expansion_refusal(self, declared: int) -> str | None:
        """Why a member declaring ``declared`` bytes may not be unpacked, if it may not."""
        if declared > self.limits.max_expanded_file_bytes:
            mb = self.limits.max_expanded_file_bytes >> 20
            return f"expands to more than the limit ({mb} MB per file)"
        if self._expanded + declared > self.limits.max_expanded_bytes:
            mb = self.limits.max_expanded_bytes >> 20
            return f"the upload expands to more than the limit ({mb} MB per upload)"
        return None

    async def _store_file(self, filename: str, path: Path) -> None:
        loop = asyncio.get_running_loop()
        try:
            summary = await loop.run_in_executor(
                None, inspect_dicom, path, self.limits.max_expanded_file_bytes
            )
        except RejectedFile as exc:
            self.report.files.append(FileVerdict(filename, "rejected", str(exc)))
            return
        refusal = await self._refusal(summary.study_instance_uid)
        if refusal is not None:
            self.report.files.append(
                FileVerdict(
                    filename,
                    "rejected",
                    refusal,
                    summary.study_instance_uid,
                    summary.sop_instance_uid,
                    sop_class_uid=summary.sop_class_uid,
                )
            )
            return
        try:
            with path.open("rb") as fh:
                answer = await self.orthanc.store_instance(fh)
        except OrthancUnavailable:
            raise
        except OrthancError as exc:
            self.report.files.append(
                FileVerdict(
                    filename,
                    "rejected",
                    f"the archive refused it ({exc})",
                    summary.study_instance_uid,
                    summary.sop_instance_uid,
                    sop_class_uid=summary.sop_class_uid,
                )
            )
            return
        reason = "already stored" if answer.get("Status") == "AlreadyStored" else None
        self.report.files.append(
            FileVerdict(
                filename,
                "accepted",
                reason,
                summary.study_instance_uid,
                summary.sop_instance_uid,
                summary.patient_id,
                summary.patient_name,
                summary.study_description,
                summary.sop_class_uid,
            )
        )

    async def _refusal(self, study_instance_uid: str) -> str | None:
        """Why this study may not be uploaded here, if it may not.

        Adding one file to another facility's study would credit the uploader with the whole
        study (every instance of it), so a study belongs to the facility first credited with it
        (by its images, a request or an upload: ``ingest_store.study_owner``). An allowed study
        is credited to the uploader's facility in the same transaction as the check, before
        Orthanc can call it stable, so two facilities uploading one UID at once cannot both own it.
        """
        if self.expected_study and study_instance_uid != self.expected_study:
            return "belongs to another study than the one addressed"
        if study_instance_uid in self._attributed:
            return None
        owner = await self.database.write(
            ingest_store.claim_for_upload,
            study_instance_uid=study_instance_uid,
            facility_id=self.user.facility_id,
            user_id=self.user.id,
            via=self.via,
            client_ip=self.client_ip,
            at=to_iso(utc_now()),
        )
        if owner != self.user.facility_id:
            return "this study was sent by another facility"
        self._attributed.add(study_instance_uid)
        return None


def _zip_members(path: Path) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        _check_no_overlap(path, infos, archive.start_dir)
        return [
            info
            for info in infos
            if not info.is_dir()
            and not PurePosixPath(info.filename).name.startswith(".")
            and "__MACOSX" not in info.filename
            and PurePosixPath(info.filename).name.upper() != "DICOMDIR"
        ]


def _check_no_overlap(path: Path, infos: list[zipfile.ZipInfo], central_start: int) -> None:
    """Refuse entries whose data overlap another entry's, or the central directory.

    Each entry's bytes run from its local header (APPNOTE 4.3.7: 30 bytes, then the local
    name and extra field, whose lengths may differ from the central directory's) for its
    compressed size. In a sound archive these ranges follow one another; a zip bomb of
    overlapping entries (Fifield 2019) makes many entries read one stored kernel. Python 3.12's
    zipfile refuses that itself; this venv's 3.11 does not.
    """
    spans = []
    with path.open("rb") as fh:
        for info in infos:
            fh.seek(info.header_offset)
            header = fh.read(30)
            if len(header) < 30 or header[:4] != ZIP_MAGIC:
                raise zipfile.BadZipFile(f"no local header for {info.filename!r}")
            name_length, extra_length = struct.unpack_from("<2H", header, 26)
            start = info.header_offset + 30 + name_length + extra_length
            spans.append((info.header_offset, start + info.compress_size, info.filename))
    spans.sort()
    for (_, end, name), (next_start, _, next_name) in itertools.pairwise(spans):
        if end > next_start:
            raise zipfile.BadZipFile(f"overlapping entries {name!r} and {next_name!r} (a zip bomb)")
    if spans and spans[-1][1] > central_start:
        raise zipfile.BadZipFile(f"entry {spans[-1][2]!r} overlaps the central directory")


class ExpansionLimit(ValueError):
    """A zip member unpacked to more than it may."""


def _extract(path: Path, info: zipfile.ZipInfo, target: Path, limit: int) -> int:
    """Unpack one member to ``target``, stopping past ``limit`` bytes; returns bytes written."""
    written = 0
    with zipfile.ZipFile(path) as archive, archive.open(info) as src, target.open("wb") as dst:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise ExpansionLimit(f"expands to more than the limit ({limit >> 20} MB)")
            dst.write(chunk)
    return written
