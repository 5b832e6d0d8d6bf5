"""Tests for the synthetic study generator and the C-STORE sender."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_rescale
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
)
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.events import EventHandlerType
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from service.demo.synthetic import MANUFACTURER, StudySpec, dataset_bytes, make_study, write_study
from service.dicom import send as dicom_send
from service.dicom.send import StoreError, StoreResult, send_datasets

from .ports import free_port

STUDY_DT = datetime(2024, 3, 5, 9, 30, 15)


def _spec(
    modality: str = "CT",
    body_part: str = "ABDOMEN",
    *,
    patient_name: str = "WANG^FANG",
    **kwargs: Any,
) -> StudySpec:
    """A small spec; CR/DX are shrunk so the suite stays fast."""
    if modality in ("CR", "DX"):
        kwargs.setdefault("rows", 256)
    return StudySpec(
        patient_id="P0001",
        patient_name=patient_name,
        modality=modality,
        body_part=body_part,
        study_datetime=STUDY_DT,
        **kwargs,
    )


def _roundtrip(ds: Dataset) -> Dataset:
    """Encode to Part-10 bytes and decode again, as a receiver would."""
    return pydicom.dcmread(BytesIO(dataset_bytes(ds)))


# ---------------------------------------------------------------------------
# Modalities
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modality", "sop_class"),
    [
        ("CT", CTImageStorage),
        ("MR", MRImageStorage),
        ("CR", ComputedRadiographyImageStorage),
        ("DX", DigitalXRayImageStorageForPresentation),
    ],
)
def test_sop_class_matches_modality(modality: str, sop_class: str) -> None:
    """Each modality uses its storage SOP class, mirrored in the file meta."""
    ds = make_study(_spec(modality))[0]
    assert ds.SOPClassUID == sop_class
    assert ds.file_meta.MediaStorageSOPClassUID == sop_class
    assert ds.Modality == modality


@pytest.mark.parametrize(
    ("modality", "photometric", "shape"),
    [
        ("CT", "MONOCHROME2", (512, 512)),
        ("MR", "MONOCHROME2", (256, 256)),
        ("CR", "MONOCHROME1", (256, 256)),
        ("DX", "MONOCHROME1", (256, 256)),
    ],
)
def test_pixels_shape_dtype_and_photometric(
    modality: str, photometric: str, shape: tuple[int, int]
) -> None:
    """Pixels decode to the default matrix as 12-bit uint16 with the right photometric."""
    ds = _roundtrip(make_study(_spec(modality))[0])
    pixels = ds.pixel_array
    assert ds.PhotometricInterpretation == photometric
    assert pixels.shape == shape
    assert pixels.dtype == np.uint16
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (
        16,
        12,
        11,
        0,
    )
    assert int(pixels.max()) < 4096


def test_cr_default_size_is_1024() -> None:
    """CR defaults to a 1024 matrix (modest, for speed) when no size is given."""
    ds = make_study(StudySpec("P1", "DOE^JOHN", "CR", "CHEST"))[0]
    assert (ds.Rows, ds.Columns) == (1024, 1024)


def test_ct_centre_is_soft_tissue_in_hounsfield_units() -> None:
    """After rescale the centre of every CT slice is soft tissue, about 40 HU."""
    for body_part in ("HEAD", "CHEST", "ABDOMEN", "KNEE"):
        for ds in make_study(_spec("CT", body_part, instances=3)):
            hu = apply_rescale(ds.pixel_array, ds)
            centre = hu[246:266, 246:266]
            assert abs(float(centre.mean()) - 40.0) < 10.0, body_part


def test_ct_air_outside_body_is_minus_1000_hu() -> None:
    """The image corners are air: about -1000 HU after rescale."""
    ds = make_study(_spec("CT", "CHEST"))[0]
    hu = apply_rescale(ds.pixel_array, ds)
    assert (ds.RescaleSlope, ds.RescaleIntercept) == (1, -1024)
    assert abs(float(hu[:20, :20].mean()) + 1000.0) < 10.0


def test_ct_has_bone_ring() -> None:
    """A CT head slice contains skull-density pixels (around 1000 HU)."""
    ds = make_study(_spec("CT", "HEAD"))[0]
    hu = apply_rescale(ds.pixel_array, ds)
    assert np.count_nonzero(np.abs(hu - 1000.0) < 50.0) > 1000


def test_ct_window_tags() -> None:
    """CT carries a soft-tissue window (40/400) for viewers."""
    ds = make_study(_spec("CT"))[0]
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (40.0, 400.0)


def test_cr_is_monochrome1_with_dense_anatomy_low() -> None:
    """CR uses MONOCHROME1: the dense centre (spine/heart) is lower than direct exposure."""
    ds = make_study(_spec("CR", "CHEST"))[0]
    pixels = ds.pixel_array
    assert float(pixels[118:138, 118:138].mean()) < float(pixels[:10, :10].mean()) - 1500
    assert "ImagerPixelSpacing" in ds
    assert "PixelSpacing" not in ds


def test_slices_differ_and_are_stacked() -> None:
    """CT slices have distinct pixels and increasing positions 5 mm apart."""
    datasets = make_study(_spec("CT", instances=3))
    assert not np.array_equal(datasets[0].pixel_array, datasets[1].pixel_array)
    z = [float(ds.ImagePositionPatient[2]) for ds in datasets]
    assert z == [float(ds.SliceLocation) for ds in datasets]
    assert np.allclose(np.diff(z), 5.0)
    assert [ds.InstanceNumber for ds in datasets] == [1, 2, 3]


def test_pixels_are_deterministic() -> None:
    """The same spec gives identical pixels on every call (seeded by instance number)."""
    first = make_study(_spec("MR", "HEAD", instances=2))
    second = make_study(_spec("MR", "HEAD", instances=2))
    for a, b in zip(first, second, strict=True):
        assert a.PixelData == b.PixelData


def test_required_tags_present() -> None:
    """Worklist and viewer tags are populated from the spec."""
    spec = _spec(
        "MR",
        "HEAD",
        accession_number="ACC123",
        institution_name="DEMO HOSPITAL",
        patient_sex="F",
        patient_birth_date="19800101",
    )
    ds = make_study(spec)[0]
    assert ds.Manufacturer == MANUFACTURER
    assert (ds.StudyDate, ds.StudyTime) == ("20240305", "093015")
    assert ds.SeriesDate and ds.AcquisitionDate and ds.ContentDate and ds.ContentTime
    assert (ds.PatientID, ds.PatientSex, ds.PatientBirthDate) == ("P0001", "F", "19800101")
    assert (ds.AccessionNumber, ds.StudyID) == ("ACC123", "ACC123")
    assert ds.InstitutionName == "DEMO HOSPITAL"
    assert ds.BodyPartExamined == "HEAD"
    assert ds.StudyDescription == "MR HEAD"
    for keyword in (
        "ReferringPhysicianName",
        "SeriesDescription",
        "SeriesNumber",
        "FrameOfReferenceUID",
        "ImageOrientationPatient",
        "SliceThickness",
        "PixelSpacing",
        "WindowCenter",
    ):
        assert keyword in ds, keyword


# ---------------------------------------------------------------------------
# UIDs
# ---------------------------------------------------------------------------


def test_uids_shared_within_study() -> None:
    """All instances share study, series and frame of reference UIDs, not SOP UIDs."""
    datasets = make_study(_spec("CT", instances=4))
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert len({ds.FrameOfReferenceUID for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == 4
    assert all(ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID for ds in datasets)


def test_uids_unique_across_calls() -> None:
    """Two calls with the same spec never share a UID."""
    first = make_study(_spec("CT", instances=2))
    second = make_study(_spec("CT", instances=2))
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert not {ds[keyword].value for ds in first} & {ds[keyword].value for ds in second}


def test_given_study_uid_is_reused() -> None:
    """A supplied study UID is kept so a second series can join an existing study."""
    first = make_study(_spec("CT"))[0]
    second = make_study(_spec("CT", study_instance_uid=first.StudyInstanceUID, series_number=2))
    assert second[0].StudyInstanceUID == first.StudyInstanceUID
    assert second[0].SeriesInstanceUID != first.SeriesInstanceUID


# ---------------------------------------------------------------------------
# Character sets
# ---------------------------------------------------------------------------

CHARSET_CASES = [
    ("GB18030", "张三", "gb18030"),
    ("GB18030", "刘䶮", "gb18030"),  # U+4DAE exists in GB18030 but not in GBK
    ("GB18030", "ZHANG^SAN=张^三", "gb18030"),
    ("GBK", "张三", "gbk"),
    ("ISO_IR 192", "张三", "utf-8"),
    ("ISO_IR 100", "MÜLLER^HANS", "latin-1"),
]


@pytest.mark.parametrize(("charset", "name", "codec"), CHARSET_CASES)
def test_patient_name_raw_bytes_use_charset(charset: str, name: str, codec: str) -> None:
    """The PatientName bytes in the file are encoded with the Specific Character Set."""
    ds = make_study(_spec("MR", patient_name=name, charset=charset))[0]
    read = pydicom.dcmread(BytesIO(dataset_bytes(ds)))
    raw = read.get_item("PatientName")
    assert read.SpecificCharacterSet == charset
    assert bytes(raw.value).rstrip(b" ") == name.encode(codec)


@pytest.mark.parametrize(("charset", "name", "codec"), CHARSET_CASES)
def test_patient_name_decodes_back(charset: str, name: str, codec: str) -> None:
    """pydicom decodes the stored PatientName back to the original string."""
    ds = make_study(_spec("MR", patient_name=name, charset=charset))[0]
    assert str(_roundtrip(ds).PatientName) == name


def test_other_text_uses_charset() -> None:
    """Institution and descriptions are encoded with the same character set."""
    ds = make_study(
        _spec(
            "CT", charset="GB18030", institution_name="北京协和医院", study_description="头颅平扫"
        )
    )[0]
    read = pydicom.dcmread(BytesIO(dataset_bytes(ds)))
    assert bytes(read.get_item("InstitutionName").value).rstrip(b" ") == "北京协和医院".encode(
        "gb18030"
    )
    assert read.StudyDescription == "头颅平扫"


def test_unencodable_name_is_rejected() -> None:
    """A name the charset cannot represent fails early instead of being mangled."""
    with pytest.raises(ValueError, match="patient_name"):
        _spec("CT", patient_name="刘䶮", charset="GBK")
    with pytest.raises(ValueError, match="patient_name"):
        _spec("CT", patient_name="张三", charset="ISO_IR 100")


def test_invalid_modality_is_rejected() -> None:
    """Unknown modalities raise ValueError; case is normalised."""
    with pytest.raises(ValueError, match="modality"):
        _spec("US")
    assert _spec("ct").modality == "CT"


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def test_dataset_bytes_is_part10_file() -> None:
    """dataset_bytes gives preamble + DICM + file meta that pydicom reads back."""
    ds = make_study(_spec("CT"))[0]
    data = dataset_bytes(ds)
    assert data[128:132] == b"DICM"
    read = pydicom.dcmread(BytesIO(data))
    assert read.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert read.file_meta.ImplementationClassUID == PYDICOM_IMPLEMENTATION_UID
    assert read.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert read.SOPInstanceUID == ds.SOPInstanceUID
    assert np.array_equal(read.pixel_array, ds.pixel_array)


def test_write_study_writes_one_file_per_instance(tmp_path: Path) -> None:
    """write_study writes N readable .dcm files (creating the directory)."""
    datasets = make_study(_spec("CT", instances=3))
    paths = write_study(datasets, tmp_path / "study")
    assert len(paths) == 3
    assert all(path.suffix == ".dcm" and path.is_file() for path in paths)
    read = [pydicom.dcmread(path).SOPInstanceUID for path in paths]
    assert read == [ds.SOPInstanceUID for ds in datasets]


# ---------------------------------------------------------------------------
# C-STORE
# ---------------------------------------------------------------------------


@dataclass
class StorageSCP:
    """A running in-process Storage SCP and what it received."""

    port: int
    received: list[Dataset] = field(default_factory=list)
    status: int = 0x0000


def _start_scp(
    ae: AE, handlers: list[EventHandlerType] | None = None
) -> tuple[ThreadedAssociationServer, int]:
    """Start `ae` as a non-blocking server on a free localhost port."""
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers or [])
    assert server is not None
    return server, server.server_address[1]


@pytest.fixture
def storage_scp() -> Iterator[StorageSCP]:
    """Start a pynetdicom Storage SCP on a free localhost port; stop it afterwards."""
    ae = AE(ae_title="TEST-SCP")
    ae.supported_contexts = StoragePresentationContexts
    ae.add_supported_context(Verification)
    scp = StorageSCP(port=0)
    lock = threading.Lock()

    def on_store(event: evt.Event) -> int:
        with lock:
            scp.received.append(event.dataset)
        return scp.status

    baseline = set(threading.enumerate())
    server, scp.port = _start_scp(ae, [(evt.EVT_C_STORE, on_store)])
    try:
        yield scp
    finally:
        server.shutdown()
        ae.shutdown()
        _wait_for_threads(baseline)


def _wait_for_threads(baseline: set[threading.Thread], timeout: float = 5.0) -> None:
    """Wait until every thread started since `baseline` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        extra = set(threading.enumerate()) - baseline
        if not extra:
            return
        time.sleep(0.01)
    raise AssertionError(f"threads left running: {extra}")


def test_send_datasets_delivers_every_dataset(storage_scp: StorageSCP) -> None:
    """All datasets of mixed SOP classes arrive with status 0 over one association."""
    datasets = make_study(_spec("CT", instances=3, patient_name="张三", charset="GB18030"))
    datasets += make_study(_spec("CR", "CHEST", patient_name="张三", charset="GB18030"))
    result = send_datasets(
        datasets,
        host="127.0.0.1",
        port=storage_scp.port,
        calling_aet="TELEREAD",
        called_aet="TEST-SCP",
        timeout=10,
    )
    assert result == StoreResult(sent=4, failed=0, statuses=[0, 0, 0, 0])
    assert [ds.SOPInstanceUID for ds in storage_scp.received] == [
        ds.SOPInstanceUID for ds in datasets
    ]
    assert {str(ds.PatientName) for ds in storage_scp.received} == {"张三"}


def test_send_datasets_leaves_no_threads(storage_scp: StorageSCP) -> None:
    """send_datasets returns only after its association threads have finished."""
    before = set(threading.enumerate())
    send_datasets(
        make_study(_spec("MR")),
        host="127.0.0.1",
        port=storage_scp.port,
        calling_aet="TELEREAD",
        called_aet="TEST-SCP",
        timeout=10,
    )
    leftovers = {t for t in set(threading.enumerate()) - before if "Requestor" in t.name}
    assert not leftovers


def test_send_datasets_reports_refusals(storage_scp: StorageSCP) -> None:
    """A failure status from the SCP is counted as failed, not raised."""
    storage_scp.status = 0xA700  # Refused: out of resources
    result = send_datasets(
        make_study(_spec("MR", instances=2)),
        host="127.0.0.1",
        port=storage_scp.port,
        calling_aet="TELEREAD",
        called_aet="TEST-SCP",
        timeout=10,
    )
    assert result == StoreResult(sent=0, failed=2, statuses=[0xA700, 0xA700])


def test_send_datasets_sets_tcp_nodelay(
    storage_scp: StorageSCP, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The association socket has TCP_NODELAY set once connected."""
    seen: list[int] = []
    original = dicom_send._enable_tcp_nodelay

    def spy(event: evt.Event) -> None:
        original(event)
        sock = event.assoc.dul.socket.socket
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(dicom_send, "_enable_tcp_nodelay", spy)
    send_datasets(
        make_study(_spec("MR")),
        host="127.0.0.1",
        port=storage_scp.port,
        calling_aet="TELEREAD",
        called_aet="TEST-SCP",
        timeout=10,
    )
    assert len(seen) == 1 and seen[0] != 0


def test_send_datasets_closed_port_raises_store_error() -> None:
    """Connecting to a port with no listener raises StoreError (and leaks no socket)."""
    with pytest.raises(StoreError, match="connection failed"):
        send_datasets(
            make_study(_spec("MR")),
            host="127.0.0.1",
            port=free_port(),
            calling_aet="TELEREAD",
            called_aet="TEST-SCP",
            timeout=5,
        )


def test_send_datasets_rejected_association_raises_store_error() -> None:
    """An SCP that rejects the association (wrong called AET) yields StoreError."""
    ae = AE(ae_title="STRICT-SCP")
    ae.supported_contexts = StoragePresentationContexts
    ae.require_called_aet = True
    server, port = _start_scp(ae)
    try:
        with pytest.raises(StoreError, match="rejected"):
            send_datasets(
                make_study(_spec("MR")),
                host="127.0.0.1",
                port=port,
                calling_aet="TELEREAD",
                called_aet="WRONG-AET",
                timeout=5,
            )
    finally:
        server.shutdown()
        ae.shutdown()


def test_send_no_datasets_is_a_no_op() -> None:
    """An empty input returns an empty result without connecting."""
    result = send_datasets([], host="127.0.0.1", port=free_port(), calling_aet="A", called_aet="B")
    assert result == StoreResult(sent=0, failed=0, statuses=[])


def test_send_datasets_unsupported_sop_class_is_reported() -> None:
    """A SOP class the peer rejects gets 0x0122 while the others are still stored."""
    ae = AE(ae_title="CT-ONLY")
    ae.add_supported_context(CTImageStorage)
    received: list[str] = []

    def on_store(event: evt.Event) -> int:
        received.append(event.dataset.SOPInstanceUID)
        return 0x0000

    server, port = _start_scp(ae, [(evt.EVT_C_STORE, on_store)])
    try:
        ct, mr = make_study(_spec("CT"))[0], make_study(_spec("MR"))[0]
        result = send_datasets(
            [mr, ct],
            host="127.0.0.1",
            port=port,
            calling_aet="TELEREAD",
            called_aet="CT-ONLY",
            timeout=5,
        )
    finally:
        server.shutdown()
        ae.shutdown()
    assert result == StoreResult(sent=1, failed=1, statuses=[0x0122, 0x0000])
    assert received == [ct.SOPInstanceUID]


def test_send_datasets_abort_mid_transfer_raises_with_partial_result() -> None:
    """If the peer aborts after the first instance, StoreError carries what was stored."""
    ae = AE(ae_title="FLAKY")
    ae.supported_contexts = StoragePresentationContexts

    def on_store(event: evt.Event) -> int:
        if event.dataset.InstanceNumber == 2:
            event.assoc.abort()
        return 0x0000

    server, port = _start_scp(ae, [(evt.EVT_C_STORE, on_store)])
    try:
        with pytest.raises(StoreError) as caught:
            send_datasets(
                make_study(_spec("MR", instances=3)),
                host="127.0.0.1",
                port=port,
                calling_aet="TELEREAD",
                called_aet="FLAKY",
                timeout=5,
            )
    finally:
        server.shutdown()
        ae.shutdown()
    assert caught.value.result is not None
    assert caught.value.result.statuses == [0x0000, -1, -1]
    assert caught.value.result.sent == 1
