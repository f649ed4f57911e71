"""CPU-heavy handlers for the fork pool."""

from __future__ import annotations

import hashlib


def count_primes(limit: int) -> int:
    """Pure Python number crunching: the kind of work threads cannot run in parallel."""
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for n in range(2, int(limit ** 0.5) + 1):
        if sieve[n]:
            sieve[n * n::n] = bytearray(len(range(n * n, limit + 1, n)))
    return sum(sieve)


def derive_key(password: str, iterations: int) -> str:
    """A key derivation with a far too high iteration count: it runs for minutes inside
    OpenSSL's C code, where no Python exception can reach it (a thread pool could only
    abandon the thread). In the fork pool the worker kills the child once the job's
    _timeout plus a grace period has passed."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), b"salt", iterations).hex()
