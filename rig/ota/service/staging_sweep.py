"""The start-up sweep of the staging folder: uploads a crash left where nobody can reach them.

Two kinds of leftovers. `.upload-*.part` is an upload that was still streaming in; `<sha256>` is
one renamed into place whose database record never came (the process was killed between the
rename and the insert), so its partner never got the hash and nothing refers to it. Both would
stay on disk forever.

The sweep runs once, when the service starts and before it serves a request, so no upload of a
live request can be in flight. It looks only at the staging folder: kept images live in the
repository (`blobs/`) and are never touched, and a staged file that any partner's record names
is kept. One service per data folder, as always: a second one starting on a folder another
serves could remove that one's uploads in flight.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from rig.ota.service.blobs import BlobStore, is_sha256
from rig.ota.service.store import Store


@dataclass(frozen=True)
class Swept:
    """How many leftovers of each kind the sweep removed."""

    partial: int = 0
    unreferenced: int = 0

    def __str__(self) -> str:
        return (
            f"removed {self.unreferenced} staged upload(s) no record refers to and "
            f"{self.partial} partial upload(s), left by a stop in the middle of an upload"
        )


def sweep_staging(store: Store, blobs: BlobStore) -> Swept:
    """Remove the staging folder's leftovers; call it at start-up only (see the module doc)."""
    referenced = {row["sha256"] for row in store.all("SELECT DISTINCT sha256 FROM binaries")}
    partial = unreferenced = 0
    for path in sorted(blobs.staging.iterdir()):
        if not path.is_file() or path.is_symlink():
            continue
        if path.name.startswith(".upload-") and path.name.endswith(".part"):
            partial += _remove(path)
        elif is_sha256(path.name) and path.name not in referenced:
            unreferenced += _remove(path)
    return Swept(partial, unreferenced)


def _remove(path: Path) -> int:
    with contextlib.suppress(OSError):
        path.unlink()
        return 1
    return 0
