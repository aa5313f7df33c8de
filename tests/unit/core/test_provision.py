"""What `lvvx topics apply` asks of the broker for attachments (docs/ENVELOPE.md §11.6):
a topic per recipient, kept as long as an envelope lives, written only by those who may
send that recipient documents and read only by it."""

from __future__ import annotations

from datetime import timedelta

from broker import policy, topics
from broker.crypto import MAX_TTL
from broker.provision import Layout, desired_acls, desired_topics
from broker.transport.kafka_acl import Operation
from tests.crypto_net import Net

NET = Net()
PREFIX = "lvv.test.v1"


def test_every_party_has_an_attachment_topic_kept_for_an_envelopes_lifetime() -> None:
    specs = {t.name: t for t in desired_topics(NET.directory, Layout(PREFIX, partitions=2))}
    for party in NET.directory.parties:
        spec = specs[topics.attachments(party, PREFIX)]
        assert spec.partitions == 2
        kept = timedelta(milliseconds=int(spec.config["retention.ms"]))
        assert kept > MAX_TTL  # a gateway down for a whole envelope lifetime still finds them
        assert spec.config["retention.bytes"] == "-1"


def test_attachment_topics_are_written_by_who_may_attach_and_read_by_their_recipient() -> None:
    acls = desired_acls(NET.directory, PREFIX)
    roles = {party: entry.role for party, entry in NET.directory.parties.items()}
    for recipient, recipient_role in roles.items():
        topic = topics.attachments(recipient, PREFIX)
        on_topic = [a for a in acls if a.resource_name == topic]
        readers = {a.principal for a in on_topic if a.operation is Operation.READ}
        writers = {a.principal for a in on_topic if a.operation is Operation.WRITE}
        assert readers == {f"User:{recipient}"}
        assert writers == {
            f"User:{sender}"
            for sender, sender_role in roles.items()
            if sender != recipient and policy.may_attach_to(sender_role, recipient_role)
        }
    # the rule is the policy's: COA confirms transfers (no documents) and attaches nothing;
    # IND attaches dossiers to municipalities
    coa = next(p for p, r in roles.items() if r.value == "COA")
    muni = next(p for p, r in roles.items() if r.value == "MUNICIPALITY")
    ind = next(p for p, r in roles.items() if r.value == "IND")
    writers_of_muni = {
        a.principal
        for a in acls
        if a.resource_name == topics.attachments(muni, PREFIX) and a.operation is Operation.WRITE
    }
    assert f"User:{ind}" in writers_of_muni and f"User:{coa}" not in writers_of_muni
