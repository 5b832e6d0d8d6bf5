"""Key images (issue 19, 图文报告) end to end on a real Orthanc and SQLite: the claim holder marks
them with the view as seen; others are refused; signing renders them into the version's figures
(the canonical form's digests, the PDF's images, the portal's route) and delivery stores a Key
Object Selection document with the study that dciodvfy accepts."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image

from service.http.keys import ORTHANC
from service.reports import key_images
from service.reports.canonical import parse_canonical
from service.reports.document import ReportFigure
from service.storage import Conflict
from service.storage import key_images as key_image_store
from tests.module_app import running_service
from tests.test_report_dicom_conformance import dciodvfy
from tests.test_reports import FAST_DELIVERY, report_url, seed_reading, sign, write


def view(**changes) -> dict[str, Any]:
    base = {
        "viewport": [600, 400],
        "window": {"center": 40, "width": 80},
        "invert": False,
        "rotation": 0,
        "flip_h": False,
        "flip_v": False,
        "scale": None,
        "pan_x": 0,
        "pan_y": 0,
        "measurements": [],
    }
    return base | changes


LENGTH = {
    "type": "length",
    "points": [{"x": 10, "y": 10}, {"x": 50, "y": 40}],
    "text": "Length 9.0 mm",
}


@pytest.fixture(scope="module")
async def world(tmp_path_factory, database_backend) -> AsyncIterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("key_images")
    async with running_service(directory, **FAST_DELIVERY) as (service, _):
        reading = await seed_reading(service)
        li = await service.login("dr_li")
        manifest = await (
            await service.client.get(f"/api/consultations/{reading['cid']}/viewer", headers=li)
        ).json()
        series = manifest["series"][0]
        yield {
            "service": service,
            "reading": reading,
            "li": li,
            "series": series["uid"],
            "instances": [i["uid"] for i in series["instances"]],
        }


async def mark(world, headers, index=0, **fields):
    body = {
        "series_instance_uid": world["series"],
        "sop_instance_uid": world["instances"][index],
        "frame": 1,
        "caption": "",
        "view": view(),
    } | fields
    return await world["service"].client.post(
        report_url(world["reading"]["cid"], "/key-images"), headers=headers, json=body
    )


async def test_only_the_claim_holder_marks_key_images(world):
    """Another reader of the centre is refused with a reason; clinics and other facilities too."""
    service = world["service"]
    wu = await service.login("dr_wu")
    refused = await mark(world, wu)
    assert refused.status == 409
    assert (await refused.json())["error"] == "not_claim_holder"
    doc_a = await service.login("doc_a")
    assert (await mark(world, doc_a)).status == 403
    doc_b = await service.login("doc_b")
    assert (await mark(world, doc_b)).status in (403, 404)
    listed = await service.client.get(
        report_url(world["reading"]["cid"], "/key-images"), headers=doc_a
    )
    assert listed.status == 403


async def test_an_instance_of_another_study_is_not_found(world):
    response = await mark(world, world["li"], sop_instance_uid="1.2.3.4.5.6.7")
    assert response.status == 404


async def test_marking_signing_and_the_figures(world, tmp_path):
    """Two marks (one with a length, rotated) become two figures: their PNGs are the server's
    rendering, their digests are in the canonical form, the PDF holds them pixel for pixel and
    the KOS stored with the study passes dciodvfy; the clinic sees them, another clinic not."""
    service, li, cid = world["service"], world["li"], world["reading"]["cid"]
    first = await mark(world, li, caption="右肺上叶结节", view=view(measurements=[LENGTH]))
    assert first.status == 201, await first.text()
    second = await mark(world, li, index=1, caption="Second", view=view(rotation=1, invert=True))
    assert second.status == 201
    third = await mark(world, li, caption="dropped")
    drop = (await third.json())["items"][-1]["id"]
    removed = await service.client.delete(report_url(cid, f"/key-images/{drop}"), headers=li)
    assert removed.status == 200
    listed = (await removed.json())["items"]
    assert [m["caption"] for m in listed] == ["右肺上叶结节", "Second"]
    assert listed[0]["view"]["measurements"][0]["text"] == "Length 9.0 mm"
    preview = await service.client.get(listed[0]["image"], headers=li)
    assert preview.status == 200 and preview.content_type == "image/png"

    assert (await write(service, li, cid, findings="结节。", impression="随访。")).status == 200
    signed = await sign(service, li, cid)
    assert signed.status == 201, await signed.text()

    doc_a = await service.login("doc_a")
    figures = await service.client.get(report_url(cid, "/versions/1/figures"), headers=doc_a)
    assert figures.status == 200
    items = (await figures.json())["items"]
    assert [f["caption"] for f in items] == ["右肺上叶结节", "Second"]
    pngs = []
    for item in items:
        answer = await service.client.get(item["image"], headers=doc_a)
        assert answer.status == 200
        png = await answer.read()
        assert hashlib.sha256(png).hexdigest() == item["sha256"]
        pngs.append(png)
    doc_b = await service.login("doc_b")
    for path in ("/versions/1/figures", "/versions/1/figures/1"):
        assert (await service.client.get(report_url(cid, path), headers=doc_b)).status == 404

    canonical = await service.database.read(
        lambda db: db.execute("SELECT canonical FROM report_versions").fetchone()[0]
    )
    assert parse_canonical(canonical)["figures"] == [f["sha256"] for f in items]

    pdf = await (await service.client.get(report_url(cid, "/versions/1/pdf"), headers=doc_a)).read()
    in_pdf = pdf_figures(pdf, tmp_path)
    rendered = [np.asarray(Image.open(io.BytesIO(p)).convert("RGB")) for p in pngs]
    assert len(in_pdf) == len(rendered) == 2
    for got, expected in zip(in_pdf, rendered, strict=True):
        assert np.array_equal(got, expected)

    kos = await stored_kos(service)
    assert kos.ConceptNameCodeSequence[0].CodeValue == "113000"
    referenced = {
        item.ReferencedSOPInstanceUID
        for series in kos.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert referenced == set(world["instances"])
    assert "右肺上叶结节" in json.dumps(kos.to_json_dict(), ensure_ascii=False)
    names = [
        str(item.PersonName)
        for item in kos.ContentSequence
        if item.ValueType == "PNAME" and item.ConceptNameCodeSequence[0].CodeValue == "121008"
    ]
    assert len(names) == 1 and names[0]  # the reader who chose them (TID 1002 observer)
    assert dciodvfy(kos, tmp_path / "kos.dcm") == []


def pdf_figures(pdf: bytes, directory: Path) -> list[np.ndarray]:
    """The images ``pdfimages`` finds in the PDF larger than the QR code, as arrays."""
    path = directory / "report.pdf"
    path.write_bytes(pdf)
    listing = subprocess.run(
        ["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split() for line in listing.splitlines()[2:]]
    subprocess.run(["pdfimages", "-png", str(path), str(directory / "img")], check=True)
    found = []
    for n, row in enumerate(rows):
        if row[2] == "image" and int(row[3]) >= 200:
            found.append(np.asarray(Image.open(directory / f"img-{n:03d}.png").convert("RGB")))
    return found


async def stored_kos(service) -> pydicom.Dataset:
    orthanc = service.app[ORTHANC]

    async def found():
        for study in await orthanc.get("/studies"):
            for instance in await orthanc.study_instances(study):
                tags = await orthanc.instance_tags(instance["ID"])
                if tags.get("Modality") == "KO":
                    return await orthanc.get(f"/instances/{instance['ID']}/file")
        return None

    data = await service.wait_for(found, timeout=20)
    return pydicom.dcmread(io.BytesIO(data))


async def test_a_signed_report_keeps_its_key_images_until_a_correction(world):
    """After signing nobody marks (409 report_signed); the correction's author does, up to the
    most a report may hold (409 too_many_key_images), and the next version's figures follow."""
    service, li, cid = world["service"], world["li"], world["reading"]["cid"]
    refused = await mark(world, li)
    assert refused.status == 409
    assert (await refused.json())["error"] == "report_signed"
    opened = await service.client.post(report_url(cid, "/correction"), headers=li)
    assert opened.status == 200, await opened.text()
    listed = await (await service.client.get(report_url(cid, "/key-images"), headers=li)).json()
    assert len(listed["items"]) == 2 and listed["max_marked"] == 8 and listed["printed"] == 4
    for n in range(6):
        assert (await mark(world, li, caption=f"more {n}")).status == 201
    too_many = await mark(world, li)
    assert too_many.status == 409
    assert (await too_many.json())["error"] == "too_many_key_images"
    for item in (await listed_marks(world))[3:]:
        gone = await service.client.delete(report_url(cid, f"/key-images/{item['id']}"), headers=li)
        assert gone.status == 200
    signed = await sign(service, li, cid)
    assert signed.status == 201, await signed.text()
    figures = await service.client.get(report_url(cid, "/versions/2/figures"), headers=li)
    captions = [f["caption"] for f in (await figures.json())["items"]]
    assert captions == ["右肺上叶结节", "Second", "more 0"]
    first = await service.client.get(report_url(cid, "/versions/1/figures"), headers=li)
    assert len((await first.json())["items"]) == 2


async def listed_marks(world) -> list[dict[str, Any]]:
    url = report_url(world["reading"]["cid"], "/key-images")
    return (await (await world["service"].client.get(url, headers=world["li"])).json())["items"]


async def test_figures_rendered_from_marks_changed_meanwhile_are_not_kept(world):
    """Signing renders the marks, then records them in its one transaction: a mark changed in
    between (here: a caption) makes that transaction fail as ``draft_changed``."""
    service, cid = world["service"], world["reading"]["cid"]
    marks = await service.database.read(key_image_store.marks_of, cid)
    current = [key_images._mark_key(m) for m in marks]
    stale = [(mark_id, caption + " (old)", view) for mark_id, caption, view in current]
    figures = tuple(
        key_images.KeyFigure(ReportFigure(b"", "", "", ""), "1.2", "1.2.3", 1, cid, key)
        for key in stale
    )
    with pytest.raises(Conflict) as refused:
        await service.database.write(key_images.save_signed_figures, 1, figures)
    assert refused.value.code == "draft_changed"
