"""Client secrets: generated once, shown once, kept only as a slow salted scrypt hash.

The hash's parameters are stored with it (`scrypt$n$r$p$salt$hash`), so they can be raised later
without invalidating existing secrets. n=2**13, r=8 costs about 23 ms and 8 MiB per check on this
project's reference machine: slow enough that a stolen database is no shortcut to a secret, fast
enough that the token endpoint stays under 50 ms. Generated secrets carry 240 random bits, so the
hash's cost is defence in depth rather than what keeps them safe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets as random

SCRYPT_N = 2 ** 13
SCRYPT_R = 8
SCRYPT_P = 1
_MAXMEM = 64 * 1024 * 1024


def new_secret() -> str:
    """A client secret in the alphabet Entra uses (letters, digits, '~', '.', '_', '-')."""
    return random.token_urlsafe(30).replace("-", "~")


def hint_of(secret: str) -> str:
    return secret[:3]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=_MAXMEM, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                                  maxmem=_MAXMEM, dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, _unb64(digest))


# Checked against when the client id is unknown, so an unknown client costs the same time as a
# wrong secret and response times do not tell which client ids exist.
DECOY_HASH = hash_secret(new_secret())


def same_text(given: str, expected: str) -> bool:
    """Constant-time equality of a caller's string (a signature, a token) and the expected one.
    hmac.compare_digest raises TypeError for a str with non-ASCII characters, which a caller can
    send: compared as UTF-8 bytes, such a string is simply not equal."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))
