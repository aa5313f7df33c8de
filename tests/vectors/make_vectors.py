"""Write tests/vectors/envelope-v1.json: known-answer vectors of envelope format 1.

Keys, clock and randomness are fixed (keys derived from the seeds named in the file). HPKE
draws its ephemeral key inside the library, so the wrapped keys and the signature over them
differ on every run; everything else is reproducible, and `tests/test_vectors.py` pins both:
the stored envelope must open to the stored message, and sealing again from the same parts
must give the same header, nonce and ciphertext.

Run it only when the format changes on purpose — that is a format version change:

    .venv/bin/python -m tests.vectors.make_vectors
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.crypto._envelope import _seal_from_parts
from broker.crypto._keys import generate_party
from broker.examples import example
from broker.models import KeyAlgorithm, PartyRole
from tests.crypto_net import ANCHOR, PINNED, signed_directory

OUT = Path(__file__).with_name("envelope-v1.json")
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


def party(spec: tuple[str, PartyRole, KeyAlgorithm]):  # type: ignore[no-untyped-def]
    party_id, role, kem = spec
    return generate_party(
        party_id, role, now=KEY_START, kem=kem, seed=f"vector/{party_id}".encode()
    )


def vector(case: dict) -> dict:  # type: ignore[type-arg]
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
    envelope = _seal_from_parts(
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
        "sender": {"party_id": sender.keys.party_id, "role": sender.entry.role.value,
                   "seed": f"vector/{sender.keys.party_id}", "signing_public": sender.entry.signing_keys[0].public_key.hex()},
        "recipients": [
            {"party_id": r.keys.party_id, "role": r.entry.role.value, "kem": r.entry.encryption_keys[0].algorithm.value,
             "seed": f"vector/{r.keys.party_id}", "encryption_public": r.entry.encryption_keys[0].public_key.hex()}
            for r in recipients
        ],
        "anchor_private": ANCHOR.private_bytes_raw().hex(),
        "message_type": message.avro_name,
        "message_json": json.loads(message.model_dump_json()),
        "message_id": str(message_id),
        "ttl_days": 7,
        "payload_key": payload_key.hex(),
        "nonce": nonce.hex(),
        "envelope": envelope.hex(),
    }  # fmt: skip


def main() -> None:
    OUT.write_text(
        json.dumps({"format_version": 1, "vectors": [vector(c) for c in CASES]}, indent=2) + "\n"
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
