"""SASL users: SCRAM credentials in etcd, seen by every broker at once; super users.

A user is one etcd key (``P/users/{name}``, metadata/cluster.py) holding a SCRAM
credential per mechanism (kafscale/security/scram.py): salt, stored key, server key and
iterations, never the password. Every broker loads them all at start and follows the
key range with a watch, so a user created or deleted through any broker can log in (or
no longer) on every broker within a watch round trip; the broker that made the change
applies it before answering, so the caller's next login on that broker already sees it.

DescribeUserScramCredentials and AlterUserScramCredentials (``describe``, ``alter``)
follow Kafka's rules and error codes; the first super user comes from the deployment
(``ensure_user`` at start-up, from KAFSCALE_SASL_ADMIN_USER and its password), and
is named in KAFSCALE_SUPER_USERS like any other (kafscale/broker/authorizer.py).
"""

from __future__ import annotations

import logging
from urllib.parse import unquote
from dataclasses import dataclass
from typing import Any, Iterable

import orjson

from kafscale.watching import PrefixFollower
from kafscale.errors import ErrorCode, KafkaError
from kafscale.metadata.cluster import Cluster
from kafscale.metadata.store import WatchEvent
from kafscale.runtime import Runtime
from kafscale.security import Session
from kafscale.security import scram
from kafscale.security.scram import ScramCredential

log = logging.getLogger(__name__)

UserCredentials = dict[str, ScramCredential]  # mechanism -> credential


def may_manage_users(session: Session, sasl_listener_on: bool, supers: Iterable[str]) -> bool:
    """Until ACLs exist: with no SASL listener anyone may (as on an open Kafka cluster);
    once one is on, only super users (an unauthenticated listener's ANONYMOUS included
    only if it is named in KAFSCALE_SUPER_USERS)."""
    return not sasl_listener_on or session.principal in supers


class UserError(KafkaError):
    pass


@dataclass(frozen=True)
class Upsertion:
    name: str
    mechanism: int  # Kafka's ScramMechanism: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512
    iterations: int
    salt: bytes
    salted_password: bytes


@dataclass(frozen=True)
class Deletion:
    name: str
    mechanism: int


def _decode(raw: dict[str, Any]) -> UserCredentials:
    return {m: ScramCredential.from_json(c) for m, c in raw.items() if m in scram.HASHES}


def check_upsertion(u: Upsertion) -> None:
    """Raise UserError (Kafka's code and words) unless ``u`` may be stored."""
    mechanism = scram.MECHANISM_TYPES[u.mechanism]
    if u.iterations < scram.MIN_ITERATIONS:
        raise UserError(f"Too few iterations: {u.iterations} (at least {scram.MIN_ITERATIONS})",
                        ErrorCode.UNACCEPTABLE_CREDENTIAL)
    if u.iterations > scram.MAX_ITERATIONS:
        raise UserError(f"Too many iterations: {u.iterations} (at most {scram.MAX_ITERATIONS})",
                        ErrorCode.UNACCEPTABLE_CREDENTIAL)
    if len(u.salt) < 12:  # (RFC 5802 leaves it open; 12 bytes is what scramp accepts)
        raise UserError("The salt must be at least 12 bytes", ErrorCode.UNACCEPTABLE_CREDENTIAL)
    size = 64 if mechanism == scram.SCRAM_SHA_512 else 32
    if len(u.salted_password) != size:
        raise UserError(f"The salted password of {mechanism} must be {size} bytes",
                        ErrorCode.UNACCEPTABLE_CREDENTIAL)


class UserStore:
    def __init__(self, rt: Runtime, cluster: Cluster) -> None:
        self.rt = rt
        self.cluster = cluster
        self.users: dict[str, UserCredentials] = {}
        # Events are applied as they come; the prefix is re-read when the watch was
        # re-created (etcd restarted: events may be lost).
        self.follower = PrefixFollower(rt, cluster.store, cluster.keys.users(), self._load, "SCRAM users",
                                       on_events=self.apply)

    # -- following etcd ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.follower.start()

    async def _load(self) -> None:
        loaded = await self.rt.run_in_thread(self.cluster.list_users)
        self.users = {name: _decode(raw) for name, raw in loaded.items()}

    async def stop(self) -> None:
        await self.follower.stop()

    def apply(self, events: list[WatchEvent]) -> None:
        prefix = self.cluster.keys.users()
        for event in events:
            name = unquote(event.key[len(prefix):])
            try:
                creds = _decode(orjson.loads(event.value)) if event.value is not None else {}
            except (ValueError, KeyError, TypeError) as exc:  # (written by a newer broker?)
                log.warning("ignoring the stored credentials of user %r: %s", name, exc)
                continue
            self._set(name, creds)

    def _set(self, name: str, creds: UserCredentials) -> None:
        if creds:
            self.users[name] = creds
        else:
            self.users.pop(name, None)

    def credential(self, user: str, mechanism: str) -> ScramCredential | None:
        creds = self.users.get(user)
        return None if creds is None else creds.get(mechanism)

    # -- DescribeUserScramCredentials -----------------------------------------------------------

    def describe(self, names: list[str] | None) -> list[tuple[str, int, str | None, list[tuple[int, int]]]]:
        """(user, error code, error message, [(mechanism type, iterations)]) per user asked
        for; every user when ``names`` is None or empty."""
        if not names:
            return [(name, 0, None, self._infos(name)) for name in sorted(self.users)]
        out = []
        for name in dict.fromkeys(names):
            if names.count(name) > 1:
                out.append((name, ErrorCode.DUPLICATE_RESOURCE,
                            "Cannot describe SCRAM credentials for the same user twice in a single request", []))
            elif name not in self.users:
                out.append((name, ErrorCode.RESOURCE_NOT_FOUND,
                            "Attempt to describe a user credential that does not exist", []))
            else:
                out.append((name, 0, None, self._infos(name)))
        return out

    def _infos(self, name: str) -> list[tuple[int, int]]:
        creds = self.users.get(name, {})
        return [(scram.TYPE_OF[m], c.iterations) for m, c in sorted(creds.items())]

    # -- AlterUserScramCredentials --------------------------------------------------------------

    async def alter(self, deletions: list[Deletion], upsertions: list[Upsertion]) -> list[tuple[str, int, str | None]]:
        """Apply the changes, each user's all or nothing; (user, error code, message) per user
        in the order first named."""
        ops: dict[str, list[Deletion | Upsertion]] = {}
        for op in [*deletions, *upsertions]:
            ops.setdefault(op.name, []).append(op)
        results = []
        for name, user_ops in ops.items():
            try:
                self._check(name, user_ops)
                new = await self.rt.run_in_thread(self.cluster.alter_user, name, _change(user_ops))
            except UserError as exc:
                results.append((name, int(exc.code), str(exc)))
                continue
            self._set(name, _decode(new))
            log.info("SASL user %r: credentials now %s", name, sorted(new) or "none (deleted)")
            results.append((name, 0, None))
        return results

    @staticmethod
    def _check(name: str, ops: list[Deletion | Upsertion]) -> None:
        mechanisms = [op.mechanism for op in ops]
        if len(set(mechanisms)) != len(mechanisms):
            raise UserError("A user credential cannot be altered twice in the same request",
                            ErrorCode.DUPLICATE_RESOURCE)
        if not name:
            raise UserError("Username must not be empty", ErrorCode.UNACCEPTABLE_CREDENTIAL)
        for op in ops:
            if op.mechanism not in scram.MECHANISM_TYPES:
                raise UserError("Unknown SCRAM mechanism", ErrorCode.UNSUPPORTED_SASL_MECHANISM)
            if isinstance(op, Upsertion):
                check_upsertion(op)

    # -- the deployment's admin user ---------------------------------------------------------

    async def ensure_user(self, name: str, password: str, iterations: int = scram.DEFAULT_ITERATIONS) -> bool:
        """Give ``name`` SCRAM-SHA-256 and -512 credentials of ``password`` unless it has them
        already (a changed password replaces them). Whether anything was written."""
        changed = False

        def change(current: dict[str, Any]) -> dict[str, Any]:
            nonlocal changed
            changed = False
            new = dict(current)
            for mechanism in (scram.SCRAM_SHA_256, scram.SCRAM_SHA_512):
                old = current.get(mechanism)
                if old is not None and scram.password_matches(mechanism, ScramCredential.from_json(old), password):
                    continue
                new[mechanism] = scram.from_password(mechanism, password, iterations).to_json()
                changed = True
            return new

        new = await self.rt.run_in_thread(self.cluster.alter_user, name, change)
        self._set(name, _decode(new))
        return changed


def _change(ops: list[Deletion | Upsertion]):
    def change(current: dict[str, Any]) -> dict[str, Any]:
        new = dict(current)
        for op in ops:
            mechanism = scram.MECHANISM_TYPES[op.mechanism]
            if isinstance(op, Deletion):
                if mechanism not in new:
                    raise UserError("Attempt to delete a user credential that does not exist",
                                    ErrorCode.RESOURCE_NOT_FOUND)
                del new[mechanism]
            else:
                new[mechanism] = scram.from_salted_password(mechanism, op.salt, op.salted_password,
                                                            op.iterations).to_json()
        return new

    return change
