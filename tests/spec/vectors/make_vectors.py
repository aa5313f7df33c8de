"""Write the known-answer vectors: tests/spec/vectors/envelope-v1.json, -v2.json and -v3.json.

Keys, clock and randomness are fixed (keys derived from the seeds named in the files; message
ids, payload keys, nonces and — format 2 — epoch keys given). HPKE draws its ephemeral key
inside the library, so the wrapped keys differ on every run (and in format 1 the signature
over them); everything else is reproducible, and `tests/spec/test_vectors.py` (the reference) and
`tests/spec/test_envelope_spec.py` (the clean room) pin both: the stored envelopes must open to
the stored messages, and sealing again from the same parts must give the same bytes.

Run it only when a format changes on purpose — that is a format version change — and name
the versions whose file to write:

    .venv/bin/python -m tests.spec.vectors.make_vectors 3

Format 3 is format 2's batches again, with a ``traceparent`` in every other header
(docs/ENVELOPE.md §4.2).
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.crypto import (
    NewParty,
    SealRequest,
    SenderEpochs,
    generate_party,
    prepare_envelope,
    seal_v1_from_parts,
    seal_v2_batch,
)
from broker.crypto._batchsig import envelope_leaf, signed_statement
from broker.crypto._wire import decode_envelope
from broker.merkle import root as merkle_root
from broker.models import KeyAlgorithm, PartyRole
from demo.examples import example
from tests.crypto_net import ANCHOR, PINNED, signed_directory

OUT = {v: Path(__file__).with_name(f"envelope-v{v}.json") for v in (1, 2, 3)}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def traceparent_of(index: int) -> str | None:
    """Format 3: the traceparent of a batch's envelope ``index`` (every other one has none)."""
    return None if index % 2 else f"00-{TRACE_ID}-{index + 1:016x}-01"


NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KEY_START = NOW - timedelta(days=30)

CASES = [
    {
        "name": "dossier-ind-to-municipality-and-ngo-x25519",
        "type": "DossierDelivered",
        "sender": ("ind", PartyRole.IND, KeyAlgorithm.X25519),
        "recipients": [
            ("gemeente-utrecht", PartyRole.MUNICIPALITY, KeyAlgorithm.X25519),
            ("ngo-perspectief", PartyRole.NGO, KeyAlgorithm.X25519),
        ],
    },
    {
        "name": "intake-municipality-to-dtv-hybrid-and-ind",
        "type": "IntakeRegistered",
        "sender": ("gemeente-amsterdam", PartyRole.MUNICIPALITY, KeyAlgorithm.X25519),
        "recipients": [
            ("dtv", PartyRole.DTV, KeyAlgorithm.MLKEM768_X25519),
            ("ind", PartyRole.IND, KeyAlgorithm.X25519),
        ],
    },
]

# Format 2: one batch per vector. Each envelope names its message, its recipients (a subset
# of the vector's parties, in order) and its ids; epochs start in order of first use, each
# with the next of ``epoch_keys``.
BATCH_CASES: list[dict[str, Any]] = [
    {
        "name": "batch-of-3-ind-two-epochs-x25519-and-hybrid",
        "sender": ("ind", PartyRole.IND, KeyAlgorithm.X25519),
        "recipients": [
            ("gemeente-utrecht", PartyRole.MUNICIPALITY, KeyAlgorithm.X25519),
            ("ngo-perspectief", PartyRole.NGO, KeyAlgorithm.MLKEM768_X25519),
        ],
        "envelopes": [
            {
                "type": "DossierDelivered",
                "to": ["gemeente-utrecht", "ngo-perspectief"],
                "message_id": "5d0f2a61-8f5b-4b8e-9c1a-2e7d4f6a8b01",
            },
            {
                "type": "DossierDelivered",
                "update": {"dossier_id": uuid.UUID("5d0f2a61-8f5b-4b8e-9c1a-2e7d4f6a8b99")},
                "to": ["gemeente-utrecht", "ngo-perspectief"],
                "message_id": "5d0f2a61-8f5b-4b8e-9c1a-2e7d4f6a8b02",
                "correlation_id": "5d0f2a61-8f5b-4b8e-9c1a-2e7d4f6a8b00",
                "causation_id": "5d0f2a61-8f5b-4b8e-9c1a-2e7d4f6a8b01",
                "ttl_days": 1,
            },
            {
                "type": "DossierDelivered",
                "to": ["ngo-perspectief"],
                "message_id": "5d0f2a61-8f5b-4b8e-9c1a-2e7d4f6a8b03",
            },
        ],
        "epoch_keys": [bytes(range(32)), bytes(range(32, 64))],
    },
    {
        "name": "batch-of-1-intake-municipality-to-dtv-hybrid-and-ind",
        "sender": ("gemeente-amsterdam", PartyRole.MUNICIPALITY, KeyAlgorithm.X25519),
        "recipients": [
            ("dtv", PartyRole.DTV, KeyAlgorithm.MLKEM768_X25519),
            ("ind", PartyRole.IND, KeyAlgorithm.X25519),
        ],
        "envelopes": [
            {
                "type": "IntakeRegistered",
                "to": ["dtv", "ind"],
                "message_id": "5d0f2a61-8f5b-4b8e-9c1a-2e7d4f6a8b11",
            },
        ],
        "epoch_keys": [bytes(range(64, 96))],
    },
]


def party(spec: tuple[str, PartyRole, KeyAlgorithm]) -> NewParty:
    party_id, role, kem = spec
    return generate_party(
        party_id, role, now=KEY_START, kem=kem, seed=f"vector/{party_id}".encode()
    )


def _parties_json(sender: Any, recipients: list[Any]) -> dict[str, Any]:
    return {
        "sender": {"party_id": sender.keys.party_id, "role": sender.entry.role.value,
                   "seed": f"vector/{sender.keys.party_id}", "signing_public": sender.entry.signing_keys[0].public_key.hex()},
        "recipients": [
            {"party_id": r.keys.party_id, "role": r.entry.role.value, "kem": r.entry.encryption_keys[0].algorithm.value,
             "seed": f"vector/{r.keys.party_id}", "encryption_public": r.entry.encryption_keys[0].public_key.hex()}
            for r in recipients
        ],
    }  # fmt: skip


def vector(case: dict[str, Any]) -> dict[str, Any]:
    from broker.crypto import load_directory

    sender = party(case["sender"])
    recipients = [party(r) for r in case["recipients"]]
    directory = load_directory(
        signed_directory([sender.entry, *(r.entry for r in recipients)], now=NOW),
        anchor=PINNED,
        now=NOW,
    )
    message = example(case["type"])
    message_id = uuid.UUID("0b6f3f8e-2f4c-4d36-9d52-5a0e6c1f7a10")
    payload_key = bytes(range(32))
    nonce = bytes(range(100, 112))
    envelope = seal_v1_from_parts(
        message,
        sender=sender.keys,
        recipients=[r.keys.party_id for r in recipients],
        directory=directory,
        now=NOW,
        ttl=timedelta(days=7),
        correlation_id=None,
        causation_id=None,
        message_id=message_id,
        payload_key=payload_key,
        nonce=nonce,
    )
    return {
        "name": case["name"],
        "now": NOW.isoformat(),
        "key_start": KEY_START.isoformat(),
        **_parties_json(sender, recipients),
        "anchor_private": ANCHOR.private_bytes_raw().hex(),
        "message_type": message.avro_name,
        "message_json": json.loads(message.model_dump_json()),
        "message_id": str(message_id),
        "ttl_days": 7,
        "payload_key": payload_key.hex(),
        "nonce": nonce.hex(),
        "envelope": envelope.hex(),
    }


def _optional_uuid(text: str | None) -> uuid.UUID | None:
    return None if text is None else uuid.UUID(text)


def batch_vector(case: dict[str, Any], version: int = 2) -> dict[str, Any]:
    """A format-2 (or 3) batch sealed by the reference with fixed epoch keys, and the values a
    re-implementation derives on the way: each envelope's header, nonce and leaf, the root,
    the signed statement and the signature."""
    from broker.crypto import load_directory

    sender = party(case["sender"])
    recipients = [party(r) for r in case["recipients"]]
    directory = load_directory(
        signed_directory([sender.entry, *(r.entry for r in recipients)], now=NOW),
        anchor=PINNED,
        now=NOW,
    )
    keys: Iterator[bytes] = iter(case["epoch_keys"])
    epochs = SenderEpochs(sender.keys.party_id, random=lambda n: next(keys)[:n])
    prepared, messages = [], []
    traces = [traceparent_of(i) if version >= 3 else None for i in range(len(case["envelopes"]))]
    for e, trace in zip(case["envelopes"], traces, strict=True):
        message = example(e["type"]).model_copy(update=e.get("update", {}))
        request = SealRequest(
            message,
            tuple(e["to"]),
            uuid.UUID(e["message_id"]),
            _optional_uuid(e.get("correlation_id")),
            _optional_uuid(e.get("causation_id")),
            timedelta(days=e.get("ttl_days", 7)),
            trace,
        )
        prepared.append(prepare_envelope(request, sender=sender.keys, directory=directory, now=NOW,
                                         format_version=version))  # fmt: skip
        messages.append(message)
    sealed = seal_v2_batch(
        prepared, sender=sender.keys, directory=directory, now=NOW, epochs=epochs
    )
    started: list[tuple[str, ...]] = []  # recipient lists in the order their epochs started
    envelopes, leaves = [], []
    for e, message, data, trace in zip(case["envelopes"], messages, sealed, traces, strict=True):
        wire = decode_envelope(data, max_items=1000)
        if tuple(e["to"]) not in started:
            started.append(tuple(e["to"]))
        leaves.append(envelope_leaf(data[: wire.body_end]))
        envelopes.append({
            "message_type": message.avro_name,
            "message_json": json.loads(message.model_dump_json()),
            "recipients": e["to"],
            "message_id": e["message_id"],
            "correlation_id": e.get("correlation_id"),
            "causation_id": e.get("causation_id"),
            "ttl_days": e.get("ttl_days", 7),
            **({"traceparent": trace} if version >= 3 else {}),
            "epoch": started.index(tuple(e["to"])),
            "header": data[: wire.header_end].hex(),
            "nonce": wire.nonce.hex(),
            "leaf": leaves[-1].hex(),
            "envelope": data.hex(),
        })  # fmt: skip
    signature = decode_envelope(sealed[-1], max_items=1000).signature  # the batch's one signature
    root = merkle_root(leaves)
    return {
        "name": case["name"],
        "now": NOW.isoformat(),
        "key_start": KEY_START.isoformat(),
        **_parties_json(sender, recipients),
        "anchor_private": ANCHOR.private_bytes_raw().hex(),
        "epochs": [
            {"recipients": list(names), "epoch_key": key.hex()}
            for names, key in zip(started, case["epoch_keys"], strict=True)
        ],
        "envelopes": envelopes,
        "batch_size": len(sealed),
        "root": root.hex(),
        "statement": signed_statement(len(sealed), root).hex(),
        "signature": signature.hex(),
    }


def main(argv: list[str]) -> None:
    if not argv or any(v not in ("1", "2", "3") for v in argv):
        sys.exit(
            "usage: python -m tests.spec.vectors.make_vectors {1,2,3}... (the formats to rewrite)"
        )
    for version in sorted({int(v) for v in argv}):
        vectors = (
            [vector(c) for c in CASES]
            if version == 1
            else [batch_vector(c, version) for c in BATCH_CASES]
        )
        OUT[version].write_text(
            json.dumps({"format_version": version, "vectors": vectors}, indent=2) + "\n"
        )
        print(f"wrote {OUT[version]}")


if __name__ == "__main__":
    main(sys.argv[1:])
