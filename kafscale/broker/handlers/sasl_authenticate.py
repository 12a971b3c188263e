"""SaslAuthenticate (key 36), versions 0-2: one round of the SASL exchange.

PLAIN takes one round, SCRAM-SHA-256/512 two (kafscale/security/sasl.py). Success sets
the session's principal (``User:<name>``); a failure is answered
SASL_AUTHENTICATION_FAILED with one generic message after a delay that grows with the
peer's recent failures, and the connection is closed. v1 adds session_lifetime_ms
(connections.max.reauth.ms; KIP-368 re-authentication); v2 is flexible.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.protocol.messages import SaslAuthenticateRequest, SaslAuthenticateResponse


@handles(ApiKey.SASL_AUTHENTICATE, versions=(0, 2))
async def sasl_authenticate(ctx, req: SaslAuthenticateRequest) -> SaslAuthenticateResponse:
    a = await ctx.broker.sasl.authenticate(ctx.rt, ctx.session, ctx.version, req.auth_bytes)
    return SaslAuthenticateResponse(error_code=a.error_code, error_message=a.error_message,
                                    auth_bytes=a.auth_bytes, session_lifetime_ms=a.session_lifetime_ms)
