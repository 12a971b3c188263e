"""AlterUserScramCredentials (key 51), version 0 (flexible): create, change and delete
users' SCRAM credentials.

An upsertion carries the salt and the salted password the client computed (the password
itself never crosses the wire); the broker stores the stored and server keys derived
from them in etcd before answering (kafscale/security/users.py), each user's changes all
or nothing. Kafka's errors per user: DUPLICATE_RESOURCE (a mechanism of a user altered
twice), UNSUPPORTED_SASL_MECHANISM, UNACCEPTABLE_CREDENTIAL (iterations outside
4096-16384, an empty user name, a short salt), RESOURCE_NOT_FOUND (deleting a
credential that does not exist).
"""

from __future__ import annotations

from kafscale.broker.handlers.describe_user_scram_credentials import user_admin_error
from kafscale.broker.registry import ApiKey, handles
from kafscale.protocol.messages import AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse
from kafscale.security.acls import Operation
from kafscale.security.users import Deletion, Upsertion

R = AlterUserScramCredentialsResponse


@handles(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, versions=(0, 0))
async def alter_user_scram_credentials(ctx, req: AlterUserScramCredentialsRequest) -> R:
    refused = user_admin_error(ctx, Operation.ALTER)
    if refused:
        users = dict.fromkeys([d.name for d in req.deletions] + [u.name for u in req.upsertions])
        return R(results=[R.AlterUserScramCredentialsResult(user=u, error_code=refused[0], error_message=refused[1])
                          for u in users])
    results = await ctx.broker.users.alter(
        [Deletion(d.name, d.mechanism) for d in req.deletions],
        [Upsertion(u.name, u.mechanism, u.iterations, bytes(u.salt), bytes(u.salted_password))
         for u in req.upsertions])
    return R(results=[R.AlterUserScramCredentialsResult(user=user, error_code=code, error_message=message)
                      for user, code, message in results])
