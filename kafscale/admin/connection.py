"""A blocking connection to one broker: framing, correlation ids, and API versions.

On connect the client sends ApiVersions and keeps the broker's ranges; every request
then goes out at the highest version both sides support (the client's ceiling is in
``CLIENT_VERSIONS``: the versions this package's code fills and reads correctly).
"""

from __future__ import annotations

import socket
import ssl
import struct
from dataclasses import dataclass, field
from typing import Any

import scramp

from kafscale.errors import ErrorCode
from kafscale.protocol import REQUESTS, DecodeError, decode_response, encode_request
from kafscale.protocol.messages import ApiVersionsRequest, SaslAuthenticateRequest, SaslHandshakeRequest

CLIENT_ID = "kafscale-cli"

# api key -> (lowest, highest) version this client speaks. The ceilings stop before
# versions that change what a field means (Fetch v13 names topics by id, OffsetFetch v8
# batches groups, FindCoordinator v4 batches keys, OffsetCommit v9 is KIP-848's).
CLIENT_VERSIONS: dict[int, tuple[int, int]] = {
    0: (3, 9),     # Produce: magic-2 batches from v3
    1: (4, 12),    # Fetch
    2: (1, 8),     # ListOffsets
    3: (1, 12),    # Metadata
    8: (2, 8),     # OffsetCommit
    9: (1, 7),     # OffsetFetch
    10: (1, 3),    # FindCoordinator
    11: (0, 7),    # JoinGroup
    12: (0, 4),    # Heartbeat
    13: (0, 4),    # LeaveGroup
    14: (0, 5),    # SyncGroup
    15: (0, 5),    # DescribeGroups
    16: (0, 4),    # ListGroups
    18: (0, 3),    # ApiVersions
    19: (0, 7),    # CreateTopics
    20: (0, 5),    # DeleteTopics
    32: (1, 4),    # DescribeConfigs (config_source from v1)
    35: (0, 4),    # DescribeLogDirs
    37: (0, 3),    # CreatePartitions
    42: (0, 2),    # DeleteGroups
    44: (0, 1),    # IncrementalAlterConfigs
    60: (0, 1),    # DescribeCluster
    17: (1, 1),    # SaslHandshake
    36: (0, 2),    # SaslAuthenticate
    50: (0, 0),    # DescribeUserScramCredentials
    51: (0, 0),    # AlterUserScramCredentials
}

API_NAMES = {k: cls.__name__.removesuffix("Request") for k, cls in REQUESTS.items()}

_SIZE = struct.Struct(">i")


class ClientError(Exception):
    """A failure to report to the user as one line (no traceback)."""


class BrokerUnreachable(ClientError):
    pass


class UnsupportedApi(ClientError):
    pass


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error code {code}"


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ClientError(f"bad broker address {address!r}: expected host:port")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class SaslLogin:
    """SASL credentials for a SASL_PLAINTEXT listener: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."""

    mechanism: str
    username: str
    password: str = field(repr=False)


class Connection:
    """One TCP connection to one broker. ``request(req)`` sends and waits for the answer."""

    def __init__(self, host: str, port: int, *, connect_timeout: float = 5.0, timeout: float = 30.0,
                 sasl: SaslLogin | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.address = f"{host}:{port}"
        try:
            self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:
            raise BrokerUnreachable(f"cannot connect to {self.address}: {_reason(exc)}") from None
        if tls is not None:  # (SSL and SASL_SSL listeners)
            try:
                self.sock = tls.wrap_socket(self.sock, server_hostname=host)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                self.sock.close()
                reason = getattr(exc, "reason", None) or getattr(exc, "verify_message", None) or exc
                raise BrokerUnreachable(f"TLS with {self.address} failed: {reason}") from None
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.correlation = 0
        self.versions: dict[int, tuple[int, int]] = {}
        self.last_version = -1
        try:
            self._negotiate()
            if sasl is not None:
                self._authenticate(sasl)
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def _negotiate(self) -> None:
        resp = self._exchange(18, 3, ApiVersionsRequest(client_software_name=CLIENT_ID,
                                                        client_software_version="1"))
        if resp.error_code == ErrorCode.UNSUPPORTED_VERSION:  # the broker predates v3
            resp = self._exchange(18, 0, ApiVersionsRequest())
        if resp.error_code:
            raise ClientError(f"{self.address}: ApiVersions failed: {error_name(resp.error_code)}")
        self.versions = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}

    def _authenticate(self, login: SaslLogin) -> None:
        """SaslHandshake, then the mechanism's SaslAuthenticate rounds; for SCRAM the
        broker's final signature is checked too (it proves the broker holds the user's key)."""
        what = f"{self.address}: SASL {login.mechanism} as {login.username!r}"
        resp = self.request(SaslHandshakeRequest(mechanism=login.mechanism))
        if resp.error_code:
            offered = f" (the broker offers {', '.join(resp.mechanisms) or 'none'})" if resp.mechanisms else ""
            raise ClientError(f"{what}: {error_name(resp.error_code)}{offered}")

        def step(token: bytes) -> bytes:
            answer = self.request(SaslAuthenticateRequest(auth_bytes=token))
            if answer.error_code:
                raise ClientError(f"{what}: {error_name(answer.error_code)}"
                                  + (f": {answer.error_message}" if answer.error_message else ""))
            return answer.auth_bytes

        if login.mechanism == "PLAIN":
            step(f"\0{login.username}\0{login.password}".encode())
            return
        try:
            client = scramp.ScramClient([login.mechanism], login.username, login.password)
            server_first = step(client.get_client_first().encode())
            client.set_server_first(server_first.decode())
            server_final = step(client.get_client_final().encode())
            client.set_server_final(server_final.decode())
        except (scramp.ScramException, UnicodeDecodeError) as exc:
            raise ClientError(f"{what}: the SCRAM exchange failed: {exc}") from None

    def supports(self, api_key: int) -> bool:
        return self.version_for(api_key) is not None

    def version_for(self, api_key: int) -> int | None:
        """The highest version of ``api_key`` both sides speak, or None."""
        ours = CLIENT_VERSIONS.get(api_key, REQUESTS[api_key].VALID_VERSIONS)
        theirs = self.versions.get(api_key)
        if theirs is None:
            return None
        lo, hi = max(ours[0], theirs[0]), min(ours[1], theirs[1])
        return hi if lo <= hi else None

    def request(self, req: Any) -> Any:
        api_key = req.API_KEY
        version = self.version_for(api_key)
        if version is None:
            theirs = self.versions.get(api_key)
            what = "does not support" if theirs is None else f"supports only v{theirs[0]}-{theirs[1]} of"
            raise UnsupportedApi(f"broker {self.address} {what} {API_NAMES[api_key]} (API key {api_key})")
        self.last_version = version
        return self._exchange(api_key, version, req)

    def _exchange(self, api_key: int, version: int, req: Any) -> Any:
        self.correlation += 1
        frame = encode_request(api_key, version, self.correlation, CLIENT_ID, req)
        try:
            self.sock.sendall(frame)
            (size,) = _SIZE.unpack(self._recv(4))
            body = self._recv(size)
        except socket.timeout:
            raise ClientError(f"{self.address}: no answer to {API_NAMES[api_key]} "
                              f"within {self.sock.gettimeout():g} s") from None
        except OSError as exc:
            raise BrokerUnreachable(f"{self.address}: connection lost: {_reason(exc)}") from None
        try:
            correlation, resp = decode_response(api_key, version, body)
        except DecodeError as exc:
            raise ClientError(f"{self.address}: malformed {API_NAMES[api_key]} v{version} response: {exc}") from None
        if correlation != self.correlation:
            raise ClientError(f"{self.address}: response to request {correlation}, expected {self.correlation}")
        return resp

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise ConnectionResetError("closed by the broker")
            buf += chunk
        return bytes(buf)


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    return exc.strerror or str(exc) or type(exc).__name__
