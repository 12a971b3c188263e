"""DescribeGroups (key 15), versions 0-5.

v1 throttle time; v3 include_authorized_operations; v4 members' group_instance_id;
v5 flexible. An unknown group is described as Dead with no error, as Kafka does.
Members' metadata and assignments are filled only when the group is Stable.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode
from kafscale.security.acls import Operation
from kafscale.protocol.messages import DescribeGroupsRequest, DescribeGroupsResponse

R = DescribeGroupsResponse

NOT_REQUESTED = -2147483648
# READ, DELETE, DESCRIBE: what a group ACL can grant (no authorizer: everything)
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)


@handles(ApiKey.DESCRIBE_GROUPS, versions=(0, 5))
async def describe_groups(ctx, req: DescribeGroupsRequest) -> DescribeGroupsResponse:
    ops = GROUP_OPERATIONS if ctx.version >= 3 and req.include_authorized_operations else NOT_REQUESTED
    out = []
    for group_id in req.groups:
        if not ctx.broker.authorizer.group(ctx, Operation.DESCRIBE, group_id):
            out.append(R.DescribedGroup(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, group_id=group_id,
                                        group_state="", protocol_type="", protocol_data="", members=[],
                                        authorized_operations=ops))
            continue
        code, d = ctx.broker.groups.describe(group_id)
        out.append(R.DescribedGroup(
            error_code=code, group_id=group_id, group_state=d.state, protocol_type=d.protocol_type,
            protocol_data=d.protocol, authorized_operations=ops,
            members=[R.DescribedGroupMember(member_id=m.member_id, group_instance_id=m.group_instance_id,
                                            client_id=m.client_id, client_host=m.client_host,
                                            member_metadata=m.metadata, member_assignment=m.assignment)
                     for m in d.members]))
    return R(groups=out)
