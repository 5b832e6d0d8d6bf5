"""Two-level sign-off (报告 + 审核, issue 19) end to end on a real Orthanc: a resident's signed
report waits for review and reaches nobody; the writer never reviews it, nor does a grade below
the rule's minimum; the reviewer approves (two PAdES signatures that pdfsig and pyHanko both
validate), returns it with a comment, or edits it; a stat report is released as preliminary and
replaced by the reviewed final version, and the clinic is told.

One app and one Orthanc for the module; each test reads its own consultation."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature

from service.auth.identities import trust_store
from service.clock import utc_now
from service.demo.synthetic import StudySpec, make_study
from service.http.keys import CA
from service.storage import consultations as consultation_store
from tests.conftest import PASSWORD, Service
from tests.module_app import running_service

FAST_DELIVERY = {"delivery_retry_seconds": 0.2, "delivery_max_attempts": 2}
STUDIES = {
    "approve": StudySpec("P-RV1", "李^四", "CR", "CHEST", accession_number="ACC-RV1"),
    "return": StudySpec("P-RV2", "赵^六", "CR", "CHEST", accession_number="ACC-RV2"),
    "stat": StudySpec("P-RV3", "钱^七", "CT", "HEAD", accession_number="ACC-RV3"),
    "figures": StudySpec("P-RV4", "孙^八", "CR", "CHEST", accession_number="ACC-RV4"),
}


@dataclasses.dataclass
class World:
    service: Service
    ids: dict[str, int]
    """Consultation ids by study key, user ids by username."""
    headers: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
async def world(tmp_path_factory, database_backend) -> AsyncIterator[World]:
    """Clinic A sent three studies; the centre has attending Li and Wu, residents Zhou and Qian."""
    directory = tmp_path_factory.mktemp("report_review")
    async with running_service(directory, **FAST_DELIVERY) as (service, _):
        clinic = await service.add_facility("青山镇卫生院", "township", "CLINIC_A")
        # the clinic has an HIS (nobody listens there): results queue with their OBR-25
        await service.database.write(
            lambda db: db.execute(
                "UPDATE facilities SET hl7_endpoint = '127.0.0.1:9' WHERE id = ?", [clinic]
            )
        )
        centre = await service.add_facility("县域影像中心", "regional", "CENTRE")
        ids = {}
        for name, role, facility in (
            ("dr_li", "specialist", centre),
            ("dr_wu", "specialist", centre),
            ("dr_zhou", "specialist", centre),
            ("dr_qian", "specialist", centre),
            ("doc_a", "clinician", clinic),
            ("boss", "manager", centre),
        ):
            ids[name] = await service.add_user(name, role, facility)
        await service.database.write(
            lambda db: db.execute(
                "UPDATE users SET grade = 'resident' WHERE username IN ('dr_zhou', 'dr_qian')"
            )
        )
        for spec in STUDIES.values():
            await service.c_store(make_study(spec), "CLINIC_A")
        headers = {name: await service.login(name) for name in ids}

        async def arrived():
            items = (await service.worklist(headers["dr_li"]))["items"]
            return items if len(items) == len(STUDIES) else None

        items = await service.wait_for(arrived, timeout=30)
        by_patient = {item["patient_id"]: item["id"] for item in items}
        for key, spec in STUDIES.items():
            ids[key] = by_patient[spec.patient_id]
        await service.database.write(
            consultation_store.update_consultation, ids["stat"], {"priority": "stat"}
        )
        yield World(service, ids, headers)


def url(cid: int, tail: str = "") -> str:
    return f"/api/consultations/{cid}{tail}"


async def post(world: World, who: str, path: str, body: Any = None):
    return await world.service.client.post(path, headers=world.headers[who], json=body)


async def claim(world: World, who: str, key: str):
    return await post(world, who, url(world.ids[key], "/claim"))


async def write_and_sign(world: World, who: str, key: str, *, preliminary: bool = False, **text):
    cid = world.ids[key]
    claimed = await claim(world, who, key)
    assert claimed.status == 200, await claimed.text()
    draft = text or {"findings": "两肺纹理清晰。", "impression": "胸部未见异常。"}
    saved = await world.service.client.put(
        url(cid, "/report/draft"), headers=world.headers[who], json=draft
    )
    assert saved.status == 200, await saved.text()
    body = {"password": PASSWORD} | ({"preliminary": True} if preliminary else {})
    return await post(world, who, url(cid, "/report/sign"), body)


async def report(world: World, who: str, key: str) -> dict[str, Any]:
    response = await world.service.client.get(
        url(world.ids[key], "/report"), headers=world.headers[who]
    )
    assert response.status == 200, await response.text()
    return await response.json()


async def status_of(world: World, key: str) -> str:
    row = await world.service.database.read(consultation_store.consultation_row, world.ids[key])
    return row["status"]


async def event_types(world: World, key: str) -> list[str]:
    rows = await world.service.database.read(
        lambda db: db.execute(
            "SELECT type FROM consultation_events WHERE consultation_id = ? ORDER BY id",
            [world.ids[key]],
        ).fetchall()
    )
    return [r[0] for r in rows]


async def issued_count(world: World, key: str) -> tuple[int, int]:
    """(report versions, Orthanc deliveries) of a consultation: what has left the reading room."""
    row = await world.service.database.read(
        lambda db: db.execute(
            "SELECT (SELECT COUNT(*) FROM report_versions v JOIN reports r ON r.id = v.report_id"
            "  WHERE r.consultation_id = ?),"
            " (SELECT COUNT(*) FROM report_deliveries d JOIN report_versions v"
            "  ON v.id = d.report_version_id JOIN reports r ON r.id = v.report_id"
            "  WHERE r.consultation_id = ?)",
            [world.ids[key], world.ids[key]],
        ).fetchone()
    )
    return row[0], row[1]


async def test_a_residents_signed_report_awaits_review_and_reaches_nobody(world):
    signed = await write_and_sign(world, "dr_zhou", "approve")
    assert signed.status == 201, await signed.text()
    answer = await signed.json()
    assert answer["awaiting_review"] is True and answer["pdf"] == ""
    assert await status_of(world, "approve") == "awaiting_review"
    assert await issued_count(world, "approve") == (0, 0)
    assert (await report(world, "doc_a", "approve"))["versions"] == []
    assert "written" in await event_types(world, "approve")
    queue = await world.service.worklist(world.headers["dr_li"], status="awaiting_review")
    assert [item["id"] for item in queue["items"]] == [world.ids["approve"]]
    mine = await report(world, "dr_zhou", "approve")
    assert mine["review"]["awaiting"]["writer_id"] == world.ids["dr_zhou"]


async def test_the_writer_never_reviews_their_own_report(world):
    refused = await claim(world, "dr_zhou", "approve")
    assert refused.status == 403
    assert (await refused.json())["error"] == "own_report"


async def test_a_grade_below_the_rules_minimum_may_not_review(world):
    refused = await claim(world, "dr_qian", "approve")
    assert refused.status == 403
    assert (await refused.json())["error"] == "grade_too_low"


async def test_the_writer_cannot_change_the_text_while_it_awaits_review(world):
    response = await world.service.client.put(
        url(world.ids["approve"], "/report/draft"),
        headers=world.headers["dr_zhou"],
        json={"impression": "changed"},
    )
    assert response.status == 409
    assert (await response.json())["error"] == "awaiting_review"


async def test_reviewing_needs_the_claim(world):
    response = await post(
        world, "dr_wu", url(world.ids["approve"], "/report/review/approve"), {"password": PASSWORD}
    )
    assert response.status == 409
    assert (await response.json())["error"] == "not_claim_holder"


async def test_approval_co_signs_and_issues_the_report(world):
    assert (await claim(world, "dr_li", "approve")).status == 200
    approved = await post(
        world, "dr_li", url(world.ids["approve"], "/report/review/approve"), {"password": PASSWORD}
    )
    assert approved.status == 201, await approved.text()
    assert (await approved.json())["version"] == 1
    assert await status_of(world, "approve") == "signed"
    clinic = await report(world, "doc_a", "approve")
    (version,) = clinic["versions"]
    assert version["reviewer_name"] == "dr_li" and version["signer_name"] == "dr_zhou"
    assert version["text_by"] == "writer" and not version["preliminary"]
    events = await event_types(world, "approve")
    assert events.index("written") < events.index("reviewed") < events.index("signed")

    async def delivered():
        return (await report(world, "dr_li", "approve"))["deliveries"][0]["status"] == "done"

    await world.service.wait_for(delivered, timeout=30)


async def _approved_pdf(world: World) -> bytes:
    response = await world.service.client.get(
        url(world.ids["approve"], "/report/versions/1/pdf"), headers=world.headers["doc_a"]
    )
    assert response.status == 200
    return await response.read()


async def test_pyhanko_validates_both_signatures_the_second_covering_the_first(world):
    pdf = await _approved_pdf(world)
    trust = await world.service.database.read(trust_store, world.service.app[CA], utc_now())
    context = trust.validation_context(None)
    reader = PdfFileReader(io.BytesIO(pdf))
    writer_sig, reviewer_sig = reader.embedded_regular_signatures
    assert writer_sig.field_name == "TelereadSignature"
    assert reviewer_sig.field_name == "TelereadReview"
    for signature in (writer_sig, reviewer_sig):
        status = await async_validate_pdf_signature(signature, context)
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert reviewer_sig.signed_revision > writer_sig.signed_revision
    assert reviewer_sig.signer_cert.subject != writer_sig.signer_cert.subject


async def test_the_public_verification_page_names_both_physicians(world):
    clinic = await report(world, "doc_a", "approve")
    (version,) = clinic["versions"]
    page = await world.service.client.get(f"/verify/{version['verification_code']}")
    assert page.status == 200
    html = await page.text()
    assert 'id="verify-signer">dr_zhou<' in html and 'id="verify-reviewer">dr_li<' in html
    checked = await world.service.client.post("/api/verify", data=await _approved_pdf(world))
    verdict = await checked.json()
    assert verdict["valid"] is True and verdict["signer"] == "dr_zhou", verdict
    assert [c["signer"] for c in verdict["checks"]["pdf"]["co_signers"]] == ["dr_li"]


async def test_pdfsig_validates_both_signatures(world, tmp_path):
    path = tmp_path / "approved.pdf"
    path.write_bytes(await _approved_pdf(world))
    done = await asyncio.to_thread(
        subprocess.run, ["pdfsig", str(path)], capture_output=True, text=True, timeout=60
    )
    blocks = [b for b in done.stdout.split("Signature #")[1:] if "ETSI.CAdES.detached" in b]
    assert len(blocks) == 2, done.stdout
    for block in blocks:
        assert "Signature is Valid." in block, done.stdout


async def test_return_with_a_comment_goes_back_to_the_writer(world):
    refused = await write_and_sign(world, "dr_zhou", "return", preliminary=True)
    assert refused.status == 409  # routine: no preliminary release
    assert (await refused.json())["error"] == "preliminary_not_allowed"
    signed = await post(world, "dr_zhou", url(world.ids["return"], "/report/sign"),
                        {"password": PASSWORD})  # fmt: skip
    assert signed.status == 201, await signed.text()
    handed = await post(
        world, "boss", url(world.ids["return"], "/reassign"), {"user_id": world.ids["dr_zhou"]}
    )
    assert handed.status == 400  # a manager cannot hand the review to the writer either
    assert "own_report" in (await handed.json())["detail"]
    assert (await claim(world, "dr_wu", "return")).status == 200
    empty = await post(world, "dr_wu", url(world.ids["return"], "/report/review/return"),
                       {"comment": " "})  # fmt: skip
    assert empty.status == 400
    returned = await post(
        world,
        "dr_wu",
        url(world.ids["return"], "/report/review/return"),
        {"comment": "请补充纵隔描述。"},
    )
    assert returned.status == 200, await returned.text()
    assert await status_of(world, "return") == "ready"
    mine = await report(world, "dr_zhou", "return")
    assert mine["review"]["returned"]["comment"] == "请补充纵隔描述。"
    assert mine["review"]["awaiting"] is None
    assert "returned" in await event_types(world, "return")
    # The writer holds the claim again, edits and signs again.
    saved = await world.service.client.put(
        url(world.ids["return"], "/report/draft"),
        headers=world.headers["dr_zhou"],
        json={"findings": "两肺纹理清晰，纵隔居中。"},
    )
    assert saved.status == 200, await saved.text()
    again = await post(world, "dr_zhou", url(world.ids["return"], "/report/sign"),
                       {"password": PASSWORD})  # fmt: skip
    assert again.status == 201, await again.text()
    assert await status_of(world, "return") == "awaiting_review"
    assert await issued_count(world, "return") == (0, 0)


async def test_an_edit_issues_the_reviewers_text_and_keeps_the_writers(world):
    assert (await claim(world, "dr_wu", "return")).status == 200
    edited = await post(
        world,
        "dr_wu",
        url(world.ids["return"], "/report/review/edit"),
        {"password": PASSWORD, "impression": "胸部未见明确异常，建议随访。"},
    )
    assert edited.status == 201, await edited.text()
    (version,) = (await report(world, "doc_a", "return"))["versions"]
    assert version["impression"] == "胸部未见明确异常，建议随访。"
    assert version["findings"] == "两肺纹理清晰，纵隔居中。"  # kept from the writer
    assert version["text_by"] == "reviewer" and version["reviewer_name"] == "dr_wu"
    history = (await report(world, "dr_li", "return"))["review"]["history"]
    assert [h["state"] for h in history] == ["returned", "edited"]
    assert history[-1]["impression"] == "胸部未见异常。" and history[-1]["writer_name"] == "dr_zhou"


async def portal_item(world: World, key: str) -> dict[str, Any]:
    response = await world.service.client.get("/api/portal/reports", headers=world.headers["doc_a"])
    (item,) = [
        i for i in (await response.json())["items"] if i["consultation_id"] == world.ids[key]
    ]
    return {"version": item["version"], "preliminary": item["preliminary"]}


async def test_a_stat_report_is_released_as_preliminary_then_replaced(world):
    signed = await write_and_sign(world, "dr_zhou", "stat", preliminary=True)
    assert signed.status == 201, await signed.text()
    answer = await signed.json()
    assert answer["preliminary"] is True and answer["version"] == 1 and answer["pdf"]
    assert await status_of(world, "stat") == "awaiting_review"
    (preliminary,) = (await report(world, "doc_a", "stat"))["versions"]
    assert preliminary["preliminary"] is True and preliminary["reviewer_name"] == ""
    assert (await issued_count(world, "stat"))[0] == 1
    assert await portal_item(world, "stat") == {"version": 1, "preliminary": True}

    assert (await claim(world, "dr_li", "stat")).status == 200
    approved = await post(
        world, "dr_li", url(world.ids["stat"], "/report/review/approve"), {"password": PASSWORD}
    )
    assert approved.status == 201, await approved.text()
    first, final = (await report(world, "doc_a", "stat"))["versions"]
    assert first["preliminary"] and first["superseded"]
    assert final["version"] == 2 and final["supersedes_version"] == 1
    assert not final["preliminary"] and not final["superseded"]
    assert final["reviewer_name"] == "dr_li"
    assert "final_notified" in await event_types(world, "stat")
    assert await portal_item(world, "stat") == {"version": 2, "preliminary": False}
    notices = await world.service.client.get("/api/notifications", headers=world.headers["doc_a"])
    items = (await notices.json())["items"]
    assert any(n["message"] == "report_final" for n in items), items
    results = await world.service.database.read(
        lambda db: db.execute(
            "SELECT v.version, o.result_status FROM hl7_outbox o JOIN report_versions v"
            " ON v.id = o.report_version_id WHERE o.consultation_id = ? ORDER BY v.version",
            [world.ids["stat"]],
        ).fetchall()
    )
    # HL7 OBR-25: the preliminary went to the HIS as P, the reviewed replacement as F
    assert [tuple(r) for r in results] == [(1, "P"), (2, "F")]


async def _pdf(world: World, key: str, version: int) -> bytes:
    response = await world.service.client.get(
        url(world.ids[key], f"/report/versions/{version}/pdf"), headers=world.headers["doc_a"]
    )
    assert response.status == 200
    return await response.read()


async def _pages_text(pdf: bytes, tmp_path, name: str) -> list[str]:
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    done = await asyncio.to_thread(
        subprocess.run, ["pdftotext", str(path), "-"], capture_output=True, text=True, timeout=60
    )
    return [page for page in done.stdout.split("\f") if page.strip()]


async def test_only_the_preliminary_pdf_is_marked_preliminary(world, tmp_path):
    """Runs after the stat report was released and replaced (module order)."""
    preliminary = await _pages_text(await _pdf(world, "stat", 1), tmp_path, "preliminary")
    assert preliminary and all("初步报告" in page for page in preliminary)
    final = await _pages_text(await _pdf(world, "stat", 2), tmp_path, "final")
    assert final and not any("初步报告" in page for page in final)
    assert all("审核医师" in page for page in final[-1:])


async def test_key_images_signed_for_review_are_issued_with_the_reviewed_version(world, tmp_path):
    """The writer's key image is rendered at the writer's signature, its digest under both
    signatures, and the issued version (and its PDF) carries that very figure."""
    cid = world.ids["figures"]
    assert (await claim(world, "dr_qian", "figures")).status == 200
    manifest = await (
        await world.service.client.get(
            f"/api/consultations/{cid}/viewer", headers=world.headers["dr_qian"]
        )
    ).json()
    series = manifest["series"][0]
    view = {
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
    marked = await post(
        world,
        "dr_qian",
        url(cid, "/report/key-images"),
        {
            "series_instance_uid": series["uid"],
            "sop_instance_uid": series["instances"][0]["uid"],
            "frame": 1,
            "caption": "右下肺",
            "view": view,
        },
    )
    assert marked.status == 201, await marked.text()
    # the clinic's chest X-rays are on the mutual-recognition list (issue 20): the mark is printed
    await world.service.database.write(
        lambda db: db.execute(
            "INSERT INTO recognition_changes (facility_id, modality, body_part, change, at,"
            " reasons, totals, rules, months) SELECT facility_id, 'CR', 'CHEST', 'added',"
            " '2026-01-01T00:00:00.000000Z', '[]', '{}', '{}', '[]' FROM consultations"
            " WHERE id = ?",
            [cid],
        )
    )
    draft = {
        "findings": "右下肺小结节。",
        "impression": "右下肺结节，建议随访。",
        "technical_flagged": True,  # issue 20: counted in the clinic's QC scores
    }
    saved = await world.service.client.put(
        url(cid, "/report/draft"), headers=world.headers["dr_qian"], json=draft
    )
    assert saved.status == 200, await saved.text()
    assert (await report(world, "dr_qian", "figures"))["draft"]["technical_flagged"] == 1
    flagged = await world.service.database.read(
        lambda db: db.execute(
            "SELECT technical_flagged FROM reports WHERE consultation_id = ?", [cid]
        ).fetchone()[0]
    )
    assert flagged == 1
    signed = await post(world, "dr_qian", url(cid, "/report/sign"), {"password": PASSWORD})
    assert signed.status == 201, await signed.text()
    assert await status_of(world, "figures") == "awaiting_review"
    held = await world.service.database.read(
        lambda db: db.execute(
            "SELECT f.sha256 FROM report_review_figures f JOIN report_reviews r"
            " ON r.id = f.review_id WHERE r.consultation_id = ?",
            [cid],
        ).fetchall()
    )
    assert len(held) == 1

    assert (await claim(world, "dr_li", "figures")).status == 200
    approved = await post(
        world, "dr_li", url(cid, "/report/review/approve"), {"password": PASSWORD}
    )
    assert approved.status == 201, await approved.text()
    listed = await world.service.client.get(
        url(cid, "/report/versions/1/figures"), headers=world.headers["doc_a"]
    )
    assert listed.status == 200
    items = (await listed.json())["items"]
    assert [(i["caption"], i["sha256"]) for i in items] == [("右下肺", held[0][0])]
    path = tmp_path / "figures.pdf"
    path.write_bytes(await _pdf(world, "figures", 1))
    images = await asyncio.to_thread(
        subprocess.run, ["pdfimages", "-list", str(path)], capture_output=True, text=True
    )
    rows = [line for line in images.stdout.splitlines()[2:] if line.split()[2] == "image"]
    assert len(rows) >= 1, images.stdout
    reader = PdfFileReader(io.BytesIO(path.read_bytes()))
    assert len(reader.embedded_regular_signatures) == 2
    text = "".join(await _pages_text(path.read_bytes(), tmp_path, "recognised"))
    assert "医联体内互认" in text.replace(" ", "")
    (version,) = (await report(world, "doc_a", "figures"))["versions"]
    assert version["recognised"] is True
    stat = (await report(world, "doc_a", "stat"))["versions"]
    assert [v["recognised"] for v in stat] == [False, False]  # CT head is not on the list


async def test_turnaround_gains_the_written_to_reviewed_stage(world):
    response = await world.service.client.get("/api/turnaround", headers=world.headers["dr_li"])
    assert response.status == 200, await response.text()
    stages = (await response.json())["review_stages"]
    # approved, edited, stat final, the key images one
    assert stages["written_to_reviewed"]["count"] == 4
    assert stages["claimed_to_written"]["count"] == 4
    assert stages["written_to_reviewed"]["p50"] >= 0
