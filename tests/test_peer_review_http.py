"""Peer review of issued reports over HTTP (issue 20 item 1) on a real Orthanc: an issued
report is drawn, a reviewer takes it blind (never the first reader's name), scores it RADPEER;
a "b" opens a discrepancy the first reader is told about and answers, a correction is linked,
a manager closes it; nobody reviews their own or co-signed report; scoping holds.

One app and one Orthanc for the module; the rules draw every issued report (share 100 %) so
the flow is deterministic (the share itself is tested in tests/test_peer_review_rules.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from service.demo.synthetic import StudySpec, make_study
from tests.conftest import PASSWORD, Service
from tests.module_app import running_service

READER_NAME = "李明华"
STUDIES = {
    "flow": StudySpec("P-PR1", "王^五", "CR", "CHEST", accession_number="ACC-PR1"),
    "agree": StudySpec("P-PR2", "赵^六", "CR", "CHEST", accession_number="ACC-PR2"),
    "cosigned": StudySpec("P-PR3", "钱^七", "CR", "CHEST", accession_number="ACC-PR3"),
    "unread": StudySpec("P-PR4", "孙^八", "CR", "CHEST", accession_number="ACC-PR4"),
}


@dataclasses.dataclass
class World:
    service: Service
    ids: dict[str, int]
    headers: dict[str, dict[str, str]]
    reviews: dict[str, int]


async def _sign(service: Service, headers: dict[str, str], cid: int) -> None:
    client = service.client
    claimed = await client.post(f"/api/consultations/{cid}/claim", headers=headers)
    assert claimed.status == 200, await claimed.text()
    draft = {"findings": "两肺纹理清晰。", "impression": "胸部未见异常。"}
    saved = await client.put(f"/api/consultations/{cid}/report/draft", headers=headers, json=draft)
    assert saved.status == 200, await saved.text()
    signed = await client.post(
        f"/api/consultations/{cid}/report/sign", headers=headers, json={"password": PASSWORD}
    )
    assert signed.status == 201, await signed.text()


@pytest.fixture(scope="module")
async def world(tmp_path_factory, database_backend) -> AsyncIterator[World]:
    """Clinic A sent four studies; Li (display name 李明华) reads three; the rules draw all."""
    directory = tmp_path_factory.mktemp("peer_review")
    rules = directory / "rules.toml"
    rules.write_text("[peer_review]\nshare_percent = 100\n", encoding="utf-8")
    async with running_service(directory, worklist_rules=rules) as (
        service,
        _,
    ):
        clinic = await service.add_facility("青山镇卫生院", "township", "CLINIC_A")
        other = await service.add_facility("白水镇卫生院", "township", "CLINIC_B")
        centre = await service.add_facility("县域影像中心", "regional", "CENTRE")
        ids = {}
        for name, role, facility in (
            ("dr_li", "specialist", centre),
            ("dr_wu", "specialist", centre),
            ("dr_he", "specialist", centre),
            ("boss", "manager", centre),
            ("doc_a", "clinician", clinic),
            ("spec_b", "specialist", other),
            ("mgr_b", "manager", other),
        ):
            ids[name] = await service.add_user(name, role, facility)
        await service.database.write(
            lambda db: db.execute(
                "UPDATE users SET display_name = ? WHERE username = 'dr_li'", [READER_NAME]
            )
        )
        for spec in STUDIES.values():
            await service.c_store(make_study(spec), "CLINIC_A")
        headers = {name: await service.login(name) for name in ids}

        async def arrived():
            items = (await service.worklist(headers["dr_li"]))["items"]
            return items if len(items) == len(STUDIES) else None

        items = await service.wait_for(arrived, timeout=30)
        for key, spec in STUDIES.items():
            ids[key] = next(i["id"] for i in items if i["patient_id"] == spec.patient_id)
        for key in ("flow", "agree", "cosigned"):
            await _sign(service, headers["dr_li"], ids[key])
        # dr_he co-signed the third as its reviewing physician (审核医师)
        await service.database.write(
            lambda db: db.execute(
                "UPDATE report_versions SET reviewer_id = ? WHERE report_id ="
                " (SELECT id FROM reports WHERE consultation_id = ?)",
                [ids["dr_he"], ids["cosigned"]],
            )
        )
        queue = await service.client.get("/api/peer-reviews", headers=headers["dr_wu"])
        assert queue.status == 200, await queue.text()
        reviews = {
            key: next(i["id"] for i in (await queue.json())["items"] if i["consultation_id"] == cid)
            for key, cid in ids.items()
            if key in ("flow", "agree", "cosigned")
        }
        yield World(service, ids, headers, reviews)


async def call(world: World, who: str, method: str, path: str, body: Any = None):
    return await world.service.client.request(method, path, headers=world.headers[who], json=body)


async def test_every_issued_report_is_drawn_once_at_full_share(world):
    queue = await (await call(world, "dr_wu", "GET", "/api/peer-reviews")).json()
    drawn = sorted(i["consultation_id"] for i in queue["items"])
    assert drawn == sorted(world.ids[k] for k in ("flow", "agree", "cosigned"))
    assert all(i["origin"] == "sampled" for i in queue["items"])


async def test_the_first_reader_never_sees_their_own_report_on_the_queue(world):
    queue = await (await call(world, "dr_li", "GET", "/api/peer-reviews")).json()
    assert queue["items"] == []


async def test_the_first_reader_is_refused_their_own_review(world):
    path = f"/api/peer-reviews/{world.reviews['agree']}/claim"
    refused = await call(world, "dr_li", "POST", path)
    assert refused.status == 403
    assert (await refused.json())["error"] == "own_report"


async def test_the_co_signer_is_refused_and_does_not_see_it(world):
    refused = await call(
        world, "dr_he", "POST", f"/api/peer-reviews/{world.reviews['cosigned']}/claim"
    )
    assert refused.status == 403
    assert (await refused.json())["error"] == "co_signed"
    queue = await (await call(world, "dr_he", "GET", "/api/peer-reviews")).json()
    assert world.ids["cosigned"] not in {i["consultation_id"] for i in queue["items"]}


async def test_the_reviewer_never_sees_the_first_readers_name(world):
    rid = world.reviews["flow"]
    for path in ("/api/peer-reviews", f"/api/peer-reviews/{rid}"):
        response = await call(world, "dr_wu", "GET", path)
        assert response.status == 200
        text = await response.text()
        assert READER_NAME not in text and "dr_li" not in text
        assert str(world.ids["dr_li"]) not in [str(v) for v in _values(await response.json())]
    review = (await (await call(world, "dr_wu", "GET", f"/api/peer-reviews/{rid}")).json())[
        "review"
    ]
    assert review["impression"] == "胸部未见异常。"


def _values(data: Any) -> list[Any]:
    """Every value of the id-like fields a reviewer is sent (reader_id must never be one)."""
    if isinstance(data, dict):
        return [v for k, v in data.items() if k.endswith("reader_id")] + [
            x for v in data.values() for x in _values(v)
        ]
    if isinstance(data, list):
        return [x for v in data for x in _values(v)]
    return []


async def test_scoring_needs_a_claim_and_a_comment_for_two_to_four(world):
    rid = world.reviews["agree"]
    unclaimed = await call(world, "dr_he", "POST", f"/api/peer-reviews/{rid}/score", {"score": 1})
    assert unclaimed.status == 409
    assert (await call(world, "dr_he", "POST", f"/api/peer-reviews/{rid}/claim")).status == 200
    held = await call(world, "dr_wu", "POST", f"/api/peer-reviews/{rid}/claim")
    assert held.status == 409 and (await held.json())["error"] == "claimed"
    silent = await call(
        world, "dr_he", "POST", f"/api/peer-reviews/{rid}/score", {"score": 2, "significance": "a"}
    )
    assert silent.status == 400 and (await silent.json())["error"] == "comment_required"
    agreed = await call(world, "dr_he", "POST", f"/api/peer-reviews/{rid}/score", {"score": 1})
    assert agreed.status == 201
    assert await agreed.json() == {"id": rid, "score": "1", "discrepancy": False}


async def test_a_clinically_significant_score_runs_to_a_linked_correction_and_is_closed(world):
    rid, cid = world.reviews["flow"], world.ids["flow"]
    assert (await call(world, "dr_wu", "POST", f"/api/peer-reviews/{rid}/claim")).status == 200
    body = {"score": 3, "significance": "b", "comment": "右下肺结节漏诊。"}
    scored = await call(world, "dr_wu", "POST", f"/api/peer-reviews/{rid}/score", body)
    assert scored.status == 201
    assert (await scored.json())["discrepancy"] is True
    # the first reader is told, in their language, and sees the discrepancy
    notices = await (await call(world, "dr_li", "GET", "/api/notifications")).json()
    assert any(n["message"] == "peer_discrepancy" for n in notices["items"])
    mine = await (await call(world, "dr_li", "GET", "/api/peer-reviews/discrepancies")).json()
    assert [d["id"] for d in mine["items"]] == [rid]
    # the reviewer is not the first reader: no answer from them
    wrong = await call(world, "dr_wu", "POST", f"/api/peer-reviews/{rid}/answer", {"answer": "x"})
    assert wrong.status in (403, 404)
    answered = await call(
        world, "dr_li", "POST", f"/api/peer-reviews/{rid}/answer", {"answer": "同意，已更正。"}
    )
    assert answered.status == 200
    assert (await answered.json())["discrepancy"]["discrepancy"] == "answered"
    # the correction through the existing flow
    headers = world.headers["dr_li"]
    client = world.service.client
    opened = await client.post(f"/api/consultations/{cid}/report/correction", headers=headers)
    assert opened.status in (200, 201), await opened.text()
    draft = {"impression": "右下肺结节，建议CT随访。"}
    saved = await client.put(f"/api/consultations/{cid}/report/draft", headers=headers, json=draft)
    assert saved.status == 200, await saved.text()
    signed = await client.post(
        f"/api/consultations/{cid}/report/sign", headers=headers, json={"password": PASSWORD}
    )
    assert signed.status == 201, await signed.text()
    # a clinic role may not close; the manager closes and the correction is linked
    denied = await call(world, "doc_a", "POST", f"/api/peer-reviews/{rid}/close", {"outcome": "x"})
    assert denied.status == 403
    closed = await call(
        world, "boss", "POST", f"/api/peer-reviews/{rid}/close", {"outcome": "更正已发布。"}
    )
    assert closed.status == 200, await closed.text()
    discrepancy = (await closed.json())["discrepancy"]
    assert discrepancy["discrepancy"] == "closed"
    assert discrepancy["correction_version_id"] is not None
    again = await call(world, "boss", "POST", f"/api/peer-reviews/{rid}/close", {"outcome": "x"})
    assert again.status == 409
    # the correction is not drawn again
    queue = await (await call(world, "dr_wu", "GET", "/api/peer-reviews")).json()
    assert cid not in {i["consultation_id"] for i in queue["items"]}


async def test_another_facility_gets_404_and_a_clinic_role_403(world):
    rid = world.reviews["cosigned"]
    assert (await call(world, "spec_b", "GET", f"/api/peer-reviews/{rid}")).status == 404
    assert (await call(world, "spec_b", "POST", f"/api/peer-reviews/{rid}/claim")).status == 404
    assert (await call(world, "doc_a", "GET", "/api/peer-reviews")).status == 403
    assert (await call(world, "doc_a", "GET", f"/api/peer-reviews/{rid}")).status == 403
    picked = await call(
        world, "mgr_b", "POST", f"/api/consultations/{world.ids['agree']}/peer-review"
    )
    assert picked.status == 403  # only the centre's managers pick


async def test_a_manager_picks_a_report_once_and_only_an_issued_one(world):
    already = await call(
        world, "boss", "POST", f"/api/consultations/{world.ids['agree']}/peer-review"
    )
    assert already.status == 200 and (await already.json())["already"] is True
    unread = await call(
        world, "boss", "POST", f"/api/consultations/{world.ids['unread']}/peer-review"
    )
    assert unread.status == 409 and (await unread.json())["error"] == "not_issued"


async def test_reader_figures_are_the_managers_and_each_readers_own(world):
    figures = await (await call(world, "boss", "GET", "/api/peer-reviews/figures")).json()
    li = next(f for f in figures["items"] if f["reader_id"] == world.ids["dr_li"])
    assert li["reviewed"] >= 1
    own = await (await call(world, "dr_wu", "GET", "/api/peer-reviews/figures")).json()
    assert all(f["reader_id"] == world.ids["dr_wu"] for f in own["items"])


async def test_the_review_page_is_blind_and_in_the_readers_language(world):
    """The reviewer's HTML pages (queue and review) never name the first reader."""
    rid = world.reviews["cosigned"]
    for path in ("/peer-reviews", f"/peer-reviews/{rid}", f"/peer-reviews/{rid}?lang=zh_CN"):
        response = await call(world, "dr_wu", "GET", path)
        assert response.status == 200, path
        html = await response.text()
        assert READER_NAME not in html and "dr_li" not in html, path
    assert "RADPEER 评分" in html and "胸部未见异常。" in html


async def test_the_discrepancy_page_offers_the_reader_a_correction_and_the_manager_closing(world):
    rid = world.reviews["flow"]
    reader = await (await call(world, "dr_li", "GET", f"/peer-reviews/{rid}/discrepancy")).text()
    assert "右下肺结节漏诊。" in reader
    manager = await call(world, "boss", "GET", f"/peer-reviews/{rid}/discrepancy")
    assert manager.status == 200
    assert (await call(world, "dr_wu", "GET", f"/peer-reviews/{rid}/discrepancy")).status == 404


async def test_the_dashboard_shows_peer_review_figures_to_managers_and_readers_their_own(world):
    boss = await (await call(world, "boss", "GET", "/dashboard")).text()
    assert "dashboard-peer-figures" in boss and READER_NAME in boss
    wu = await (await call(world, "dr_wu", "GET", "/dashboard")).text()
    assert "dashboard-peer-figures" in wu and READER_NAME not in wu
    clinic = await (await call(world, "doc_a", "GET", "/dashboard")).text()
    assert "dashboard-peer-figures" not in clinic


async def test_the_images_the_review_links_to_do_not_name_the_first_reader(world):
    """The review page's link opens the viewer; neither its page nor its API names Li."""
    cid = world.ids["cosigned"]
    for path in (f"/viewer/{cid}", f"/api/consultations/{cid}/viewer"):
        response = await call(world, "dr_wu", "GET", path)
        assert response.status == 200, path
        text = await response.text()
        assert READER_NAME not in text and "dr_li" not in text, path


async def test_an_expired_claim_is_taken_over_by_another_reviewer(world):
    rid = world.reviews["cosigned"]
    assert (await call(world, "dr_wu", "POST", f"/api/peer-reviews/{rid}/claim")).status == 200
    boss_claim = await call(world, "boss", "POST", f"/api/peer-reviews/{rid}/claim")
    assert boss_claim.status == 409
    await world.service.database.write(
        lambda db: db.execute(
            "UPDATE peer_reviews SET claim_expires_at = '2020-01-01T00:00:00.000000Z' WHERE id = ?",
            [rid],
        )
    )
    taken = await call(world, "boss", "POST", f"/api/peer-reviews/{rid}/claim")
    assert taken.status == 200 and (await taken.json())["claimed_by_me"] is True
    late = await call(world, "dr_wu", "POST", f"/api/peer-reviews/{rid}/score", {"score": 1})
    assert late.status == 409 and (await late.json())["error"] == "not_claimed"
