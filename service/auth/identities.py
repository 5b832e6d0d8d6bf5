"""Each signer's certificate and key, kept locked with the signer's own password.

The key is issued lazily at the first signature (the only moment teleread holds the password in
hand besides login), locked with that password, and unlocked again for every signature: signing is
re-entering the password. A password change relocks the key; an administrator's reset cannot (the
old password is gone), so it revokes the certificate and the next signature issues a new one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..clock import from_iso, to_iso
from ..signing import (
    ConsortiumCA,
    TrustStore,
    WrongKeyPassword,
    import_pkcs12,
    lock_key,
    new_signing_key,
    relock_key,
    unlock_key,
)
from ..storage import Conflict, Database
from ..storage import signing_identities as store
from .sessions import CurrentUser


@dataclass(frozen=True)
class UnlockedIdentity:
    """A signer's key in memory for one signature, with the certificate and its chain."""

    identity_id: int
    key: Any
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    @property
    def serial_hex(self) -> str:
        return format(self.certificate.serial_number, "x")


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _row_for(
    user_id: int,
    source: str,
    certificate: x509.Certificate,
    chain: list[x509.Certificate],
    locked: bytes,
    now: datetime,
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "source": source,
        "certificate": _pem(certificate),
        "chain": "".join(_pem(c) for c in chain),
        "locked_key": locked,
        "serial": format(certificate.serial_number, "x"),
        "issuer": certificate.issuer.rfc4514_string(),
        "subject": certificate.subject.rfc4514_string(),
        "not_before": to_iso(certificate.not_valid_before_utc),
        "not_after": to_iso(certificate.not_valid_after_utc),
        "created_at": to_iso(now),
    }


def _issue(
    ca: ConsortiumCA, user: CurrentUser, password: str, now: datetime, crl_url: str | None
) -> dict[str, Any]:
    key = new_signing_key()
    certificate = ca.issue(
        key.public_key(),
        common_name=user.display_name or user.username,
        organisation=user.facility_name,
        user_id=user.id,
        now=now,
        crl_url=crl_url,
    )
    return _row_for(
        user.id, "consortium", certificate, [ca.certificate], lock_key(key, password), now
    )


def _unlock(row: dict[str, Any], password: str) -> UnlockedIdentity:
    chain = tuple(x509.load_pem_x509_certificates(row["chain"].encode())) if row["chain"] else ()
    return UnlockedIdentity(
        identity_id=row["id"],
        key=unlock_key(row["locked_key"], password),
        certificate=x509.load_pem_x509_certificate(row["certificate"].encode()),
        chain=chain,
    )


async def unlocked_identity(
    database: Database,
    ca: ConsortiumCA,
    user: CurrentUser,
    password: str,
    now: datetime,
    crl_url: str | None = None,
) -> UnlockedIdentity:
    """The user's key, unlocked with the password just re-entered; issued on first use."""
    row = await database.read(store.current_identity, user.id, to_iso(now))
    if row is None:
        values = await asyncio.to_thread(_issue, ca, user, password, now, crl_url)
        identity_id = await database.write(store.add_identity, values)
        row = values | {"id": identity_id}
    try:
        return await asyncio.to_thread(_unlock, row, password)
    except WrongKeyPassword:
        # The account password was reset without the key being relocked: that key is lost.
        await database.write(
            store.revoke_all_of_user, user.id, to_iso(now), "key locked with a lost password"
        )
        values = await asyncio.to_thread(_issue, ca, user, password, now, crl_url)
        identity_id = await database.write(store.add_identity, values)
        return await asyncio.to_thread(_unlock, values | {"id": identity_id}, password)


async def relocked_keys(
    database: Database, user_id: int, old: str, new: str
) -> list[tuple[int, bytes, bytes]]:
    """The user's live keys relocked from ``old`` to ``new`` (key decryption and encryption on
    a thread, before any transaction): ``(id, locked before, locked after)`` for
    :func:`store_relocked`."""
    keys = await database.read(store.live_locked_keys, user_id)

    def relock_all() -> list[tuple[int, bytes, bytes]]:
        return [(key_id, locked, relock_key(locked, old, new)) for key_id, locked in keys]

    return await asyncio.to_thread(relock_all)


def store_relocked(
    db: sqlite_utils.Database, user_id: int, relocked: list[tuple[int, bytes, bytes]]
) -> None:
    """Inside the password change's write: store the relocked keys, provided the live keys are
    still those relocked (a key issued or revoked meanwhile: ``keys_changed``, try again)."""
    current = store.live_locked_keys(db, user_id)
    if current != [(key_id, before) for key_id, before, _ in relocked]:
        raise Conflict("keys_changed", "your signing keys changed meanwhile: try again")
    for key_id, _, after in relocked:
        store.relock(db, key_id, after)


def revoke_after_reset(db: sqlite_utils.Database, user_id: int, now: str) -> int:
    """An administrator reset the password: the locked key can no longer be opened."""
    return store.revoke_all_of_user(db, user_id, now, "password reset: key unrecoverable")


async def import_identity(
    database: Database,
    user: CurrentUser,
    pkcs12: bytes,
    pkcs12_password: str,
    password: str,
    now: datetime,
) -> dict[str, Any]:
    """Use a certificate from an external CA; its issuer becomes a trusted CA for verification."""
    imported = await asyncio.to_thread(import_pkcs12, pkcs12, pkcs12_password, password)
    chain = list(imported.chain)
    values = _row_for(user.id, "imported", imported.certificate, chain, imported.locked_key, now)

    def apply(db: sqlite_utils.Database) -> dict[str, Any]:
        for certificate in chain:
            store.add_trusted_ca(
                db, certificate.subject.rfc4514_string(), _pem(certificate), to_iso(now)
            )
        identity_id = store.add_identity(db, values)
        # as stored, as the list shows it (revocation fields included)
        return next(r for r in store.identities_of(db, user.id) if r["id"] == identity_id)

    return await database.write(apply)


def trust_store(db: sqlite_utils.Database, ca: ConsortiumCA, now: datetime) -> TrustStore:
    """What verification trusts: the consortium CA with its current CRL, and imported CAs."""
    revoked = [
        (int(serial, 16), from_iso(at)) for serial, at in store.revoked_consortium_serials(db)
    ]
    roots = [ca.certificate]
    for row in store.trusted_cas(db):
        roots.append(x509.load_pem_x509_certificate(row["certificate"].encode()))
    return TrustStore(roots=tuple(roots), crls=(ca.crl(revoked, now=now),))
