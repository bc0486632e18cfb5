"""Stage progress for long runs: a one-line bar on a terminal, nothing when piped.

The pipeline reports the start of each stage to an optional ``progress`` callable
(:data:`PLAN_STAGES` names them in order); :class:`StageBar` is the terminal renderer
the CLI uses. A library caller may pass any callable, e.g. ``progress=print``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import IO

__all__ = ["PLAN_STAGES", "StageBar"]

#: The stages :func:`gridengine.plan_city` reports, in order, followed by the CLI's ``write``.
PLAN_STAGES: tuple[str, ...] = ("ingest", "geocode", "cells", "partition", "grids", "assign", "metrics", "write")


class StageBar:
    """A stage progress bar redrawn in place on ``stream`` (stderr by default).

    ``bar(stage)`` marks the start of ``stage`` (the earlier one is done); ``bar.close()``
    ends the line. The bar shows the stages done, the current stage and its elapsed
    time, refreshed by a daemon thread every ``interval`` seconds while a stage runs.
    When the stream is not a terminal (a log file, a pipe, CI) the bar draws nothing,
    so logs stay clean; ``enabled=True`` forces it.

    Parameters
    ----------
    stages
        Stage names in order.
    stream
        Where to draw; ``sys.stderr`` if None.
    enabled
        Draw or not; by default only when ``stream`` is a terminal.
    interval
        Seconds between redraws of the elapsed time.
    width
        Cells of the bar.
    """

    def __init__(self, stages: Sequence[str] = PLAN_STAGES, *, stream: IO[str] | None = None,
                 enabled: bool | None = None, interval: float = 0.2, width: int = 24) -> None:  # fmt: skip
        self.stages = list(stages)
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = bool(isatty()) if enabled is None else enabled
        self.interval = interval
        self.width = width
        self.current: str | None = None
        self.done = 0
        self.t0 = time.monotonic()
        self.t_stage = self.t0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_len = 0

    def __call__(self, stage: str) -> None:
        with self._lock:
            if self.current is not None:
                self.done += 1
            if stage in self.stages:
                self.done = max(self.done, self.stages.index(stage))
            self.current = stage
            self.t_stage = time.monotonic()
            self._draw()
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._tick, name="gridengine-progress", daemon=True)
            self._thread.start()

    def line(self) -> str:
        """The bar's current text (without carriage return)."""
        n = max(len(self.stages), 1)
        filled = int(round(self.width * self.done / n))
        now = time.monotonic()
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{n} {self.current or ''} "
                f"{now - self.t_stage:5.1f}s (total {now - self.t0:.1f}s)")  # fmt: skip

    def _draw(self) -> None:
        if not self.enabled:
            return
        text = self.line()
        pad = " " * max(self._last_len - len(text), 0)
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self._last_len = len(text)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                self._draw()

    def close(self) -> None:
        """Stop redrawing and clear the bar's line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        with self._lock:
            if self.enabled and self._last_len:
                self.stream.write("\r" + " " * self._last_len + "\r")
                self.stream.flush()
            self._last_len = 0

    def __enter__(self) -> StageBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
