"""TLS of the SSL and SASL_SSL listeners: the server context from PEM files, reloaded
when they change, and the principal of a client certificate.

``ServerTls.context()`` is asked for the context at every new connection; every
``check_interval`` seconds it first compares the files' modification times (and sizes,
inodes) with those of the loaded context, and loads them again if any changed (cert-manager
and Kubernetes Secret volumes replace them). Connections already open keep the context
they were made with. A new set of files that does not load (a half-written key, a
certificate that does not match it) leaves the old context in place and is logged once.

TLS 1.2 is the oldest version accepted; renegotiation is off. Client certificates
(``client_auth``, Kafka's ssl.client.auth): ``none`` asks for none, ``requested`` checks
one if the client sends it, ``required`` refuses clients without a valid one.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from typing import Callable

from cryptography import x509

log = logging.getLogger(__name__)

VERIFY_MODES = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def principal_of(der: bytes) -> str:
    """Kafka's default principal of a client certificate: ``User:`` and the subject's
    distinguished name in RFC 2253 form (``User:CN=alice,O=acme``)."""
    return "User:" + x509.load_der_x509_certificate(der).subject.rfc4514_string()


def build_context(cert_file: str, key_file: str, ca_file: str = "", client_auth: str = "none") -> ssl.SSLContext:
    """A server context from PEM files; ssl.SSLError or OSError when they do not load."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(cert_file, key_file)
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    ctx.verify_mode = VERIFY_MODES[client_auth]
    return ctx


class ServerTls:
    """The current server context of the TLS listeners (see the module's doc)."""

    def __init__(self, cert_file: str, key_file: str, ca_file: str = "", client_auth: str = "none",
                 check_interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.files = tuple(f for f in (cert_file, key_file, ca_file) if f)
        self.cert_file, self.key_file, self.ca_file = cert_file, key_file, ca_file
        self.client_auth = client_auth
        self.check_interval = check_interval
        self.clock = clock
        self.reloads = 0
        self._signature = self._stat()
        self._failed: tuple | None = None  # signature of files that did not load (logged once)
        self._ctx = build_context(cert_file, key_file, ca_file, client_auth)  # a bad start fails at once
        self._checked = clock()

    @property
    def verifies_clients(self) -> bool:
        return self.client_auth != "none"

    def _stat(self) -> tuple:
        out = []
        for path in self.files:
            try:
                st = os.stat(path)
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def context(self) -> ssl.SSLContext:
        """The context for a new connection (reloaded first when the files changed)."""
        now = self.clock()
        if now - self._checked >= self.check_interval:
            self._checked = now
            self.reload_if_changed()
        return self._ctx

    def reload_if_changed(self) -> bool:
        """Load the files again if they changed since last loaded; whether a new context is in use."""
        signature = self._stat()
        if signature == self._signature or signature == self._failed:
            return False
        try:
            ctx = build_context(self.cert_file, self.key_file, self.ca_file, self.client_auth)
        except (ssl.SSLError, OSError, ValueError) as exc:
            self._failed = signature
            log.warning("TLS certificate files changed but do not load, keeping the previous ones: %s", exc)
            return False
        self._ctx, self._signature, self._failed = ctx, signature, None
        self.reloads += 1
        log.info("TLS certificate files reloaded (%s)", self.cert_file)
        return True
