"""One valid, realistic example of every top-level type (`lvvx schemas example`).

Case-flow messages come from the case book. The network records are made for real by the
security core, with keys derived from fixed seeds: the example envelope opens with the
example network's keys, and the example directory verifies against its example anchor.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from broker import models as m
from broker.contract import default_codec
from broker.crypto import (
    AnchorKey,
    Directory,
    NewParty,
    SigningKey,
    build_directory,
    envelope_schema,
    generate_party,
    key_id,
    load_directory,
    raw_public_key,
    seal_v1_from_parts,
    sign_directory,
    signing_key_from_seed,
)
from broker.errors import UnknownSchema
from demo.casebook import IND, MUNICIPALITIES, NETWORK, NGOS, CasePath, CaseWriter

EXAMPLE_TIME = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class ExampleNetwork:
    """The pilot network with keys derived from fixed seeds (never use them for real)."""

    parties: dict[str, NewParty]
    anchor: SigningKey
    signed_directory: bytes
    directory: Directory


@cache
def example_network() -> ExampleNetwork:
    parties = {
        p.party_id: generate_party(
            p.party_id,
            p.role,
            now=EXAMPLE_TIME,
            display_name=p.display_name,
            kem=m.KeyAlgorithm.MLKEM768_X25519
            if p.role is m.PartyRole.DTV
            else m.KeyAlgorithm.X25519,
            seed=p.party_id.encode(),
        )
        for p in NETWORK
    }
    anchor = signing_key_from_seed(bytes(range(32)))
    document = build_directory(
        [p.entry for p in parties.values()], serial=1, network="lvv-example", now=EXAMPLE_TIME
    )
    signed = sign_directory(document, anchor)
    pinned = AnchorKey(key_id(raw_public_key(anchor)), anchor.public_key())
    return ExampleNetwork(
        parties, anchor, signed, load_directory(signed, anchor=pinned, now=EXAMPLE_TIME)
    )


def example(name: str) -> m.AvroModel:
    """A valid, realistic example of the top-level type ``name`` (full or short name)."""
    model = m.model_for(name)
    writer = CaseWriter()
    for path in CasePath:
        for step in writer.case(0, path).steps:
            if isinstance(step.message, model):
                return step.message
    return _network_record(model)


def _network_record(model: type[m.AvroModel]) -> m.AvroModel:
    rng = random.Random(7)
    net = example_network()
    codec = default_codec()
    dossier = example("DossierDelivered")
    assert isinstance(dossier, m.DossierDelivered)
    recipients = (MUNICIPALITIES[0].party_id, NGOS[0].party_id)
    envelope = seal_v1_from_parts(
        dossier,
        sender=net.parties[IND.party_id].keys,
        recipients=recipients,
        directory=net.directory,
        now=EXAMPLE_TIME,
        ttl=timedelta(days=7),
        correlation_id=None,
        causation_id=None,
        message_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        payload_key=rng.randbytes(32),
        nonce=rng.randbytes(12),
    )
    # a format-1 envelope is written with the earlier schema: read it into the current one
    written_with = envelope_schema(1)
    sealed = m.SecureEnvelope.from_avro(
        codec.decode(m.SecureEnvelope.avro_name, envelope, writer=written_with)
    )
    digest = hashlib.sha256(envelope).digest()
    if model is m.SecureEnvelope:
        return sealed
    if model is m.PartyDirectory:
        return net.directory.document
    if model is m.SignedDirectory:
        return m.SignedDirectory.from_avro(
            codec.decode(m.SignedDirectory.avro_name, net.signed_directory)
        )
    if model is m.DeliveryReceipt:
        return m.DeliveryReceipt(
            receipt_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            message_id=sealed.header.message_id,
            message_type=sealed.header.message_type,
            case_id=sealed.header.case_id,
            received_by=recipients[0],
            received_at=EXAMPLE_TIME + timedelta(seconds=2),
            envelope_sha256=digest,
        )
    if model is m.AuditEvent:
        return m.AuditEvent(
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            gateway=IND.party_id,
            seq=41,
            prev_hash=rng.randbytes(32),
            action=m.AuditAction.SENT,
            occurred_at=EXAMPLE_TIME,
            message_id=sealed.header.message_id,
            message_type=sealed.header.message_type,
            sender=IND.party_id,
            recipients=recipients,
            case_id=sealed.header.case_id,
            envelope_sha256=digest,
            outcome=m.AuditOutcome.OK,
            signature=rng.randbytes(64),
        )
    raise UnknownSchema(f"no example for {model.avro_name}")
