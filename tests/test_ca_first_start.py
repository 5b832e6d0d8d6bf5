"""The consortium CA made once when replicas start together on one shared folder.

In the compose ``scale`` profile three replicas share DATA_DIR/pki (one CA must issue every
signer's certificate); the first start of all three at once must make one CA, not one each.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization

from service.signing import ConsortiumCA

STARTS = 6


def start(directory: str, ready, answers) -> None:
    """One replica's start: wait for the others, then load (or make) the CA."""
    ready.wait()
    ca = ConsortiumCA.load_or_create(Path(directory), "Consortium CA")
    public = ca.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    answers.put((ca.certificate.fingerprint(hashes.SHA256()).hex(), public.hex()))


def test_replicas_starting_together_on_one_folder_make_one_ca(tmp_path: Path) -> None:
    """Six processes load the CA of an empty shared folder at the same moment: all six have
    the same certificate, and the certificate and key left in the folder belong together."""
    context = multiprocessing.get_context("spawn")
    ready, answers = context.Barrier(STARTS), context.Queue()
    directory = tmp_path / "pki"
    processes = [
        context.Process(target=start, args=(str(directory), ready, answers)) for _ in range(STARTS)
    ]
    for process in processes:
        process.start()
    results = [answers.get(timeout=30) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert len({fingerprint for fingerprint, _ in results}) == 1, results
    reloaded = ConsortiumCA.load_or_create(directory, "Consortium CA")
    assert reloaded.certificate.fingerprint(hashes.SHA256()).hex() == results[0][0]
    key_public = reloaded._key.public_key().public_bytes(  # noqa: SLF001 — the pair on disk
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key_public.hex() == results[0][1]
