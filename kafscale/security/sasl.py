"""SASL on a connection: SaslHandshake (17) and SaslAuthenticate (36), as Kafka runs them.

A connection on a SASL listener goes through these stages (``SaslState.stage``)::

    HANDSHAKE ──SaslHandshake(mech enabled)──▶ AUTHENTICATE ──SaslAuthenticate × n──▶ COMPLETE
        │                                          │  (PLAIN: 1 round, SCRAM: 2)          │
        │ SaslAuthenticate: ILLEGAL_SASL_STATE,    │ bad credentials: SASL_AUTHENTICATION_ │
        │ close; unknown mechanism:                │ FAILED (generic message), close       │
        │ UNSUPPORTED_SASL_MECHANISM, close        ▼                                      │
        └───────────────────────────────────▶ (closed)  ◀── re-authentication fails ──────┤
                                                                                           │
    COMPLETE ──SaslHandshake(same mech; only if the client authenticated with v1+)──▶ AUTHENTICATE
             (KIP-368 re-authentication: the connection stays usable meanwhile; the new
             principal must be the old one)

Before COMPLETE the server serves only ApiVersions and these two APIs (Session.allows_before_auth).
With connections.max.reauth.ms > 0 a successful SaslAuthenticate (v1+) tells the client
the session lifetime, and a connection whose session has expired is closed at its next
request other than SaslHandshake/SaslAuthenticate (Session.expired_for).

Every failure gets the same message, whatever was wrong (unknown user, wrong password,
malformed exchange), and an unknown user is run through a SCRAM exchange with made-up
credentials so that it fails at the same step as a wrong password. The delay before a
failure is answered grows with the peer address's recent failures (``FailureDelay``).

Everything here is pure but for ``SaslAuthenticator.authenticate``, which awaits the
runtime to derive PLAIN's key off the event loop and to sleep the failure delay.
"""

from __future__ import annotations

import enum
import hmac
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import scramp

from kafscale.errors import ErrorCode
from kafscale.runtime import Runtime
from kafscale.security import Session
from kafscale.security import scram
from kafscale.security.scram import ScramCredential

log = logging.getLogger(__name__)

PLAIN = "PLAIN"
MECHANISMS = (scram.SCRAM_SHA_512, scram.SCRAM_SHA_256, PLAIN)
FAILED_MESSAGE = "Authentication failed: Invalid username or password"
MAX_AUTH_BYTES = 64 * 1024  # a SASL token longer than this is refused (PLAIN or SCRAM need < 1 KiB)


class Stage(enum.Enum):
    HANDSHAKE = "handshake"
    AUTHENTICATE = "authenticate"
    COMPLETE = "complete"


class Lookup(Protocol):
    def __call__(self, user: str, mechanism: str) -> ScramCredential | None: ...


class Failed(Exception):
    """The exchange failed; ``reason`` is for the log only, never for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- the mechanisms ------------------------------------------------------------------------


class PlainExchange:
    """RFC 4616: one message ``authzid NUL authcid NUL passwd``, checked against the user's
    SCRAM credential (the key derivation costs milliseconds: run ``step`` in a thread)."""

    mechanism = PLAIN
    costly = True

    def __init__(self, lookup: Lookup, decoy: "Decoy") -> None:
        self.lookup, self.decoy = lookup, decoy
        self.username: str | None = None
        self.done = False

    def step(self, data: bytes) -> bytes:
        if self.done:
            raise Failed("PLAIN takes one message")
        self.done = True
        parts = data.split(b"\0")
        if len(parts) != 3:
            raise Failed("malformed PLAIN message: expected 3 tokens")
        try:
            authzid, user, password = (p.decode() for p in parts)
        except UnicodeDecodeError:
            raise Failed("malformed PLAIN message: not UTF-8") from None
        if not user or not password:
            raise Failed("empty user name or password")
        self.username = user
        if authzid and authzid != user:
            raise Failed("authorization id differs from the user name")
        for mechanism in (scram.SCRAM_SHA_512, scram.SCRAM_SHA_256):
            credential = self.lookup(user, mechanism)
            if credential is not None:
                if scram.password_matches(mechanism, credential, password):
                    return b""
                raise Failed("wrong password")
        # The same work as a real check, so the time taken does not tell the user is unknown.
        scram.password_matches(scram.SCRAM_SHA_512, self.decoy.credential(user, scram.SCRAM_SHA_512), password)
        raise Failed("unknown user")


class ScramExchange:
    """RFC 5802 server side over scramp: client-first → server-first, client-final →
    server-final. scramp checks the proof against the stored key and signs with the
    server key; it never needs the password."""

    costly = False

    def __init__(self, mechanism: str, lookup: Lookup, decoy: "Decoy", s_nonce: str | None = None) -> None:
        self.mechanism = mechanism
        self.lookup, self.decoy = lookup, decoy
        self.username: str | None = None
        self.known = False
        self.round = 0
        self.done = False
        self.server = scramp.ScramMechanism(mechanism).make_server(self._credential, s_nonce=s_nonce)

    def _credential(self, user: str) -> tuple[bytes, bytes, bytes, int]:
        self.username = user
        credential = self.lookup(user, self.mechanism)
        self.known = credential is not None
        return (credential or self.decoy.credential(user, self.mechanism)).as_tuple()

    def step(self, data: bytes) -> bytes:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise Failed("malformed SCRAM message: not UTF-8") from None
        try:
            if self.round == 0:
                self.round = 1
                authzid = _gs2_authzid(text)
                self.server.set_client_first(text)
                if authzid is not None and authzid != self.username:
                    raise Failed("authorization id differs from the user name")
                if "tokenauth=" in text.split(",", 2)[-1]:
                    raise Failed("delegation tokens are not supported")
                return self.server.get_server_first().encode()
            if self.round == 1:
                self.round = 2
                self.server.set_client_final(text)
                if not self.known:
                    raise Failed("unknown user")
                self.done = True
                return self.server.get_server_final().encode()
        except scramp.ScramException as exc:
            raise Failed(f"{'unknown user' if not self.known else 'SCRAM exchange failed'}: {exc}") from None
        raise Failed("SCRAM exchange already finished")


def _gs2_authzid(client_first: str) -> str | None:
    """The authorization identity of a SCRAM client-first message's GS2 header, if any."""
    fields = client_first.split(",", 2)
    if len(fields) >= 2 and fields[1].startswith("a="):
        return fields[1][2:].replace("=2C", ",").replace("=3D", "=")
    return None


class Decoy:
    """Made-up SCRAM credentials for users that do not exist: stable per user name (a
    retry sees the same salt) and unguessable (keyed by a per-broker secret)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret or os.urandom(32)

    def credential(self, user: str, mechanism: str) -> ScramCredential:
        def derive(label: str) -> bytes:
            return hmac.digest(self.secret, f"{label}\0{mechanism}\0{user}".encode(), scram.HASHES[mechanism])

        return ScramCredential(derive("salt")[:scram.SALT_BYTES], derive("stored"), derive("server"),
                               scram.DEFAULT_ITERATIONS)


# -- failures: delay and log ---------------------------------------------------------------


class FailureDelay:
    """Per peer address: a failure score that halves every ``half_life`` seconds and grows
    by one with each failure; the delay before a failure is answered is ``base`` doubled
    per point past the first, at most ``cap``. The table holds at most ``max_peers``
    addresses (the faintest are forgotten first)."""

    def __init__(self, base: float = 0.1, cap: float = 5.0, half_life: float = 60.0, max_peers: int = 10_000) -> None:
        self.base, self.cap, self.half_life, self.max_peers = base, cap, half_life, max_peers
        self.peers: dict[str, tuple[float, float]] = {}  # ip -> (score, time of the score)

    def score(self, ip: str, now: float) -> float:
        score, at = self.peers.get(ip, (0.0, now))
        return score * 0.5 ** ((now - at) / self.half_life)

    def failed(self, ip: str, now: float) -> float:
        """Count a failure of ``ip``; the seconds to wait before answering it."""
        score = self.score(ip, now) + 1.0
        self.peers[ip] = (score, now)
        if len(self.peers) > self.max_peers:
            faint = sorted(self.peers, key=lambda p: self.score(p, now))[: len(self.peers) - self.max_peers // 2]
            for p in faint:
                self.peers.pop(p, None)
        if self.base <= 0:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(score - 1.0, 32.0))


class FailureLog:
    """One line per failed authentication, at most ``burst`` per ``period`` seconds; how
    many were left out is said on the next line. Never the password, nor which of the
    user name and the password was wrong to anyone but the operator."""

    def __init__(self, burst: int = 10, period: float = 10.0) -> None:
        self.burst, self.period = burst, period
        self.window, self.count, self.suppressed = 0.0, 0, 0

    def failed(self, now: float, peer: str, mechanism: str, user: str | None, reason: str) -> None:
        if now - self.window >= self.period:
            self.window, self.count = now, 0
        self.count += 1
        if self.count > self.burst:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more failures not logged)" if self.suppressed else ""
        self.suppressed = 0
        log.warning("SASL authentication failed: peer %s, mechanism %s, user %r: %s%s", peer, mechanism,
                    (user or "")[:128], reason, more, extra={"peer": peer, "mechanism": mechanism})


# -- the per-connection state machine --------------------------------------------------------


@dataclass
class SaslState:
    stage: Stage = Stage.HANDSHAKE
    exchange: Any = None
    reauth_capable: bool = False  # the last successful SaslAuthenticate was v1+ (KIP-368)


@dataclass
class Answer:
    error_code: int = 0
    error_message: str | None = None
    auth_bytes: bytes = b""
    session_lifetime_ms: int = 0


def principal_of(user: str) -> str:
    return f"User:{user}"


class SaslAuthenticator:
    """What the SaslHandshake and SaslAuthenticate handlers do with a connection's Session.

    ``closing`` on the session asks the server to close the connection once the answer
    is sent. ``mechanisms()`` and ``reauth_ms()`` are read at each use (dynamic configs).
    """

    def __init__(self, lookup: Lookup, mechanisms: Callable[[], list[str]], reauth_ms: Callable[[], int],
                 delay: FailureDelay | None = None, on_result: Callable[[str, bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, nonce: Callable[[], str] | None = None) -> None:
        self.lookup = lookup
        self.mechanisms = mechanisms
        self.reauth_ms = reauth_ms
        self.delay = delay or FailureDelay()
        self.on_result = on_result or (lambda mechanism, ok: None)
        self.clock = clock
        self.nonce = nonce  # the server nonce of each SCRAM exchange (None: scramp's random one)
        self.decoy = Decoy()
        self.failure_log = FailureLog()

    def _state(self, session: Session) -> SaslState:
        if session.sasl is None:
            session.sasl = SaslState()
        return session.sasl

    def new_exchange(self, mechanism: str) -> PlainExchange | ScramExchange:
        if mechanism == PLAIN:
            return PlainExchange(self.lookup, self.decoy)
        return ScramExchange(mechanism, self.lookup, self.decoy, self.nonce() if self.nonce else None)

    def handshake(self, session: Session, mechanism: str) -> tuple[int, list[str]]:
        """(error code, the enabled mechanisms) for a SaslHandshake (v1) asking for ``mechanism``."""
        enabled = [m for m in self.mechanisms() if m in MECHANISMS]
        if not session.uses_sasl:
            return ErrorCode.ILLEGAL_SASL_STATE, []
        state = self._state(session)
        if state.stage is Stage.AUTHENTICATE:
            session.closing = "SaslHandshake during a SASL exchange"
            return ErrorCode.ILLEGAL_SASL_STATE, enabled
        if state.stage is Stage.COMPLETE:
            if not state.reauth_capable:  # (as Kafka: answered, the connection lives)
                return ErrorCode.ILLEGAL_SASL_STATE, enabled
            if mechanism != session.mechanism:
                session.closing = f"re-authentication with {mechanism!r} instead of {session.mechanism}"
                return ErrorCode.UNSUPPORTED_SASL_MECHANISM, enabled
        elif mechanism not in enabled:
            session.closing = f"unsupported SASL mechanism {mechanism[:64]!r}"
            return ErrorCode.UNSUPPORTED_SASL_MECHANISM, enabled
        state.stage, state.exchange = Stage.AUTHENTICATE, self.new_exchange(mechanism)
        session.mechanism = mechanism
        return ErrorCode.NONE, enabled

    async def authenticate(self, rt: Runtime, session: Session, version: int, auth_bytes: bytes) -> Answer:
        """One SaslAuthenticate round."""
        if not session.uses_sasl:
            return Answer(ErrorCode.ILLEGAL_SASL_STATE, "SASL is not enabled on this listener")
        state = self._state(session)
        if state.stage is Stage.COMPLETE:
            return Answer(ErrorCode.ILLEGAL_SASL_STATE, "SaslAuthenticate request received after successful "
                                                        "authentication")
        if state.stage is Stage.HANDSHAKE:
            session.closing = "SaslAuthenticate before SaslHandshake"
            return Answer(ErrorCode.ILLEGAL_SASL_STATE, "SaslAuthenticate before SaslHandshake")
        exchange = state.exchange
        if exchange is None or session.closing:  # (a request pipelined behind a failure)
            session.closing = session.closing or "SaslAuthenticate after a failed exchange"
            return Answer(ErrorCode.ILLEGAL_SASL_STATE, "The SASL exchange has failed")
        try:
            if len(auth_bytes) > MAX_AUTH_BYTES:
                raise Failed(f"SASL token of {len(auth_bytes)} bytes")
            data = bytes(auth_bytes)
            out = await rt.run_in_thread(exchange.step, data) if exchange.costly else exchange.step(data)
            if not exchange.done:
                return Answer(auth_bytes=out)
            principal = principal_of(exchange.username)
            if session.authenticated and principal != session.principal:
                raise Failed(f"re-authentication as {principal} on a connection of {session.principal}")
        except Failed as exc:
            now = self.clock()
            self.on_result(exchange.mechanism, False)
            self.failure_log.failed(now, session.peer, exchange.mechanism, exchange.username, exc.reason)
            delay = self.delay.failed(session.peer, now)
            if delay:
                await rt.sleep(delay)
            session.closing = "SASL authentication failed"
            state.exchange = None
            return Answer(ErrorCode.SASL_AUTHENTICATION_FAILED, FAILED_MESSAGE)
        self.on_result(exchange.mechanism, True)
        lifetime = self.reauth_ms()
        session.principal, session.authenticated = principal, True
        session.expires_at = self.clock() + lifetime / 1000.0 if lifetime > 0 else None
        state.stage, state.exchange, state.reauth_capable = Stage.COMPLETE, None, version >= 1
        return Answer(auth_bytes=out, session_lifetime_ms=lifetime if version >= 1 else 0)
