"""Certificates and signatures without the service: the consortium CA, locked keys, PKCS#12,
PAdES and detached CMS, revocation — and pyHanko's own validator on our PDFs."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from asn1crypto import tsp
from asn1crypto.crl import CertificateList
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
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
from reportlab.pdfgen import canvas

from service.signing import (
    ConsortiumCA,
    ConsortiumTimeStamper,
    LongTerm,
    TrustStore,
    WrongKeyPassword,
    import_pkcs12,
    lock_key,
    new_signing_key,
    relock_key,
    sign_detached,
    sign_pdf,
    timestamper_for,
    unlock_key,
    verify_detached,
    verify_pdf,
)
from service.signing.trust import to_asn1
from service.storage.signing_identities import trusted_cas

from .conftest import PASSWORD

NOW = datetime.now(UTC)


@pytest.fixture
def ca(tmp_path) -> ConsortiumCA:
    return ConsortiumCA.load_or_create(tmp_path / "pki", "Test consortium CA")


def small_pdf() -> bytes:
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    page.drawString(100, 750, "imaging report")
    page.save()
    return buffer.getvalue()


def signer(ca: ConsortiumCA, key=None, crl_url="http://teleread.test/api/ca/crl"):
    key = key or new_signing_key()
    cert = ca.issue(
        key.public_key(),
        common_name="Dr Li",
        organisation="Centre",
        user_id=7,
        now=NOW,
        crl_url=crl_url,
    )
    return key, cert


def trust(ca: ConsortiumCA, revoked=()) -> TrustStore:
    return TrustStore((ca.certificate,), (ca.crl(revoked, now=NOW + timedelta(seconds=1)),))


def flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


class TestConsortiumCA:
    def test_created_once_and_reloaded_with_the_same_certificate(self, tmp_path):
        first = ConsortiumCA.load_or_create(tmp_path / "pki", "CA")
        again = ConsortiumCA.load_or_create(tmp_path / "pki", "CA")
        assert first.certificate == again.certificate

    def test_the_key_on_disk_is_encrypted_and_private(self, tmp_path):
        ConsortiumCA.load_or_create(tmp_path / "pki", "CA")
        key_file = tmp_path / "pki" / "ca-key.pem"
        assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
        with pytest.raises(TypeError):  # no password: cannot be read
            serialization.load_pem_private_key(key_file.read_bytes(), None)
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600

    def test_a_given_passphrase_is_used_instead_of_a_generated_one(self, tmp_path):
        ConsortiumCA.load_or_create(tmp_path / "pki", "CA", passphrase=b"from-a-vault")
        assert not (tmp_path / "pki" / "ca-passphrase").exists()
        with pytest.raises(ValueError):
            ConsortiumCA.load_or_create(tmp_path / "pki", "CA", passphrase=b"wrong")

    def test_issued_certificates_chain_and_may_sign(self, ca):
        _, cert = signer(ca)
        cert.verify_directly_issued_by(ca.certificate)
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature and usage.content_commitment


class TestLockedKeys:
    def test_lock_and_unlock_round_trip(self):
        key = new_signing_key()
        locked = lock_key(key, "pässword-1")
        assert b"ENCRYPTED" in locked
        assert unlock_key(locked, "pässword-1").private_numbers() == key.private_numbers()

    def test_a_wrong_password_does_not_open_the_key(self):
        with pytest.raises(WrongKeyPassword):
            unlock_key(lock_key(new_signing_key(), "right"), "wrong")

    def test_relocking_moves_the_key_to_the_new_password(self):
        locked = relock_key(lock_key(new_signing_key(), "old"), "old", "new")
        unlock_key(locked, "new")
        with pytest.raises(WrongKeyPassword):
            unlock_key(locked, "old")


def external_pkcs12(password: bytes, crl_url: str | None = None) -> tuple[bytes, x509.Certificate]:
    """A PKCS#12 from an "external CA" (RSA), as a provincial CA would issue."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Provincial CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dr Zhang")]))
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
    )
    if crl_url:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    data = pkcs12.serialize_key_and_certificates(
        b"zhang", key, cert, [ca_cert], serialization.BestAvailableEncryption(password)
    )
    return data, ca_cert


class TestPkcs12Import:
    def test_an_imported_rsa_identity_signs_and_is_trusted_with_its_ca(self, ca):
        data, external_ca = external_pkcs12(b"p12-secret")
        imported = import_pkcs12(data, "p12-secret", "teleread-password")
        key = unlock_key(imported.locked_key, "teleread-password")
        pdf = sign_pdf(
            small_pdf(),
            key,
            imported.certificate,
            imported.chain,
            reason="r",
            location="l",
            signer_name="Dr Zhang",
        )
        assert verify_pdf(pdf, TrustStore((external_ca,))).valid
        only_ours = verify_pdf(pdf, trust(ca))
        assert not only_ours.valid and only_ours.intact and not only_ours.trusted

    def test_a_wrong_pkcs12_password_is_refused_clearly(self):
        data, _ = external_pkcs12(b"p12-secret")
        with pytest.raises(ValueError, match="PKCS#12"):
            import_pkcs12(data, "nope", "x")


class TestPades:
    def test_a_signed_pdf_verifies(self, ca):
        key, cert = signer(ca)
        pdf = sign_pdf(
            small_pdf(),
            key,
            cert,
            [ca.certificate],
            reason="report",
            location="Centre",
            signer_name="Dr Li",
        )
        result = verify_pdf(pdf, trust(ca))
        assert result.valid and result.signer == "Dr Li" and result.reasons == ()

    async def test_pyhankos_own_validator_accepts_it(self, ca):
        key, cert = signer(ca)
        pdf = sign_pdf(
            small_pdf(), key, cert, [ca.certificate], reason="r", location="l", signer_name="Dr Li"
        )
        context = trust(ca).validation_context(None)

        def validate():
            reader = PdfFileReader(io.BytesIO(pdf))
            return validate_pdf_signature(reader.embedded_signatures[0], context)

        status = await asyncio.to_thread(validate)
        assert status.bottom_line and status.coverage.name == "ENTIRE_FILE"

    def test_one_flipped_byte_fails(self, ca):
        key, cert = signer(ca)
        pdf = sign_pdf(
            small_pdf(), key, cert, [ca.certificate], reason="r", location="l", signer_name="Dr Li"
        )
        tampered = flip(pdf, pdf.index(b"stream") + 20)
        result = verify_pdf(tampered, trust(ca))
        assert not result.valid and not result.intact
        assert "changed" in result.reasons[0]

    def test_a_revoked_certificate_is_reported(self, ca):
        key, cert = signer(ca)
        pdf = sign_pdf(
            small_pdf(), key, cert, [ca.certificate], reason="r", location="l", signer_name="Dr Li"
        )
        result = verify_pdf(pdf, trust(ca, revoked=[(cert.serial_number, NOW)]))
        assert result.revoked and not result.valid and result.intact
        assert "revoked" in result.reasons[0]

    def test_a_pdf_without_signature_is_invalid(self, ca):
        result = verify_pdf(small_pdf(), trust(ca))
        assert not result.valid and "no signature" in result.reasons[0]


class TestDetached:
    @pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
    def test_signs_and_verifies_with_both_key_types(self, ca, kind):
        key = new_signing_key() if kind == "ecdsa" else rsa.generate_private_key(65537, 2048)
        key, cert = signer(ca, key)
        signature = sign_detached(b'{"impression":"normal"}', key, cert, [ca.certificate])
        assert verify_detached(b'{"impression":"normal"}', signature, trust(ca)).valid

    def test_one_changed_byte_of_the_payload_fails(self, ca):
        key, cert = signer(ca)
        signature = sign_detached(b"payload", key, cert, [ca.certificate])
        result = verify_detached(b"paylaod", signature, trust(ca))
        assert not result.valid and not result.intact

    def test_revocation_shows(self, ca):
        key, cert = signer(ca)
        signature = sign_detached(b"payload", key, cert, [ca.certificate])
        result = verify_detached(b"payload", signature, trust(ca, [(cert.serial_number, NOW)]))
        assert result.revoked and not result.valid


def long_term(ca: ConsortiumCA, url: str = "http://teleread.test/api/ca/crl") -> LongTerm:
    authority = ConsortiumTimeStamper(ca.timestamp_authority(url, now=datetime.now(UTC)))
    return LongTerm(authority, trust(ca))


def ades_verdict(pdf: bytes, ca: ConsortiumCA, at: datetime, crls=()):
    """pyHanko's AdES validation (ETSI EN 319 102-1, as ``pyhanko sign adesverify``) at ``at``:
    revocation evidence required for every certificate; ``crls`` are what a verifier would
    fetch then, besides what the PDF carries."""
    policy = CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=[to_asn1(ca.certificate)]),
        revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO),
    )
    knowledge = LocalKnowledge(
        known_crls=[
            CRLContainer(CertificateList.load(c.public_bytes(serialization.Encoding.DER)))
            for c in crls
        ]
    )
    spec = PdfSignatureValidationSpec(
        SignatureValidationSpec(cert_validation_policy=policy, local_knowledge=knowledge)
    )
    signature = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    timing = ValidationTimingInfo(at, at, point_in_time_validation=True)
    return asyncio.run(ades_lta_validation(signature, spec, timing))


def short_lived_signer(
    ca: ConsortiumCA, seconds: int = 5, crl_url: str = "http://teleread.test/api/ca/crl"
):
    """A certificate that expires ``seconds`` from now (issued "a day ago" for one day)."""
    key = new_signing_key()
    issued = datetime.now(UTC) - timedelta(days=1) + timedelta(seconds=seconds)
    cert = ca.issue(
        key.public_key(),
        common_name="Dr Li",
        organisation="Centre",
        user_id=7,
        now=issued,
        days=1,
        crl_url=crl_url,
    )
    return key, cert


class TestLongTermValidity:
    """PAdES B-LTA: the signature keeps validating after the signer's certificate expired."""

    def sign(self, ca, key, cert, lt=True) -> bytes:
        return sign_pdf(
            small_pdf(),
            key,
            cert,
            [ca.certificate],
            reason="r",
            location="l",
            signer_name="Dr Li",
            long_term=long_term(ca) if lt else None,
        )

    def test_the_tsa_certificate_is_for_timestamping_only_and_names_the_crl(self, ca):
        tsa = ca.timestamp_authority("https://t.example/api/ca/crl", now=NOW).certificate
        tsa.verify_directly_issued_by(ca.certificate)
        usage = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        assert usage.critical and list(usage.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
        points = tsa.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert points[0].full_name[0].value == "https://t.example/api/ca/crl"

    def test_the_tsa_certificate_survives_a_restart_until_the_address_changes(self, tmp_path):
        first = ConsortiumCA.load_or_create(tmp_path / "pki", "CA")
        issued = first.timestamp_authority("https://a.example/api/ca/crl", now=NOW).certificate
        again = ConsortiumCA.load_or_create(tmp_path / "pki", "CA")
        assert again.timestamp_authority("https://a.example/api/ca/crl", now=NOW).certificate == (
            issued
        )
        moved = again.timestamp_authority("https://b.example/api/ca/crl", now=NOW).certificate
        assert moved != issued and moved.public_key() == issued.public_key()

    def test_an_imported_signer_whose_ca_crl_is_elsewhere_still_signs(self, ca):
        """The provincial CA's CRL is not held offline: the signature is timestamped all the
        same, with what the consortium holds in the DSS."""
        data, external_ca = external_pkcs12(b"p", crl_url="http://provincial.invalid/ca.crl")
        imported = import_pkcs12(data, "p", "pw")
        roots = TrustStore((ca.certificate, external_ca), trust(ca).crls)
        authority = ConsortiumTimeStamper(ca.timestamp_authority(None, now=NOW))
        pdf = sign_pdf(
            small_pdf(),
            unlock_key(imported.locked_key, "pw"),
            imported.certificate,
            imported.chain,
            reason="r",
            location="l",
            signer_name="Dr Zhang",
            long_term=LongTerm(authority, roots),
        )
        assert verify_pdf(pdf, roots).valid
        assert len(PdfFileReader(io.BytesIO(pdf)).embedded_timestamp_signatures) == 1

    def test_the_pdf_carries_a_timestamp_the_crl_in_its_dss_and_a_document_timestamp(self, ca):
        pdf = self.sign(ca, *signer(ca))
        reader = PdfFileReader(io.BytesIO(pdf))
        signature = reader.embedded_signatures[0]
        unsigned = signature.signer_info["unsigned_attrs"].native
        assert any(a["type"] == "signature_time_stamp_token" for a in unsigned)
        dss = reader.root["/DSS"]
        assert len(dss["/CRLs"]) >= 1 and len(dss["/Certs"]) >= 2
        assert len(reader.embedded_timestamp_signatures) == 1
        assert verify_pdf(pdf, trust(ca)).valid  # the service's own check accepts the updates

    def test_valid_after_the_signer_certificate_expired(self, ca):
        key, cert = short_lived_signer(ca)
        pdf = self.sign(ca, key, cert)
        later = datetime.now(UTC) + timedelta(minutes=5)
        assert cert.not_valid_after_utc < later
        result = ades_verdict(pdf, ca, later)
        assert result.ades_subindic.status.name == "PASSED"
        status = result.api_status
        assert status.bottom_line and status.intact and status.trusted
        assert status.timestamp_validity is not None and status.timestamp_validity.trusted

    def test_valid_years_later_with_the_crl_the_ca_publishes_then(self, ca):
        key, cert = signer(ca)
        pdf = self.sign(ca, key, cert)
        years_later = cert.not_valid_after_utc + timedelta(days=365)
        result = ades_verdict(pdf, ca, years_later, [ca.crl([], now=years_later)])
        assert result.ades_subindic.status.name == "PASSED" and result.api_status.bottom_line

    def test_without_a_timestamp_the_same_check_fails(self, ca):
        key, cert = short_lived_signer(ca)
        pdf = self.sign(ca, key, cert, lt=False)
        result = ades_verdict(pdf, ca, datetime.now(UTC) + timedelta(minutes=5))
        assert result.ades_subindic.status.name != "PASSED"

    def test_the_services_own_check_still_accepts_it_after_expiry(self, ca):
        """teleread's verification (the QR page) judges an expired certificate as of the
        signature timestamp; without one, expiry still fails the check."""
        key, cert = short_lived_signer(ca)
        later = datetime.now(UTC) + timedelta(minutes=5)
        assert verify_pdf(self.sign(ca, key, cert), trust(ca), at=later).valid
        assert not verify_pdf(self.sign(ca, key, cert, lt=False), trust(ca), at=later).valid

    def test_a_timestamped_detached_signature_outlives_its_certificate_too(self, ca):
        key, cert = short_lived_signer(ca)
        stamper = long_term(ca).timestamper
        stamped = sign_detached(b"payload", key, cert, [ca.certificate], timestamper=stamper)
        plain = sign_detached(b"payload", key, cert, [ca.certificate])
        later = datetime.now(UTC) + timedelta(minutes=5)
        assert verify_detached(b"payload", stamped, trust(ca), at=later).valid
        assert not verify_detached(b"payload", plain, trust(ca), at=later).valid
        assert not verify_detached(b"paylaod", stamped, trust(ca), at=later).valid

    def test_revocation_is_not_excused_by_the_timestamp(self, ca):
        key, cert = signer(ca)
        pdf = self.sign(ca, key, cert)
        result = verify_pdf(pdf, trust(ca, revoked=[(cert.serial_number, NOW)]))
        assert result.revoked and not result.valid

    async def test_an_outside_timestamp_authority_is_asked_over_http(self, ca, aiohttp_server):
        """``TELEREAD_TSA_URL``: RFC 3161 over HTTP (here a stand-in authority on a local port)."""
        authority = ConsortiumTimeStamper(ca.timestamp_authority(None, now=NOW))
        asked = []

        async def reply(request: web.Request) -> web.Response:
            assert request.content_type == "application/timestamp-query"
            query = tsp.TimeStampReq.load(await request.read())
            asked.append(query)
            answer = await authority.async_request_tsa_response(query)
            return web.Response(body=answer.dump(), content_type="application/timestamp-reply")

        async def crl(request: web.Request) -> web.Response:
            der = ca.crl([], now=datetime.now(UTC)).public_bytes(serialization.Encoding.DER)
            return web.Response(body=der, content_type="application/pkix-crl")

        app = web.Application()
        app.router.add_post("/tsr", reply)
        app.router.add_get("/crl", crl)
        server = await aiohttp_server(app)
        stamper = timestamper_for(str(server.make_url("/tsr")), ca, None, now=NOW)
        key, cert = short_lived_signer(ca, crl_url=str(server.make_url("/crl")))
        pdf = await asyncio.to_thread(
            sign_pdf,
            small_pdf(),
            key,
            cert,
            [ca.certificate],
            reason="r",
            location="l",
            signer_name="Dr Li",
            long_term=LongTerm(stamper, trust(ca), online=True),
        )
        assert len(asked) >= 2  # the signature timestamp and the document timestamp
        later = datetime.now(UTC) + timedelta(minutes=5)
        assert await asyncio.to_thread(lambda: verify_pdf(pdf, trust(ca), at=later).valid)


async def test_a_specialist_imports_a_pkcs12_and_its_issuer_becomes_a_trusted_ca(service):
    """``POST /api/signing/identities/pkcs12`` with the teleread password: the certificate is
    the specialist's imported identity, and the provincial CA in its chain is trusted for
    verification (once, however often it comes); a wrong teleread password imports nothing."""
    centre = await service.add_facility("县域影像中心", "regional", "CENTRE")
    await service.add_user("dr_zhang", "specialist", centre)
    zhang = await service.login("dr_zhang")
    data, provincial = external_pkcs12(b"p12-secret")
    body = {"pkcs12": base64.b64encode(data).decode(), "pkcs12_password": "p12-secret"}
    wrong = await service.client.post(
        "/api/signing/identities/pkcs12", headers=zhang, json=body | {"password": "not-mine"}
    )
    assert wrong.status == 403 and (await wrong.json())["error"] == "wrong_password"
    assert await service.database.read(trusted_cas) == []
    for _ in range(2):
        imported = await service.client.post(
            "/api/signing/identities/pkcs12", headers=zhang, json=body | {"password": PASSWORD}
        )
        assert imported.status == 201, await imported.text()
    listed = await (await service.client.get("/api/signing/identities", headers=zhang)).json()
    assert [item["source"] for item in listed["items"]] == ["imported", "imported"]
    pem = provincial.public_bytes(serialization.Encoding.PEM).decode()
    assert [ca["certificate"] for ca in await service.database.read(trusted_cas)] == [pem]
