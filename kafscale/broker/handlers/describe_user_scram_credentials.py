"""DescribeUserScramCredentials (key 50), version 0 (flexible): users' SCRAM mechanisms
and iterations (never a salt or key).

No users named (null or empty): every user. A user asked for twice is
DUPLICATE_RESOURCE, an unknown one RESOURCE_NOT_FOUND. Who may ask: see
``user_admin_error``.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode
from kafscale.protocol.messages import DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse
from kafscale.security import SASL_PLAINTEXT, SASL_SSL
from kafscale.security.acls import Operation
from kafscale.security.users import may_manage_users

R = DescribeUserScramCredentialsResponse


def user_admin_error(ctx, operation: Operation) -> tuple[int, str] | None:
    """Why this connection may not describe or alter users, if it may not: with the ACL
    authorizer, Kafka's rule (DESCRIBE or ALTER on the cluster); without it, anyone while
    no listener uses SASL, else only super users (docs/security.md)."""
    broker = ctx.broker
    if broker.authorizer.enabled:
        allowed = broker.authorizer.allowed_cluster(ctx, operation)
    else:
        sasl_on = any(lst.protocol in (SASL_PLAINTEXT, SASL_SSL) for lst in ctx.config.listener_list)
        allowed = may_manage_users(ctx.session, sasl_on, broker.authorizer.super_users())
    return None if allowed else (ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")


@handles(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, versions=(0, 0))
async def describe_user_scram_credentials(ctx, req: DescribeUserScramCredentialsRequest) -> R:
    refused = user_admin_error(ctx, Operation.DESCRIBE)
    names = None if req.users is None else [u.name for u in req.users]
    if refused and not names:
        return R(error_code=refused[0], error_message=refused[1], results=[])
    if refused:  # (per user: librdkafka 2.x crashes on a top-level error of a request naming users)
        return R(error_code=0, error_message=None, results=[
            R.DescribeUserScramCredentialsResult(user=n, error_code=refused[0], error_message=refused[1])
            for n in dict.fromkeys(names)])
    return R(error_code=0, error_message=None, results=[
        R.DescribeUserScramCredentialsResult(
            user=user, error_code=code, error_message=message,
            credential_infos=[R.CredentialInfo(mechanism=m, iterations=i) for m, i in infos])
        for user, code, message, infos in ctx.broker.users.describe(names)])
