"""RFC 3161 timestamps for signatures: an outside authority (``TELEREAD_TSA_URL``), or the
consortium's own, run in-process with the CA's TSA key.

A timestamp proves the signature existed while the signer's certificate was valid and not
revoked; with the CRL of that moment in the PDF (PAdES B-LT) the signature stays verifiable after
the certificate expires. pyHanko asks a :class:`~pyhanko.sign.timestamps.api.TimeStamper` for
tokens; the consortium's answers requests in memory (no HTTP endpoint is served: nobody outside
needs to timestamp with it).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper
from pyhanko.sign.timestamps.api import TimeStamper

from .ca import ConsortiumCA, TimestampIdentity
from .signatures import simple_signer
from .trust import to_asn1

TSA_POLICY = "2.25.102746197984423704670711196668346681515"
"""The consortium TSA's policy (RFC 3161 2.4.2 ``policy``): a UUID-derived OID (ITU-T X.667),
which needs no registration. It means: time from the server's clock (NTP-synchronised, as the
deployment guide asks), accuracy unstated."""


class ConsortiumTimeStamper(TimeStamper):
    """The consortium's TSA: grants every request with a token signed by the TSA key."""

    def __init__(self, identity: TimestampIdentity) -> None:
        super().__init__(include_nonce=True)
        self.identity = identity
        self._signer = simple_signer(identity.key, identity.certificate, identity.chain)

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        info = {
            "version": "v1",
            "policy": TSA_POLICY,
            "message_imprint": req["message_imprint"],
            "serial_number": secrets.randbits(120),
            # Whole seconds: the CRL embedded afterwards (also whole seconds) must not look older.
            "gen_time": datetime.now(UTC).replace(microsecond=0),
            "tsa": asn1_x509.GeneralName(
                name="directory_name", value=to_asn1(self.identity.certificate).subject
            ),
        }
        if req["nonce"].native is not None:
            info["nonce"] = req["nonce"]
        content = cms.EncapsulatedContentInfo(
            {
                "content_type": "tst_info",
                "content": cms.ParsableOctetString(tsp.TSTInfo(info).dump()),
            }
        )
        digest = req["message_imprint"]["hash_algorithm"]["algorithm"].native
        token = await self._signer.async_sign_general_data(content, digest, detached=False)
        return tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token})


def timestamper_for(
    tsa_url: str | None, ca: ConsortiumCA, crl_url: str | None, *, now: datetime
) -> TimeStamper:
    """The outside authority at ``tsa_url`` when set, else the consortium's own."""
    if tsa_url:
        return HTTPTimeStamper(tsa_url, timeout=10)
    return ConsortiumTimeStamper(ca.timestamp_authority(crl_url, now=now))
