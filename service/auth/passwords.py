"""Password hashing with argon2id, off the event loop.

Parameters: OWASP's first recommended argon2id configuration (Password Storage Cheat Sheet:
m = 19 MiB, t = 2, p = 1; RFC 9106 section 4 allows choosing memory and passes to fit the
machine). argon2-cffi's default (RFC 9106's "second recommended": m = 64 MiB, t = 3, p = 4)
costs about 200 ms of CPU per hash here, so 50 readers logging in at once on the 2 cores of a
regional centre's server waited about 20 s (bench/logins.py); these cost about 26 ms. A hash made
with the old parameters still verifies (argon2 hashes carry their parameters) and is replaced at
the account's next login (:func:`needs_rehash`).

Hashing is deliberately slow CPU work, so the service never runs it on the event loop: the async
functions run it on a small pool of threads of its own (argon2-cffi releases the GIL while it
hashes), one per core, so a burst of logins queues there instead of starving the default executor
that file reads and other ``to_thread`` work share.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1

_hasher = PasswordHasher(
    time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM, type=Type.ID
)
# A process-wide resource like the hasher itself (not per app): a thread pool is not bound to an
# event loop, and every app in the process shares the same cores.
_pool = ThreadPoolExecutor(
    max_workers=max(1, len(os.sched_getaffinity(0))), thread_name_prefix="argon2"
)

MIN_PASSWORD_LENGTH = 8

# Verifying against this keeps the time of a login with an unknown username like a real one.
_DUMMY_HASH = _hasher.hash("teleread-timing-equaliser")


def parameters() -> str:
    """The parameters new hashes get, for the benchmark and the logs."""
    return f"argon2id m={MEMORY_COST_KIB // 1024} MiB t={TIME_COST} p={PARALLELISM}"


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True for a hash made with other parameters (older ones): rehash it at login."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


async def hash_password_async(password: str) -> str:
    """:func:`hash_password` on the hashing threads (ValueError for a too-short password)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool, hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    """:func:`verify_password` on the hashing threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool, verify_password, password_hash, password)


async def verify_and_rehash(password_hash: str | None, password: str) -> tuple[bool, str | None]:
    """Whether the password matches, and (when it does and the stored hash has old parameters)
    its new hash to store, both computed on the hashing threads before any transaction."""
    if not await verify_password_async(password_hash, password):
        return False, None
    if password_hash is not None and needs_rehash(password_hash):
        return True, await hash_password_async(password)
    return True, None
