"""Demo data: a consortium of three township clinics, a county hospital and the regional centre.

Studies are generated with pydicom and sent by C-STORE from each clinic's AE title to Orthanc, so
the demo exercises the real path (DICOM in, change feed, consultation, worklist). Some requests
are filed before their images arrive, some after, and some never, so every status shows.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from worklists.priorities import Priority
from worklists.sla import SlaPolicy

from ..auth.passwords import hash_password
from ..clock import utc_now
from ..dicom.send import send_datasets
from ..intake.intake import ConsultationRequest, file_request
from ..storage import Database
from ..storage import consultations as store
from ..storage import facilities as facility_store
from ..storage import users as user_store
from .synthetic import StudySpec, make_study

log = logging.getLogger(__name__)

DEMO_PASSWORD = "teleread-demo"


@dataclass(frozen=True)
class DemoFacility:
    key: str
    name: str
    kind: str
    aet: str
    character_set: str = "ISO_IR 192"  # of its modalities (worklist items)


FACILITIES = (
    DemoFacility("centre", "Regional Imaging Centre", "regional", "REGIONAL_IC"),
    DemoFacility("dongxiang", "Dongxiang Township Health Centre", "township", "DONGXIANG_DR"),
    DemoFacility("xiping", "Xiping Township Health Centre", "township", "XIPING_CT", "GB18030"),
    DemoFacility("nanhe", "Nanhe Township Health Centre", "township", "NANHE_DR"),
    DemoFacility("county", "County People's Hospital", "county", "COUNTY_CT"),
)

USERS = (
    ("admin", "admin", "centre", "Administrator"),
    ("sun", "manager", "centre", "Director Sun"),
    ("dr.li", "specialist", "centre", "Dr Li"),
    ("dr.zhou", "specialist", "centre", "Dr Zhou"),
    ("wang", "radiographer", "dongxiang", "Wang Fang"),
    ("chen", "clinician", "dongxiang", "Dr Chen"),
    ("liu", "radiographer", "xiping", "Liu Yang"),
    ("he", "radiographer", "nanhe", "He Ming"),
    ("zhao", "requester", "county", "Dr Zhao"),
)
# How the SR names the demo's signer (teleread user dicom-name): Han and pinyin groups too.
DICOM_NAMES = {"dr.li": "Li^Ming^^Dr=李^明=lǐ^míng"}
# Professional grades other than attending: Dr Zhou is a resident (住院医师), so the shipped
# [review] rule sends the reports she signs to a reviewer (dr.li, an attending).
GRADES = {"dr.zhou": "resident"}


@dataclass(frozen=True)
class DemoStudy:
    facility: str
    spec: StudySpec
    request: ConsultationRequest | None = None
    request_first: bool = False


def demo_studies(now: datetime) -> list[DemoStudy]:
    def spec(
        pid: str,
        name: str,
        modality: str,
        part: str,
        n: int,
        acc: str,
        charset: str = "ISO_IR 192",
        sex: str = "O",
        birth: str = "",
    ) -> StudySpec:
        return StudySpec(
            patient_id=pid,
            patient_name=name,
            modality=modality,
            body_part=part,
            instances=n,
            charset=charset,
            accession_number=acc,
            patient_sex=sex,
            patient_birth_date=birth,
            study_datetime=now.replace(tzinfo=None),
        )

    return [
        DemoStudy(
            "dongxiang",
            spec("DX0001", "张伟", "CR", "CHEST", 1, "DX24001", "GB18030", "M", "19580312"),
            ConsultationRequest(
                Priority.ROUTINE,
                clinical_history="Cough for 3 weeks",
                clinical_question="Pneumonia? Tuberculosis?",
            ),
        ),
        DemoStudy(
            "dongxiang",
            spec("DX0002", "李秀英", "CR", "KNEE", 2, "DX24002", "ISO_IR 192", "F", "19610704"),
        ),
        DemoStudy(
            "xiping",
            spec("XP0107", "王建国", "CT", "HEAD", 12, "XP24107", "GB18030", "M", "19470102"),
            ConsultationRequest(
                Priority.URGENT,
                clinical_history="Fall at home, age 79",
                clinical_question="Intracranial haemorrhage? Fracture?",
            ),
            request_first=True,
        ),
        DemoStudy(
            "nanhe", spec("NH0033", "赵敏", "CR", "CHEST", 1, "NH24033", "GBK", "F", "19900215")
        ),
        DemoStudy(
            "county",
            spec("CY8812", "陈国强", "CT", "HEAD", 16, "CY248812", "ISO_IR 192", "M", "19590920"),
            ConsultationRequest(
                Priority.STAT,
                clinical_history="Sudden left weakness, onset 40 min ago",
                clinical_question="Haemorrhage? Thrombolysis candidate?",
                callback_phone="0731-5550123",
            ),
            request_first=True,
        ),
        DemoStudy(
            "county",
            spec(
                "CY8820", "ZHOU^LEI", "MR", "LSPINE", 10, "CY248820", "ISO_IR 100", "M", "19751111"
            ),
        ),
    ]


def seed_accounts(database: Database) -> dict[str, int]:
    """Create the demo facilities and users (idempotent); returns facility ids by key."""

    def seed(db) -> dict[str, int]:
        ids: dict[str, int] = {}
        for facility in FACILITIES:
            existing = facility_store.facility_by_aet(db, facility.aet)
            ids[facility.key] = (
                existing["id"]
                if existing
                else facility_store.add_facility(
                    db,
                    name=facility.name,
                    kind=facility.kind,
                    aet=facility.aet,
                    timezone="Asia/Shanghai",
                    character_set=facility.character_set,
                )
            )
        for username, role, facility_key, display in USERS:
            if user_store.user_by_username(db, username) is None:
                user_store.add_user(
                    db,
                    username=username,
                    password_hash=password_hash,
                    role=role,
                    facility_id=ids[facility_key],
                    display_name=display,
                    dicom_name=DICOM_NAMES.get(username, ""),
                    grade=GRADES.get(username, "attending"),
                )
        return ids

    password_hash = hash_password(DEMO_PASSWORD)
    return database.write_sync(seed)


async def send_demo_studies(
    database: Database,
    facility_ids: dict[str, int],
    *,
    dicom_host: str,
    dicom_port: int,
    called_aet: str,
    sla: SlaPolicy,
) -> int:
    """File the demo requests and C-STORE the demo studies from each clinic's AE title."""
    loop = asyncio.get_running_loop()
    aets = {f.key: f.aet for f in FACILITIES}
    users = {"dongxiang": "wang", "xiping": "liu", "nanhe": "he", "county": "zhao"}
    sent = 0
    waiting: list[asyncio.Task[None]] = []
    for study in demo_studies(utc_now()):
        datasets = await loop.run_in_executor(None, make_study, study.spec)
        request = study.request
        if request is not None:
            request = ConsultationRequest(
                **{
                    **request.__dict__,
                    "accession_number": study.spec.accession_number,
                    "study_instance_uid": str(datasets[0].StudyInstanceUID),
                }
            )
        user = await database.read(user_store.user_by_username, users[study.facility])
        if request is not None and study.request_first:
            await database.write(
                file_request,
                request,
                facility_id=facility_ids[study.facility],
                user_id=user["id"],
                now=utc_now(),
                sla=sla,
            )
        result = await loop.run_in_executor(
            None,
            partial(
                send_datasets,
                datasets,
                host=dicom_host,
                port=dicom_port,
                calling_aet=aets[study.facility],
                called_aet=called_aet,
            ),
        )
        sent += result.sent
        if request is not None and not study.request_first:
            waiting.append(
                asyncio.create_task(
                    _file_when_received(
                        database, request, facility_ids[study.facility], user["id"], sla
                    )
                )
            )
    await asyncio.gather(*waiting)
    return sent


#: A request Xiping filed for a patient who is on the way: no image yet, so its CT is on the
#: modality worklist of XIPING_CT (docs/integration.md queries it with findscu).
SCHEDULED = ConsultationRequest(
    Priority.ROUTINE,
    accession_number="XP24118",
    patient_id="XP0118",
    patient_name="孙^丽",
    patient_birth_date="19720408",
    patient_sex="F",
    modality="CT",
    body_part="CHEST",
    requested_procedure="胸部 CT 平扫",
    clinical_history="Fever and cough for 10 days",
    clinical_question="Pneumonia?",
)


async def file_scheduled_request(
    database: Database, facility_ids: dict[str, int], sla: SlaPolicy
) -> int:
    """File :data:`SCHEDULED` as Liu, Xiping's radiographer; its consultation id."""
    user = await database.read(user_store.user_by_username, "liu")
    consultation_id, _ = await database.write(
        file_request,
        SCHEDULED,
        facility_id=facility_ids["xiping"],
        user_id=user["id"],
        now=utc_now(),
        sla=sla,
    )
    return consultation_id


async def _file_when_received(
    database: Database, request: ConsultationRequest, facility_id: int, user_id: int, sla: SlaPolicy
) -> None:
    """A radiographer adds the request once the images show up (as Wang does in the morning)."""
    for _ in range(600):
        row = await database.read(
            store.find_for_study, facility_id, request.study_instance_uid or "", ""
        )
        if row is not None:
            await database.write(
                file_request,
                request,
                facility_id=facility_id,
                user_id=user_id,
                now=utc_now(),
                sla=sla,
            )
            return
        await asyncio.sleep(0.5)
    log.warning(
        "demo study %s never arrived; its request was not filed", request.study_instance_uid
    )
