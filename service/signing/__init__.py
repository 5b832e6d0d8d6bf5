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
from .signatures import LongTerm, sign_detached, sign_pdf, verify_detached, verify_pdf
from .timestamps import ConsortiumTimeStamper, timestamper_for
from .trust import TrustStore, Verification

__all__ = [
    "ConsortiumCA",
    "ConsortiumTimeStamper",
    "ImportedIdentity",
    "LongTerm",
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
    "timestamper_for",
    "unlock_key",
    "verify_detached",
    "verify_pdf",
]
