"""Picture-health references kept across restarts: one small file per camera in Vigie's
state directory (beside the journal), holding a grey picture per light level (160 wide,
privacy masks already blacked out: ingest/camera/sight.py), its sharpness and when it was
learned. Kept no longer than the journal's retention: older ones are deleted when read.

Written by the camera's worker thread (a reference is learned or accepted a few times a
day at most), atomically: a crash mid-write leaves the previous file.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 1_000_000  # two 160x120 pictures take 40 kB: anything bigger is not ours
# (stored uncompressed: a small compressed file could inflate far past this once read)
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class StoredReference:
    level: str           # "day" or "night"
    grey: np.ndarray     # uint8
    sharpness: np.ndarray  # per cell
    learned_at: float    # wall time


class ReferenceStore:
    def __init__(self, folder: Path, retention_seconds: float) -> None:
        self.folder = folder
        self.retention = retention_seconds

    def _path(self, camera_id: str) -> Path:
        if not _SAFE_ID.fullmatch(camera_id):  # config ids are checked; this stays a file name
            raise ValueError("camera id unfit for a file name")
        return self.folder / f"{camera_id}.npz"

    def load(self, camera_id: str) -> list[StoredReference]:
        path = self._path(camera_id)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError("too large")
            with np.load(path, allow_pickle=False) as data:
                found = [StoredReference(str(level), np.array(data[f"grey_{level}"], np.uint8),
                                         np.array(data[f"sharpness_{level}"], np.float32),
                                         float(data[f"learned_{level}"]))
                         for level in data["levels"]]
        except FileNotFoundError:
            return []
        except Exception as error:  # noqa: BLE001 - a damaged file (truncated, empty, foreign) is relearned
            logger.warning("camera %s: picture reference %s unreadable (%s); learning a new one",
                           camera_id, path, type(error).__name__)
            return []
        kept = [r for r in found if time.time() - r.learned_at <= self.retention and r.grey.ndim == 2]
        if len(kept) != len(found):
            self.save(camera_id, kept)
        return kept

    def save(self, camera_id: str, references: list[StoredReference]) -> None:
        path = self._path(camera_id)
        if not references:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass  # a read-only state directory: kept, and judged stale at the next read
            return
        arrays: dict[str, np.ndarray] = {"levels": np.array([r.level for r in references])}
        for r in references:
            arrays[f"grey_{r.level}"] = r.grey
            arrays[f"sharpness_{r.level}"] = np.asarray(r.sharpness, np.float32)
            arrays[f"learned_{r.level}"] = np.float64(r.learned_at)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            # A name of its own: two workers of one camera (a reload restarting it) never
            # write into each other's partial file.
            handle, partial = tempfile.mkstemp(prefix=f"{camera_id}.", suffix=".partial", dir=self.folder)
            with os.fdopen(handle, "wb") as file:
                file.write(buffer.getvalue())
            os.replace(partial, path)
        except OSError as error:
            logger.warning("camera %s: picture reference not saved in %s (%s)", camera_id, self.folder,
                           error.strerror or type(error).__name__)

    def purge(self) -> int:
        """Delete the files past the retention (a camera removed from the config, or one
        whose reference was not refreshed for that long) and any partial write; how many went."""
        removed = 0
        try:
            entries = list(self.folder.iterdir())
        except OSError:
            return 0
        for entry in entries:
            try:
                stale = time.time() - entry.stat().st_mtime > self.retention
                if entry.suffix == ".partial" or stale:
                    entry.unlink()
                    removed += 1
            except OSError:
                continue
        return removed
