"""A camera worker's picture health: its judge (ingest/camera/picture_health.py) fed from the
frames the worker decodes anyway, its references kept (ingest/camera/references.py), each
raise and clear logged, and the operator's "accept as reference" carried out in the worker's
own thread (the judge is not shared between threads)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace

import av

from ingest.camera.picture_health import Change, PictureJudge, PictureStatus
from ingest.camera.references import ReferenceStore, StoredReference

logger = logging.getLogger(__name__)


class PictureWatch:
    def __init__(self, camera_id: str, judge: PictureJudge, references: ReferenceStore | None,
                 publish: Callable[[PictureStatus], None]) -> None:
        """`publish`: where the status goes after each check (the camera's health)."""
        self.camera_id = camera_id
        self._publish = publish
        self.judge = judge
        self._references = references
        self._lock = threading.Lock()
        self._wanted: list[Future[float | None]] = []  # accept_reference, answered at the next check
        self._ended: dict[str, tuple[str, float, float]] = {}  # the last clearing of each condition

    def restore(self) -> None:
        """The references kept from an earlier run (in the worker's thread, at its start)."""
        if self._references is not None:
            for stored in self._references.load(self.camera_id):
                self.judge.restore(stored.level, stored.grey, stored.sharpness, stored.learned_at,
                                   time.monotonic())
        self._publish(self.judge.status())

    def accept_reference(self) -> Future[float | None]:
        """Any thread: the current view becomes the reference at the next check (within
        IDLE_STILL_INTERVAL while the camera is live); the future gives the reference's
        time, or None when there was no picture to take."""
        wanted: Future[float | None] = Future()
        with self._lock:
            self._wanted.append(wanted)
        return wanted

    def due(self, now: float) -> bool:
        return self.judge.due(now) or bool(self._wanted)

    def check(self, frame: av.VideoFrame, now: float, wall: float) -> None:
        judge = self.judge
        before = judge.reference_at()
        changes = judge.judge(judge.maker.from_frame(frame, now), wall)
        with self._lock:
            wanted, self._wanted = self._wanted, []
        wanted = [f for f in wanted if f.set_running_or_notify_cancel()]  # not given up on
        if wanted and judge.accept_reference(wall):
            logger.info("camera %s: the current view is the picture's reference from now on", self.camera_id)
        for change in changes:
            self._log(change, wall)
            if not change.raised:
                name = change.condition.value
                self._ended[name] = (name, change.since, change.until if change.until is not None else wall)
        if judge.reference_at() != before and self._references is not None:
            self._references.save(self.camera_id, [
                StoredReference(level, reference.sight.grey, reference.sharpness, reference.learned_at)
                for level, reference in judge.references().items()])
        # Published before the accepting futures are answered: whoever asked reads the new
        # reference in the camera's status at once.
        self._publish(replace(judge.status(), ended=tuple(self._ended.values())))
        for future in wanted:
            future.set_result(judge.reference_at())

    def _log(self, change: Change, wall: float) -> None:
        began = time.strftime("%H:%M:%S", time.localtime(change.since))
        name = change.condition.value.replace("_", " ")
        if change.raised:
            logger.warning("camera %s: picture %s since %s", self.camera_id, name, began)
        else:
            logger.info("camera %s: picture no longer %s (began %s, lasted %.0f s)", self.camera_id, name,
                        began, (change.until or wall) - change.since)
