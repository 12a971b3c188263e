"""Who a connection is, and what it may do: listeners' security protocols, SASL, ACLs.

``Session`` is the per-connection state every layer sees through the request context:
the listener's security protocol, the authenticated principal (Kafka's ``User:name``
form) and, on SASL listeners, where the authentication stands. The server closes a
connection on a SASL listener that sends anything but ApiVersions, SaslHandshake or
SaslAuthenticate before it has authenticated, as Kafka does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL = "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"
PROTOCOLS = (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)
ANONYMOUS = "User:ANONYMOUS"

# Before a SASL connection has authenticated, only these APIs are served.
PRE_AUTH_APIS = frozenset({17, 18, 36})  # SaslHandshake, ApiVersions, SaslAuthenticate


@dataclass
class Session:
    protocol: str = PLAINTEXT  # the listener's security protocol
    listener: str = PLAINTEXT  # the listener's name (Kafka's listener name, e.g. "SASL_SSL")
    principal: str = ANONYMOUS
    authenticated: bool = False  # SASL done (always True on listeners without SASL)
    mechanism: str | None = None  # the SASL mechanism the handshake chose
    sasl: Any = None  # the mechanism's exchange in progress
    expires_at: float | None = None  # monotonic time the SASL session ends (KIP-368), None: never
    peer: str = ""  # the client's address
    closing: str | None = None  # why to close the connection once the current answer is sent
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in (SASL_PLAINTEXT, SASL_SSL)

    @property
    def uses_tls(self) -> bool:
        return self.protocol in (SSL, SASL_SSL)

    def allows_before_auth(self, api_key: int) -> bool:
        """Whether a request of ``api_key`` may be served now (False: close the connection)."""
        return not self.uses_sasl or self.authenticated or api_key in PRE_AUTH_APIS

    def expired_for(self, api_key: int, now: float) -> bool:
        """Whether the SASL session ended (KIP-368) before a request of ``api_key`` arrived at
        ``now`` (monotonic): then the connection is closed. Re-authenticating is still allowed."""
        return self.expires_at is not None and now >= self.expires_at and api_key not in (17, 36)

    @classmethod
    def for_listener(cls, protocol: str, listener: str | None = None, peer: str = "") -> "Session":
        return cls(protocol=protocol, listener=listener or protocol, peer=peer,
                   authenticated=protocol not in (SASL_PLAINTEXT, SASL_SSL))
