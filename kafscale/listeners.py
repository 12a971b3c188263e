"""Listeners as Kafka writes them: ``SASL_SSL://0.0.0.0:9094,PLAINTEXT://127.0.0.1:9092``.

Each entry is ``PROTOCOL://host:port``; the listener's name is its security protocol
(PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL), so a broker has at most one listener of
each protocol. Kafka's custom names (``INTERNAL://`` with listener.security.protocol.map)
are not supported. An empty host binds every address (as ``0.0.0.0`` does); IPv6 hosts
are written in brackets (``SSL://[::1]:9094``). Port 0 binds a free port (tests).

Pure parsing: config.py validates with it, the server binds what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
TLS_PROTOCOLS = ("SSL", "SASL_SSL")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class Listener:
    name: str  # the listener's name: its security protocol here
    protocol: str
    host: str
    port: int

    @property
    def uses_tls(self) -> bool:
        return self.protocol in TLS_PROTOCOLS

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}://{host}:{self.port if port is None else port}"


def parse(text: str) -> list[Listener]:
    """The listeners ``text`` names, in order; ValueError saying what is wrong."""
    out: list[Listener] = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            raise ValueError(f"empty entry in {text!r}")
        name, sep, rest = entry.partition("://")
        if not sep:
            raise ValueError(f"expected PROTOCOL://host:port, not {entry!r}")
        name = name.strip().upper()
        if name not in PROTOCOLS:
            raise ValueError(f"unknown security protocol {name!r} in {entry!r} (choose {', '.join(PROTOCOLS)})")
        if rest.startswith("["):
            host, bracket, port_text = rest[1:].partition("]")
            if not bracket or not port_text.startswith(":"):
                raise ValueError(f"expected PROTOCOL://[ipv6]:port, not {entry!r}")
            port_text = port_text[1:]
        else:
            host, colon, port_text = rest.rpartition(":")
            if not colon or ":" in host:
                raise ValueError(f"expected PROTOCOL://host:port, not {entry!r}")
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"not a port number in {entry!r}") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"not a port number (0-65535) in {entry!r}")
        if any(listener.name == name for listener in out):
            raise ValueError(f"listener {name} named twice")
        if port and any(listener.port == port for listener in out):
            raise ValueError(f"port {port} used by two listeners")
        out.append(Listener(name, name, host, port))
    return out
