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
from aiokafka.protocol.admin import CreateAclsRequest_v1, DeleteAclsRequest_v1, DescribeAclsRequest
from aiokafka.protocol.api import Request

from broker.errors import TransportError
from broker.transport.kafka import KafkaTransport, _translated


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


BINDINGS_PER_REQUEST = 200
"""CreateAcls and DeleteAcls carry a list: a network's bindings go in one or two requests
(aiokafka's own request classes carry one each, which costs a controller round trip per ACL)."""


def _row(acl: Acl) -> tuple[object, ...]:
    return (
        acl.resource_type,
        acl.resource_name,
        acl.pattern,
        acl.principal,
        acl.host,
        acl.operation,
        acl.permission,
    )


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 30

    def __init__(self, acls: list[Acl]) -> None:
        self._acls = acls

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class([_row(a) for a in self._acls])


class _DeleteAcls(Request[DeleteAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 31

    def __init__(self, acls: list[Acl]) -> None:
        self._acls = acls

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class([_row(a) for a in self._acls])


def _chunks(acls: Iterable[Acl]) -> list[list[Acl]]:
    ordered = sorted(acls)
    return [
        ordered[i : i + BINDINGS_PER_REQUEST] for i in range(0, len(ordered), BINDINGS_PER_REQUEST)
    ]


async def create_acls(transport: KafkaTransport, acls: Iterable[Acl]) -> None:
    admin = await transport._admin_client()
    for chunk in _chunks(acls):
        with _translated("create ACLs"):
            response = await admin._send_request(_CreateAcls(chunk))
        for acl, (code, message) in zip(chunk, response.creation_responses, strict=True):
            _check(code, message, f"create ACL {acl}")


async def delete_acls(transport: KafkaTransport, acls: Iterable[Acl]) -> None:
    admin = await transport._admin_client()
    for chunk in _chunks(acls):
        with _translated("delete ACLs"):
            response = await admin._send_request(_DeleteAcls(chunk))
        for acl, (code, message, _) in zip(chunk, response.filter_responses, strict=True):
            _check(code, message, f"delete ACL {acl}")
