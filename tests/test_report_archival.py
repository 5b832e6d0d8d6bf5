"""The signed report PDF as outside tools see it: PAdES B-LTA that pyHanko still validates after
the signer's certificate expired, a signature poppler's ``pdfsig`` calls valid, PDF/A-2b with
every font embedded (``pdffonts``) — and ``serve`` refusing to print a loopback address.

One real Orthanc and one signed report for the module; the service's public URL is its own
address, so the CRL address in the certificates is one the test can fetch."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from asn1crypto.crl import CertificateList
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    PdfSignatureValidationSpec,
    SignatureValidationSpec,
)
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer

from service.app import create_app
from service.cli import serve as serve_command
from service.demo.synthetic import StudySpec, make_study
from service.http.keys import CA
from service.reports.public_address import is_loopback, loopback_allowed
from service.settings import Settings
from service.signing.trust import to_asn1
from tests.conftest import CHANGES_POLL_SECONDS, PASSWORD, Service, free_port, start_orthanc

STUDY = StudySpec("P-ARCH", "王^小明", "CR", "CHEST", accession_number="ACC-ARCH")


@dataclasses.dataclass
class Signed:
    service: Service
    pdf: bytes
    public_url: str


@pytest.fixture(scope="module")
async def signed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Signed]:
    """A specialist signed one report through the HTTP API; the PDF as the clinic downloads it."""
    directory: Path = tmp_path_factory.mktemp("archival")
    orthanc = await start_orthanc(directory / "orthanc", "TELEREAD")
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    credentials = orthanc.config.credentials
    settings = Settings(
        data_dir=directory / "var",
        orthanc_url=orthanc.url,
        orthanc_username=credentials.username,
        orthanc_password=credentials.password,
        orthanc_dicom_port=orthanc.config.dicom_port,
        stable_age=1,
        changes_poll_interval=CHANGES_POLL_SECONDS,
        public_url=public_url,
        loopback_addresses=False,  # as under `teleread serve`: the public URL makes it allowed
    )
    client = TestClient(TestServer(create_app(settings), port=port))
    await client.start_server()
    try:
        service = Service(client, client.app, orthanc)
        yield Signed(service, await _sign_one(service), public_url)
    finally:
        await client.close()
        await orthanc.kill()


async def _sign_one(service: Service) -> bytes:
    clinic = await service.add_facility("青山镇卫生院", "township", "CLINIC_A")
    centre = await service.add_facility("县域影像中心", "regional", "CENTRE")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("doc_a", "clinician", clinic)
    await service.c_store(make_study(STUDY), "CLINIC_A")
    li = await service.login("dr_li")

    async def arrived():
        items = (await (await service.client.get("/api/worklist", headers=li)).json())["items"]
        return items[0]["id"] if items else None

    cid = await service.wait_for(arrived)
    base = f"/api/consultations/{cid}"
    assert (await service.client.post(f"{base}/claim", headers=li)).status == 200
    draft = {"findings": "两肺纹理清晰。Lungs clear.", "impression": "胸部未见异常。"}
    assert (await service.client.put(f"{base}/report/draft", headers=li, json=draft)).status == 200
    signed = await service.client.post(
        f"{base}/report/sign", headers=li, json={"password": PASSWORD}
    )
    assert signed.status == 201, await signed.text()
    doc = await service.login("doc_a")
    response = await service.client.get(f"{base}/report/versions/1/pdf", headers=doc)
    assert response.status == 200
    return await response.read()


def _tool(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return done.stdout


async def test_pdfsig_says_the_signature_is_valid(signed, tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(signed.pdf)
    out = await asyncio.to_thread(_tool, "pdfsig", str(path))
    first = out.split("Signature #2")[0]
    assert "Signature #1" in first and "Signature is Valid." in first, out
    assert "ETSI.CAdES.detached" in first
    assert "Signature #2" in out  # the document timestamp (B-LTA)


async def test_pdffonts_lists_every_font_embedded_the_cjk_one_included(signed, tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(signed.pdf)
    rows = (await asyncio.to_thread(_tool, "pdffonts", str(path))).splitlines()[2:]
    assert rows and any("WenQuanYi" in row for row in rows)
    for row in rows:
        columns = row[36:].split()  # type, encoding, emb, sub, uni, object, generation
        assert columns[-5] == "yes", f"not embedded: {row}"


def test_the_pdf_says_it_is_pdfa_2b_with_an_srgb_output_intent(signed):
    reader = PdfFileReader(io.BytesIO(signed.pdf))
    root = reader.root
    xmp = root["/Metadata"].data.decode("utf-8")
    assert re.search(r'pdfaid:part="2"|<pdfaid:part>2<', xmp)
    assert re.search(r'pdfaid:conformance="B"|<pdfaid:conformance>B<', xmp)
    (reference,) = root["/OutputIntents"]
    intent = reference.get_object()
    assert intent["/S"] == "/GTS_PDFA1"
    profile = intent["/DestOutputProfile"]
    assert profile["/N"] == 3 and profile.data[36:40] == b"acsp"  # an ICC profile
    # ISO 19005-2 6.2.3: a display (or printer, scanner, colour space) profile, version 4 at most
    assert profile.data[12:20] == b"mntrRGB " and profile.data[8] <= 4
    assert root["/Version"] == "/1.7" and signed.pdf.startswith(b"%PDF-1.")
    info = reader.trailer["/Info"]
    assert info["/Producer"] in xmp and "/Trapped" not in info  # information = XMP


async def test_pyhanko_validates_it_after_the_signer_certificate_expired(signed):
    """ETSI EN 319 102-1 validation (pyHanko's ``adesverify``) a year after the certificate
    expired, trusting only the consortium CA and requiring revocation evidence for every
    certificate: what the PDF carries, plus the CA's CRL at its address as served then."""
    reader = PdfFileReader(io.BytesIO(signed.pdf))
    signature = reader.embedded_regular_signatures[0]
    certificate = x509.load_der_x509_certificate(signature.signer_cert.dump())
    points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    crl_url = points[0].full_name[0].value
    assert crl_url == f"{signed.public_url}/api/ca/crl" and not is_loopback("https://x.org")
    served = await signed.service.client.get(crl_url.removeprefix(signed.public_url))
    assert served.status == 200
    x509.load_der_x509_crl(await served.read())  # reachable where the certificate says
    ca = signed.service.app[CA]
    later = certificate.not_valid_after_utc + timedelta(days=365)
    crl_then = ca.crl([], now=later).public_bytes(serialization.Encoding.DER)
    policy = CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=[to_asn1(ca.certificate)]),
        revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO),
    )
    knowledge = LocalKnowledge(known_crls=[CRLContainer(CertificateList.load(crl_then))])
    spec = PdfSignatureValidationSpec(
        SignatureValidationSpec(cert_validation_policy=policy, local_knowledge=knowledge)
    )
    timing = ValidationTimingInfo(later, later, point_in_time_validation=True)
    result = await ades_lta_validation(signature, spec, timing)
    assert result.ades_subindic.status.name == "PASSED", result.ades_subindic
    status = result.api_status
    assert status.bottom_line and status.intact and status.valid and status.trusted
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted
    assert len(reader.embedded_timestamp_signatures) == 1  # B-LTA


class TestLoopbackAddresses:
    @pytest.mark.parametrize(
        "url, loopback",
        [
            ("http://127.0.0.1:8080", True),
            ("http://127.8.0.1", True),
            ("http://localhost:8080", True),
            ("http://[::1]:8080", True),
            ("https://teleread.example.org", False),
            ("http://192.168.1.20:8080", False),
        ],
    )
    def test_what_counts_as_loopback(self, url, loopback):
        assert is_loopback(url) is loopback

    def test_only_serve_without_demo_and_without_public_url_refuses(self):
        assert loopback_allowed(Settings())  # tests, `teleread demo`
        assert not loopback_allowed(Settings(loopback_addresses=False))
        assert loopback_allowed(Settings(loopback_addresses=False, public_url="http://10.0.0.1"))

    @pytest.mark.parametrize("demo", [False, True])
    def test_serve_refuses_unless_the_demo_runs(self, tmp_path, monkeypatch, demo):
        started = []
        monkeypatch.setattr(serve_command, "_serve", lambda s, d: started.append(s) or 0)
        serve_command.serve(Settings(data_dir=tmp_path), seed_demo=demo)
        assert started[0].loopback_addresses is demo

    async def test_signing_through_a_loopback_address_is_refused_naming_the_setting(
        self, tmp_path, aiohttp_client
    ):
        settings = Settings(data_dir=tmp_path / "var", loopback_addresses=False)
        app = create_app(settings, orthanc=False)
        service = Service(await aiohttp_client(app), app, None)
        centre = await service.add_facility("Centre", "regional", "CENTRE")
        await service.add_user("dr_li", "specialist", centre)
        li = await service.login("dr_li")
        response = await service.client.post(
            "/api/consultations/1/report/sign", headers=li, json={"password": PASSWORD}
        )
        assert response.status == 409
        body = await response.json()
        assert body["error"] == "public_url_required"
        assert "TELEREAD_PUBLIC_URL" in body["detail"] and "127.0.0.1" in body["detail"]

    def test_the_banner_says_which_setting_to_set(self, capsys):
        serve_command.print_banner(Settings(loopback_addresses=False), seeded=False)
        assert "TELEREAD_PUBLIC_URL" in capsys.readouterr().out
        serve_command.print_banner(Settings(loopback_addresses=True), seeded=False)
        assert "TELEREAD_PUBLIC_URL" not in capsys.readouterr().out
