"""SASL: SCRAM against RFC 7677's published example, the SaslHandshake/SaslAuthenticate
state machine over a Session (kafscale/security/sasl.py), the failure delay, the user
store's Kafka rules (kafscale/security/users.py) and a hypothesis fuzz of the exchange."""

from __future__ import annotations

import asyncio
import base64

import pytest
import scramp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafscale.errors import ErrorCode
from kafscale.metadata.cluster import Cluster
from kafscale.metadata.memory import MemoryStore
from kafscale.security import PLAINTEXT, SASL_PLAINTEXT, SASL_SSL, Session
from kafscale.security import scram
from kafscale.security.sasl import FAILED_MESSAGE, FailureDelay, SaslAuthenticator, Stage
from kafscale.security.users import Deletion, Upsertion, UserStore, may_manage_users


class FakeRuntime:
    """Enough of kafscale.runtime.Runtime for code that only sleeps and runs threads."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def run_in_thread(self, fn, *args):
        return fn(*args)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def run(coro):
    return asyncio.run(coro)


class Users:
    def __init__(self) -> None:
        self.creds: dict[tuple[str, str], scram.ScramCredential] = {}

    def add(self, user: str, password: str, iterations: int = 4096,
            mechanisms=(scram.SCRAM_SHA_256, scram.SCRAM_SHA_512)) -> None:
        for m in mechanisms:
            self.creds[(user, m)] = scram.from_password(m, password, iterations)

    def __call__(self, user: str, mechanism: str):
        return self.creds.get((user, mechanism))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(users: Users | None = None, reauth_ms: int = 0, **kw) -> tuple[SaslAuthenticator, list]:
    results: list = []
    auth = SaslAuthenticator(users or Users(), lambda: ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"],
                             lambda: reauth_ms, FailureDelay(0.1), lambda m, ok: results.append((m, ok)), **kw)
    return auth, results


def sasl_session(peer: str = "10.0.0.1") -> Session:
    return Session.for_listener(SASL_PLAINTEXT, peer=peer)


def scram_login(auth: SaslAuthenticator, rt, session: Session, mechanism: str, user: str, password: str,
                version: int = 1):
    """A whole SCRAM exchange with scramp's client; the last answer (or the failed one)."""
    code, _ = auth.handshake(session, mechanism)
    assert code == 0
    client = scramp.ScramClient([mechanism], user, password)
    a = run(auth.authenticate(rt, session, version, client.get_client_first().encode()))
    if a.error_code:
        return a
    client.set_server_first(a.auth_bytes.decode())
    a = run(auth.authenticate(rt, session, version, client.get_client_final().encode()))
    if not a.error_code:
        client.set_server_final(a.auth_bytes.decode())  # the server proved it knows the server key
    return a


def plain_login(auth, rt, session, user, password, authzid="", version=1):
    assert auth.handshake(session, "PLAIN")[0] == 0
    return run(auth.authenticate(rt, session, version, f"{authzid}\0{user}\0{password}".encode()))


# -- RFC 7677 ---------------------------------------------------------------------------------

RFC7677 = {
    "salt": "W22ZaJ0SNY7soEsUEjb6gQ==", "iterations": 4096,
    "client_first": "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "server_first": "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "client_final": "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "server_final": "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}


def test_rfc7677_example_through_the_handshake_and_authenticate_path():
    """RFC 7677 section 3: user "user", password "pencil"; the broker's SCRAM-SHA-256 server,
    given the RFC's salt, iterations and server nonce, answers byte for byte as the RFC does,
    accepts the client's proof and authenticates the session as User:user."""
    users = Users()
    salt = base64.b64decode(RFC7677["salt"])
    users.creds[("user", "SCRAM-SHA-256")] = scram.from_password("SCRAM-SHA-256", "pencil", 4096, salt)
    auth, results = make(users, nonce=lambda: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    session, rt = sasl_session(), FakeRuntime()
    assert auth.handshake(session, "SCRAM-SHA-256") == (0, ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
    first = run(auth.authenticate(rt, session, 2, RFC7677["client_first"].encode()))
    assert (first.error_code, first.auth_bytes.decode()) == (0, RFC7677["server_first"])
    assert not session.authenticated
    final = run(auth.authenticate(rt, session, 2, RFC7677["client_final"].encode()))
    assert (final.error_code, final.auth_bytes.decode()) == (0, RFC7677["server_final"])
    assert session.authenticated and session.principal == "User:user" and session.mechanism == "SCRAM-SHA-256"
    assert results == [("SCRAM-SHA-256", True)]


def test_rfc7677_keys_are_what_is_stored():
    """The stored credential is (salt, StoredKey, ServerKey, i), derived from the salted
    password a client sends in AlterUserScramCredentials the same way as from the password."""
    salt = base64.b64decode(RFC7677["salt"])
    salted = scram.salted_password("SCRAM-SHA-256", "pencil", salt, 4096)
    a = scram.from_salted_password("SCRAM-SHA-256", salt, salted, 4096)
    assert a == scram.from_password("SCRAM-SHA-256", "pencil", 4096, salt)
    assert a.as_tuple() == scramp.ScramMechanism("SCRAM-SHA-256").make_auth_info("pencil", 4096, salt)
    assert scram.password_matches("SCRAM-SHA-256", a, "pencil")
    assert not scram.password_matches("SCRAM-SHA-256", a, "pencil ")
    assert "pencil" not in str(a.to_json()) and scram.ScramCredential.from_json(a.to_json()) == a


def test_a_wrong_proof_in_the_rfc_exchange_fails():
    users = Users()
    salt = base64.b64decode(RFC7677["salt"])
    users.creds[("user", "SCRAM-SHA-256")] = scram.from_password("SCRAM-SHA-256", "pencil", 4096, salt)
    auth, _ = make(users, nonce=lambda: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    session, rt = sasl_session(), FakeRuntime()
    auth.handshake(session, "SCRAM-SHA-256")
    run(auth.authenticate(rt, session, 1, RFC7677["client_first"].encode()))
    bad = RFC7677["client_final"].replace("p=dHzb", "p=dHzc")
    a = run(auth.authenticate(rt, session, 1, bad.encode()))
    assert (a.error_code, a.error_message) == (ErrorCode.SASL_AUTHENTICATION_FAILED, FAILED_MESSAGE)
    assert not session.authenticated and session.closing


# -- the state machine ------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_login_and_failures_look_the_same(mechanism):
    users = Users()
    users.add("alice", "s3cret")
    auth, results = make(users)
    rt = FakeRuntime()
    ok = sasl_session()
    a = scram_login(auth, rt, ok, mechanism, "alice", "s3cret")
    assert a.error_code == 0 and ok.authenticated and ok.principal == "User:alice" and not ok.closing
    answers = []
    for user, password in (("alice", "wrong"), ("mallory", "s3cret")):
        s = sasl_session()
        a = scram_login(auth, rt, s, mechanism, user, password)
        answers.append((a.error_code, a.error_message))
        assert not s.authenticated and s.principal == "User:ANONYMOUS" and s.closing
    # Unknown user and wrong password: the same code, message, and step of the exchange.
    assert answers == [(ErrorCode.SASL_AUTHENTICATION_FAILED, FAILED_MESSAGE)] * 2
    assert results == [(mechanism, True), (mechanism, False), (mechanism, False)]


def test_unknown_users_get_a_stable_made_up_salt():
    auth, _ = make(Users())
    rt = FakeRuntime()
    firsts = []
    for _ in range(2):
        s = sasl_session()
        auth.handshake(s, "SCRAM-SHA-512")
        a = run(auth.authenticate(rt, s, 1, b"n,,n=ghost,r=abcdefgh"))
        assert a.error_code == 0  # the first step is answered as for a real user
        firsts.append(a.auth_bytes.decode().split(",")[1:])
    assert firsts[0] == firsts[1]


def test_plain_checks_the_password_against_the_scram_credential():
    users = Users()
    users.add("bob", "hunter2", mechanisms=(scram.SCRAM_SHA_256,))
    auth, results = make(users)
    rt = FakeRuntime()
    s = sasl_session()
    a = plain_login(auth, rt, s, "bob", "hunter2")
    assert a.error_code == 0 and s.principal == "User:bob" and s.authenticated
    for user, password, authzid in (("bob", "hunter3", ""), ("nobody", "hunter2", ""), ("bob", "hunter2", "admin")):
        s = sasl_session()
        a = plain_login(auth, rt, s, user, password, authzid)
        assert (a.error_code, a.error_message) == (ErrorCode.SASL_AUTHENTICATION_FAILED, FAILED_MESSAGE)
        assert not s.authenticated and s.closing
    assert [ok for _, ok in results] == [True, False, False, False]


@pytest.mark.parametrize("token", [b"", b"bob", b"\0bob", b"a\0b\0c\0d", b"\0\0", b"\0bob\0", b"\xff\0\xfe\0\xfd",
                                   b"\0bob\0" + b"x" * 70_000])
def test_malformed_plain_messages_fail(token):
    users = Users()
    users.add("bob", "x" * 70_000)
    auth, _ = make(users)
    s = sasl_session()
    auth.handshake(s, "PLAIN")
    a = run(auth.authenticate(FakeRuntime(), s, 1, token))
    assert a.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED and not s.authenticated and s.closing


def test_nothing_more_is_served_after_a_failure():
    """A SaslAuthenticate pipelined behind a failed one gets ILLEGAL_SASL_STATE, never a
    second try on the same connection."""
    users = Users()
    users.add("bob", "pw")
    auth, results = make(users)
    s, rt = sasl_session(), FakeRuntime()
    assert plain_login(auth, rt, s, "bob", "wrong").error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
    a = run(auth.authenticate(rt, s, 1, b"\0bob\0pw"))
    assert a.error_code == ErrorCode.ILLEGAL_SASL_STATE and not s.authenticated and s.closing
    assert results == [("PLAIN", False)]


def test_handshake_errors():
    auth, _ = make()
    plain = Session.for_listener(PLAINTEXT)
    assert auth.handshake(plain, "PLAIN") == (ErrorCode.ILLEGAL_SASL_STATE, [])
    assert not plain.closing
    s = sasl_session()
    code, mechanisms = auth.handshake(s, "GSSAPI")
    assert code == ErrorCode.UNSUPPORTED_SASL_MECHANISM and mechanisms == ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
    assert s.closing
    s = sasl_session()
    assert auth.handshake(s, "PLAIN")[0] == 0
    assert auth.handshake(s, "PLAIN")[0] == ErrorCode.ILLEGAL_SASL_STATE and s.closing  # twice


def test_authenticate_before_the_handshake_or_after_success():
    users = Users()
    users.add("bob", "pw")
    auth, _ = make(users)
    rt = FakeRuntime()
    s = sasl_session()
    a = run(auth.authenticate(rt, s, 1, b"\0bob\0pw"))
    assert a.error_code == ErrorCode.ILLEGAL_SASL_STATE and s.closing and not s.authenticated
    s = sasl_session()
    plain_login(auth, rt, s, "bob", "pw")
    a = run(auth.authenticate(rt, s, 1, b"\0bob\0pw"))
    assert a.error_code == ErrorCode.ILLEGAL_SASL_STATE and not s.closing and s.authenticated
    a = run(auth.authenticate(rt, Session.for_listener(PLAINTEXT), 1, b"\0bob\0pw"))
    assert a.error_code == ErrorCode.ILLEGAL_SASL_STATE


def test_session_lifetime_and_reauthentication():
    users = Users()
    users.add("alice", "pw")
    users.add("eve", "pw2")
    clock = Clock()
    auth, _ = make(users, reauth_ms=5000, clock=clock)
    rt = FakeRuntime()
    s = Session.for_listener(SASL_SSL)
    a = scram_login(auth, rt, s, "SCRAM-SHA-512", "alice", "pw")
    assert a.session_lifetime_ms == 5000 and s.expires_at == clock.now + 5.0
    assert not s.expired_for(3, clock.now + 4.9) and s.expired_for(3, clock.now + 5.0)
    assert not s.expired_for(17, clock.now + 9) and not s.expired_for(36, clock.now + 9)
    # Re-authentication: same mechanism and principal; the session is renewed.
    clock.now += 4
    a = scram_login(auth, rt, s, "SCRAM-SHA-512", "alice", "pw")
    assert a.error_code == 0 and s.expires_at == clock.now + 5.0 and s.authenticated
    # Another mechanism: refused and closed.
    code, _ = auth.handshake(s, "PLAIN")
    assert code == ErrorCode.UNSUPPORTED_SASL_MECHANISM and s.closing
    # Another principal: refused and closed, the connection's principal unchanged.
    s2 = Session.for_listener(SASL_SSL)
    scram_login(auth, rt, s2, "SCRAM-SHA-256", "alice", "pw")
    a = scram_login(auth, rt, s2, "SCRAM-SHA-256", "eve", "pw2")
    assert a.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED and s2.closing and s2.principal == "User:alice"


def test_v0_clients_get_no_lifetime_and_cannot_reauthenticate():
    users = Users()
    users.add("alice", "pw")
    auth, _ = make(users, reauth_ms=5000)
    s, rt = sasl_session(), FakeRuntime()
    a = plain_login(auth, rt, s, "alice", "pw", version=0)
    assert a.session_lifetime_ms == 0 and s.expires_at is not None  # (closed when it ends, as Kafka does)
    assert auth.handshake(s, "PLAIN")[0] == ErrorCode.ILLEGAL_SASL_STATE and not s.closing


def test_no_lifetime_without_reauth_ms():
    users = Users()
    users.add("alice", "pw")
    auth, _ = make(users)
    s = sasl_session()
    assert plain_login(auth, FakeRuntime(), s, "alice", "pw").session_lifetime_ms == 0 and s.expires_at is None


def test_failure_delay_grows_per_peer_and_is_bounded():
    d = FailureDelay(base=0.1, cap=5.0, half_life=60.0, max_peers=100)
    delays = [d.failed("1.2.3.4", 0.0) for _ in range(12)]
    assert delays[0] == pytest.approx(0.1) and delays[1] == pytest.approx(0.2) and delays[-1] == 5.0
    assert delays == sorted(delays)
    assert d.failed("5.6.7.8", 0.0) == pytest.approx(0.1)  # another peer is not slowed
    assert d.failed("1.2.3.4", 3600.0) == pytest.approx(0.1, rel=0.01)  # forgotten after an hour
    for i in range(1000):
        d.failed(f"10.0.{i // 256}.{i % 256}", 10.0)
    assert len(d.peers) <= 100


def test_failed_authentication_waits_the_delay():
    auth, _ = make(Users())
    rt = FakeRuntime()
    for _ in range(3):
        plain_login(auth, rt, sasl_session("9.9.9.9"), "x", "y")
    assert rt.slept == pytest.approx([0.1, 0.2, 0.4], rel=0.01)


# -- fuzz ---------------------------------------------------------------------------------------

MECHS = st.sampled_from(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "", "scram-sha-256", "x" * 300])
STEP = st.one_of(st.tuples(st.just("handshake"), MECHS),
                 st.tuples(st.just("auth"), st.one_of(
                     st.binary(max_size=200),
                     st.sampled_from([b"n,,n=alice,r=abc", b"\0alice\0wrong", b"\0alice\0", b"c=biws,r=abc,p=AAAA",
                                      b"p,,n=alice,r=x", b"n,a=bob,n=alice,r=abc", b"n,,n=alice,r=abc,tokenauth=true",
                                      b"n,,n=alice,r=abc,m=ext", b"n,,n==41,r=x", "n,,n=ålice,r=\u00e9".encode()]))))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEP, max_size=8), version=st.integers(0, 2))
def test_fuzzed_exchanges_never_authenticate_without_the_password(steps, version):
    """Any sequence of handshakes and tokens, malformed, out of order or oversized: every
    answer is an error code or a step of the exchange, never an exception, and the session
    never authenticates (nobody here knows alice's password); after a close is asked for
    nothing more is processed, as the server would."""
    users = Users()
    users.add("alice", "the real password", iterations=4096)
    auth, _ = make(users)
    s, rt = sasl_session(), FakeRuntime()
    for kind, arg in steps:
        if kind == "handshake":
            code, _ = auth.handshake(s, arg)
            assert code in (0, ErrorCode.ILLEGAL_SASL_STATE, ErrorCode.UNSUPPORTED_SASL_MECHANISM)
        else:
            a = run(auth.authenticate(rt, s, version, arg))
            assert a.error_code in (0, ErrorCode.ILLEGAL_SASL_STATE, ErrorCode.SASL_AUTHENTICATION_FAILED)
            if a.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED:
                assert a.error_message == FAILED_MESSAGE
        assert not s.authenticated and s.principal == "User:ANONYMOUS"
        if s.closing:
            break
    assert s.sasl is None or s.sasl.stage is not Stage.COMPLETE


# -- users --------------------------------------------------------------------------------------


def user_store() -> UserStore:
    return UserStore(FakeRuntime(), Cluster(MemoryStore(), "/t"))


def upsert(name, mechanism=1, iterations=4096, password="pw", salt=b"s" * 16):
    mech = scram.MECHANISM_TYPES.get(mechanism, "SCRAM-SHA-256")
    return Upsertion(name, mechanism, iterations, salt, scram.salted_password(mech, password, salt, max(iterations, 1)))


def test_alter_and_describe_users_with_kafkas_errors():
    users = user_store()
    results = run(users.alter([], [upsert("alice"), upsert("alice", 2, 8192), upsert("bob", 2)]))
    assert results == [("alice", 0, None), ("bob", 0, None)]
    assert users.describe(None) == [("alice", 0, None, [(1, 4096), (2, 8192)]), ("bob", 0, None, [(2, 4096)])]
    assert users.describe(["alice", "carol", "bob", "bob"]) == [
        ("alice", 0, None, [(1, 4096), (2, 8192)]),
        ("carol", ErrorCode.RESOURCE_NOT_FOUND, "Attempt to describe a user credential that does not exist", []),
        ("bob", ErrorCode.DUPLICATE_RESOURCE,
         "Cannot describe SCRAM credentials for the same user twice in a single request", [])]
    results = run(users.alter([Deletion("bob", 1), Deletion("alice", 1), Deletion("zed", 3)],
                              [upsert("carol", 1, 4095), upsert("dave", 2, 16385), upsert("erin", 1), upsert("erin", 1),
                               upsert("", 1), upsert("frank", 1, salt=b"short")]))
    codes = {user: code for user, code, _ in results}
    assert codes == {"bob": ErrorCode.RESOURCE_NOT_FOUND, "alice": 0, "zed": ErrorCode.UNSUPPORTED_SASL_MECHANISM,
                     "carol": ErrorCode.UNACCEPTABLE_CREDENTIAL, "dave": ErrorCode.UNACCEPTABLE_CREDENTIAL,
                     "erin": ErrorCode.DUPLICATE_RESOURCE, "": ErrorCode.UNACCEPTABLE_CREDENTIAL,
                     "frank": ErrorCode.UNACCEPTABLE_CREDENTIAL}
    assert users.describe(None) == [("alice", 0, None, [(2, 8192)]), ("bob", 0, None, [(2, 4096)])]
    run(users.alter([Deletion("bob", 2)], []))
    assert [u for u, *_ in users.describe(None)] == ["alice"]
    assert users.cluster.store.get(users.cluster.keys.user("bob")) is None  # the last credential takes the key


def test_stored_credentials_hold_no_password_and_log_in():
    users = user_store()
    run(users.alter([], [upsert("alice", 2, password="correct horse")]))
    raw = users.cluster.store.get(users.cluster.keys.user("alice"))
    assert b"correct horse" not in raw and b"stored_key" in raw
    auth, _ = make()
    auth.lookup = users.credential
    s = sasl_session()
    assert scram_login(auth, FakeRuntime(), s, "SCRAM-SHA-512", "alice", "correct horse").error_code == 0


def test_another_brokers_store_follows_the_watch():
    store = MemoryStore()
    a, b = (UserStore(FakeRuntime(), Cluster(store, "/t")) for _ in range(2))
    events: list = []
    store.watch_prefix("/t/users/", events.append)
    run(a.alter([], [upsert("a,b/c")]))
    for batch in events:
        b.apply(batch)
    assert b.credential("a,b/c", "SCRAM-SHA-256") == a.credential("a,b/c", "SCRAM-SHA-256") is not None
    run(a.alter([Deletion("a,b/c", 1)], []))
    for batch in events:
        b.apply(batch)
    assert b.credential("a,b/c", "SCRAM-SHA-256") is None


def test_the_admin_user_is_written_once_and_updated_when_its_password_changes():
    users = user_store()
    assert run(users.ensure_user("admin", "first", iterations=4096))
    raw = users.cluster.store.get(users.cluster.keys.user("admin"))
    assert not run(users.ensure_user("admin", "first", iterations=4096))
    assert users.cluster.store.get(users.cluster.keys.user("admin")) == raw
    assert run(users.ensure_user("admin", "second", iterations=4096))
    cred = users.credential("admin", "SCRAM-SHA-512")
    assert scram.password_matches("SCRAM-SHA-512", cred, "second") and b"second" not in \
        users.cluster.store.get(users.cluster.keys.user("admin"))


def test_who_may_manage_users():
    anon, admin = Session(), Session(principal="User:admin")
    assert may_manage_users(anon, False, [])
    assert not may_manage_users(anon, True, ["User:admin"])
    assert may_manage_users(admin, True, ["User:admin"])
    assert may_manage_users(anon, True, ["User:ANONYMOUS"])


# -- options ------------------------------------------------------------------------------------


def test_sasl_options_are_checked(tmp_path):
    from kafscale import config as cfgmod

    def build(**env):
        return cfgmod.from_sources({}, {f"KAFSCALE_{k.upper()}": v for k, v in env.items()})

    assert cfgmod.sasl_mechanisms(build(sasl_enabled_mechanisms="scram-sha-256, PLAIN")) == ["SCRAM-SHA-256", "PLAIN"]
    for bad, words in ((dict(sasl_enabled_mechanisms="GSSAPI"), "unknown GSSAPI"),
                       (dict(sasl_enabled_mechanisms=","), "empty"),
                       (dict(connections_max_reauth_ms="-1"), "must not be negative"),
                       (dict(sasl_admin_user="admin"), "needs --sasl-admin-password"),
                       (dict(sasl_admin_password="pw"), "set --sasl-admin-user"),
                       (dict(sasl_admin_user="a", sasl_admin_password="pw", sasl_admin_password_file="f"),
                        "give one of them"),
                       (dict(sasl_admin_user="a", sasl_admin_password_file=str(tmp_path / "missing")),
                        "--sasl-admin-password-file")):
        with pytest.raises(cfgmod.ConfigError, match=words):
            build(**bad)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(cfgmod.ConfigError, match="empty"):
        build(sasl_admin_user="a", sasl_admin_password_file=str(empty))
    secret = tmp_path / "secret"
    secret.write_text("s3cret \n")
    cfg = build(sasl_admin_user="a", sasl_admin_password_file=str(secret))
    assert cfgmod.sasl_admin_password(cfg) == "s3cret "  # one newline dropped, nothing else
    assert cfgmod.sasl_admin_password(build(sasl_admin_user="a", sasl_admin_password="pw")) == "pw"


def test_secrets_are_not_described():
    from kafscale.config import OPTIONS

    by_name = {o.name: o for o in OPTIONS}
    assert by_name["sasl_admin_password"].sensitive
    assert by_name["connections_max_reauth_ms"].config_name == "connections.max.reauth.ms"
    assert by_name["sasl_enabled_mechanisms"].config_name == "sasl.enabled.mechanisms"


def test_the_sasl_apis_are_advertised():
    import kafscale.broker.handlers  # noqa: F401 - registers the handlers
    from kafscale.broker.registry import REGISTRY

    versions = {r.api_key: (r.min_version, r.max_version) for r in REGISTRY.supported()}
    assert versions[17] == (1, 1) and versions[36] == (0, 2) and versions[50] == (0, 0) and versions[51] == (0, 0)
