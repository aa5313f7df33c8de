"""Kafka ACLs (KIP-140: CreateAcls, DescribeAcls, DeleteAcls), for `lvvx topics apply`.

aiokafka's admin client does not expose these calls, but its protocol module defines the
requests; this module sends them over the transport's admin connection and turns the
answers into `Acl` values. Like `_kafka.py`, it is the edge where aiokafka is used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest

from broker._errors import TransportError
from broker.transport._kafka import KafkaTransport, _translated


class ResourceType(IntEnum):
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class PatternType(IntEnum):
    ANY = 1
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12


class Permission(IntEnum):
    ANY = 1
    DENY = 2
    ALLOW = 3


@dataclass(frozen=True, slots=True, order=True)
class Acl:
    """One ACL binding: ``principal`` may (or may not) do ``operation`` on a resource."""

    principal: str  # "User:<party id>"
    resource_type: ResourceType
    resource_name: str
    pattern: PatternType
    operation: Operation
    permission: Permission = Permission.ALLOW
    host: str = "*"

    def __str__(self) -> str:
        how = "" if self.pattern is PatternType.LITERAL else f" ({self.pattern.name.lower()})"
        verb = "ALLOW" if self.permission is Permission.ALLOW else "DENY"
        return f"{verb} {self.principal} {self.operation.name} {self.resource_type.name} {self.resource_name}{how}"


def _check(code: int, message: str | None, what: str) -> None:
    if code:
        raise TransportError(f"{what}: {for_code(code).__name__} {message or ''}".strip())


async def describe_acls(transport: KafkaTransport) -> set[Acl]:
    """Every ACL the cluster holds."""
    admin = await transport._admin_client()
    anything: object = None  # a null filter field matches any value
    request = DescribeAclsRequest(
        ResourceType.ANY,
        anything,
        PatternType.ANY,
        anything,
        anything,
        Operation.ANY,
        Permission.ANY,
    )
    with _translated("describe ACLs"):
        response = await admin._send_request(request)
    _check(response.error_code, response.error_message, "describe ACLs")
    found = set()
    for resource_type, name, pattern, acls in response.resources:
        for principal, host, operation, permission in acls:
            found.add(Acl(principal, ResourceType(resource_type), name, PatternType(pattern), Operation(operation),
                          Permission(permission), host))  # fmt: skip
    return found


async def create_acls(transport: KafkaTransport, acls: Iterable[Acl]) -> None:
    admin = await transport._admin_client()
    for acl in acls:
        request = CreateAclsRequest(acl.resource_type, acl.resource_name, acl.pattern, acl.principal, acl.host,
                                    acl.operation, acl.permission)  # fmt: skip
        with _translated("create ACL"):
            response = await admin._send_request(request)
        for code, message in response.creation_responses:
            _check(code, message, f"create ACL {acl}")


async def delete_acls(transport: KafkaTransport, acls: Iterable[Acl]) -> None:
    admin = await transport._admin_client()
    for acl in acls:
        request = DeleteAclsRequest(acl.resource_type, acl.resource_name, acl.pattern, acl.principal, acl.host,
                                    acl.operation, acl.permission)  # fmt: skip
        with _translated("delete ACL"):
            response = await admin._send_request(request)
        for code, message, _ in response.filter_responses:
            _check(code, message, f"delete ACL {acl}")
