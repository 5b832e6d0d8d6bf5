"""Certificates and signatures: the consortium CA, signers' locked keys, PAdES and detached CMS."""

from .ca import ConsortiumCA
from .keys import (
    ImportedIdentity,
    PrivateKey,
    WrongKeyPassword,
    import_pkcs12,
    lock_key,
    new_signing_key,
    relock_key,
    unlock_key,
)
from .signatures import sign_detached, sign_pdf, verify_detached, verify_pdf
from .trust import TrustStore, Verification

__all__ = [
    "ConsortiumCA",
    "ImportedIdentity",
    "PrivateKey",
    "TrustStore",
    "Verification",
    "WrongKeyPassword",
    "import_pkcs12",
    "lock_key",
    "new_signing_key",
    "relock_key",
    "sign_detached",
    "sign_pdf",
    "unlock_key",
    "verify_detached",
    "verify_pdf",
]
