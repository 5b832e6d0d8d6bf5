"""A signed demo report, so a first `make run` shows the whole loop: Dr Li has read Dongxiang's
chest film and Dr Chen (clinician at Dongxiang) finds the signed report in the portal."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..auth.sessions import CurrentUser
from ..clock import utc_now
from ..reports.authoring import save_draft
from ..reports.signing import sign_report
from ..settings import Settings
from ..signing import ConsortiumCA
from ..storage import Database
from ..storage import consultations as consultation_store
from ..storage import users as user_store
from ..worklist import claims
from ..worklist.effects import AfterCommit

log = logging.getLogger(__name__)

READER = "dr.li"
ACCESSION = "DX24001"
#: The county's lumbar spine MR its HIS ordered by HL7 (county_his.py): signed, its ORU^R01
#: goes back to the HIS.
COUNTY_ACCESSION = "CY248820"
COUNTY_DRAFT = {
    "findings": "L4/5 椎间盘向左后方突出，左侧侧隐窝变窄，左侧 L5 神经根受压。L5/S1 椎间盘膨出。"
    "腰椎生理曲度变直，椎体边缘骨质增生。",
    "impression": "L4/5 椎间盘突出（左后型），左侧 L5 神经根受压；腰椎退行性变。",
    "recommendation": "建议骨科或疼痛科就诊。",
    "quality": "good",
}
DRAFT = {
    "findings": "两肺纹理增多，右下肺野见斑片状模糊影，边界不清。心影大小正常。两侧肋膈角锐利。",
    "impression": "右下肺炎症可能，请结合临床。",
    "recommendation": "建议抗感染治疗后2周复查胸片。",
    "quality": "good",
}


def _target(db: Any, accession: str) -> tuple[int, dict[str, Any]] | None:
    consultation_id = consultation_store.received_by_accession(db, accession)
    reader = user_store.user_by_username(db, READER)
    if consultation_id is None or reader is None:
        return None
    return consultation_id, consultation_store.claim_account(db, reader["id"])


async def sign_demo_report(
    database: Database,
    settings: Settings,
    ca: ConsortiumCA,
    effects: AfterCommit,
    password: str,
    timeout: float = 120,
    accession: str = ACCESSION,
    draft: dict[str, str] = DRAFT,
) -> bool:
    """Wait for the study (the chest film by default) to arrive with its request, then claim,
    write and sign it as Dr Li."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (found := await database.read(_target, accession)) is None:
        if asyncio.get_running_loop().time() > deadline:
            log.warning("demo: study %s never arrived; its demo report is not signed", accession)
            return False
        await asyncio.sleep(1)
    consultation_id, account = found
    reader = CurrentUser.from_row(account | {"session_id": 0, "csrf_token": ""})
    await effects.write(
        database, claims.claim, consultation_id, reader, utc_now(), settings.claim_lease_minutes
    )
    await database.write(save_draft, consultation_id, reader, draft, utc_now())
    public_url = settings.public_url or f"http://{settings.host}:{settings.port}"
    signed = await sign_report(
        database,
        ca,
        reader,
        consultation_id,
        password,
        now=utc_now(),
        public_url=public_url,
        tsa_url=settings.tsa_url,
    )
    await effects.apply(signed.effects)
    log.info("demo: Dr Li signed the report of consultation %d", consultation_id)
    return True
