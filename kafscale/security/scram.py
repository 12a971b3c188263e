"""SCRAM credentials (RFC 5802, RFC 7677): what is stored for a user, never the password.

For each mechanism a user has::

    SaltedPassword = Hi(password, salt, iterations)        PBKDF2-HMAC with the mechanism's hash
    ClientKey      = HMAC(SaltedPassword, "Client Key")
    StoredKey      = H(ClientKey)
    ServerKey      = HMAC(SaltedPassword, "Server Key")

and the broker keeps (salt, StoredKey, ServerKey, iterations): enough to check a client's
proof and to prove itself to the client, not enough to log in as the user. Kafka's
clients compute SaltedPassword themselves for AlterUserScramCredentials, so the password
never crosses the wire there either. PLAIN checks a password against the same record by
deriving StoredKey with the stored salt and iterations (``password_matches``).

The password is taken as its UTF-8 bytes, as Kafka's ScramFormatter and librdkafka do
(no SASLprep), so a credential made by any of them matches one made here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

# Kafka's ScramMechanism enum (DescribeUserScramCredentials / AlterUserScramCredentials).
SCRAM_SHA_256, SCRAM_SHA_512 = "SCRAM-SHA-256", "SCRAM-SHA-512"
MECHANISM_TYPES = {1: SCRAM_SHA_256, 2: SCRAM_SHA_512}
TYPE_OF = {name: t for t, name in MECHANISM_TYPES.items()}
HASHES = {SCRAM_SHA_256: "sha256", SCRAM_SHA_512: "sha512"}
# Kafka's bounds on iterations (ScramMechanism.minIterations / maxIterations).
MIN_ITERATIONS, MAX_ITERATIONS = 4096, 16384
DEFAULT_ITERATIONS = 8192
SALT_BYTES = 32


@dataclass(frozen=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def to_json(self) -> dict[str, Any]:
        b64 = base64.b64encode
        return {"salt": b64(self.salt).decode(), "stored_key": b64(self.stored_key).decode(),
                "server_key": b64(self.server_key).decode(), "iterations": self.iterations}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ScramCredential":
        b64 = base64.b64decode
        return cls(b64(d["salt"]), b64(d["stored_key"]), b64(d["server_key"]), int(d["iterations"]))

    def as_tuple(self) -> tuple[bytes, bytes, bytes, int]:
        """(salt, stored key, server key, iterations): what scramp's auth_fn returns."""
        return self.salt, self.stored_key, self.server_key, self.iterations


def salted_password(mechanism: str, password: bytes | str, salt: bytes, iterations: int) -> bytes:
    """Hi(password, salt, iterations): what a client sends in AlterUserScramCredentials."""
    if isinstance(password, str):
        password = password.encode()
    return hashlib.pbkdf2_hmac(HASHES[mechanism], password, salt, iterations)


def from_salted_password(mechanism: str, salt: bytes, salted: bytes, iterations: int) -> ScramCredential:
    name = HASHES[mechanism]
    client_key = hmac.digest(salted, b"Client Key", name)
    server_key = hmac.digest(salted, b"Server Key", name)
    return ScramCredential(salt, hashlib.new(name, client_key).digest(), server_key, iterations)


def from_password(mechanism: str, password: bytes | str, iterations: int = DEFAULT_ITERATIONS,
                  salt: bytes | None = None) -> ScramCredential:
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    return from_salted_password(mechanism, salt, salted_password(mechanism, password, salt, iterations), iterations)


def password_matches(mechanism: str, credential: ScramCredential, password: bytes | str) -> bool:
    """Whether ``password`` is the one ``credential`` was made from (constant-time compare)."""
    derived = from_password(mechanism, password, credential.iterations, credential.salt)
    return hmac.compare_digest(derived.stored_key, credential.stored_key)
