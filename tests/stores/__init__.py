"""Gateway store files for the tests of the store.

- ``layout1.db`` and ``layout1.records.json``: a store of layout 1 with rows still pending,
  and the records it holds decisions about, made by the gateway of commit 63597d4
  (``make_layout1.py`` says how, and how to make them again).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from broker.transport import Record

HERE = Path(__file__).parent
LAYOUT_1 = HERE / "layout1.db"


def layout_1_records() -> dict[str, Record]:
    """The records of ``layout1.db``'s inbox topic by label, as the log would give them again."""
    found = {}
    for r in json.loads((HERE / "layout1.records.json").read_text()):
        value = base64.b64decode(r["value"])
        found[r["label"]] = Record(r["topic"], r["partition"], r["offset"], None, value, (), 0)
    return found
