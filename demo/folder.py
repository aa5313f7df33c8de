"""The demo's data folder: made afresh on every run, and removed only if it is one.

`lvvx demo --data DIR` removes DIR before it makes a new network there, so DIR must be a
folder the demo made: it writes `DEMO_MARKER` into every folder it makes, and refuses
(``NOT_A_DEMO_FOLDER``) to remove a non-empty folder without it — a mistyped ``--data ~``
must not cost anyone their home directory. An empty folder is taken as it is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from broker.errors import LocalError
from broker.owner_only import private_dir

DEMO_MARKER = ".lvvx-demo"
MARKER_TEXT = (
    "A network made by `lvvx demo`: keys, directory, gateway state and log of a demo.\n"
    "The next `lvvx demo --data` with this folder removes all of it and makes a new one.\n"
)


def fresh_data_folder(folder: Path) -> Path:
    """``folder`` empty but for the demo's marker: made, or emptied if the demo made it
    before; raises `LocalError` (``NOT_A_DEMO_FOLDER``) for any other non-empty folder,
    touching nothing."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise _refused(folder, "it is not a plain folder")
    if folder.exists() and any(folder.iterdir()):
        marker = folder / DEMO_MARKER
        if marker.is_symlink() or not marker.is_file():
            raise _refused(folder, f"it is not empty and has no {DEMO_MARKER}")
        shutil.rmtree(folder)  # each run makes a fresh network: new keys, log and state
    private_dir(folder)
    (folder / DEMO_MARKER).write_text(MARKER_TEXT)
    return folder


def _refused(folder: Path, why: str) -> LocalError:
    return LocalError(
        f"will not use {folder} for the demo: {why} (a folder made by `lvvx demo` has one); "
        "choose another --data folder, or empty this one yourself",
        reason="NOT_A_DEMO_FOLDER",
    )


__all__ = ["DEMO_MARKER", "fresh_data_folder"]
