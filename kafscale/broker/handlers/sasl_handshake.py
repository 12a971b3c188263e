"""SaslHandshake (key 17), version 1: choose the SASL mechanism of a connection.

The state machine is kafscale/security/sasl.py's: an enabled mechanism starts the
exchange (SaslAuthenticate follows); an unknown one is answered
UNSUPPORTED_SASL_MECHANISM with the enabled list and the connection closed; a handshake
on a listener without SASL, or after authentication by a client that cannot
re-authenticate, is ILLEGAL_SASL_STATE. Version 0 (the SASL tokens then follow raw,
outside Kafka's request framing) is not served, as in Kafka 4.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.protocol.messages import SaslHandshakeRequest, SaslHandshakeResponse


@handles(ApiKey.SASL_HANDSHAKE, versions=(1, 1))
async def sasl_handshake(ctx, req: SaslHandshakeRequest) -> SaslHandshakeResponse:
    code, mechanisms = ctx.broker.sasl.handshake(ctx.session, req.mechanism)
    return SaslHandshakeResponse(error_code=code, mechanisms=mechanisms)
