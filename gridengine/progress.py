"""Progress of long runs, drawn with rich on a terminal and kept out of logs and pipes.

The pipeline reports the start of each stage to an optional ``progress`` callable
(:data:`PLAN_STAGES` names them in order). Two displays share one rich set-up:

* :class:`StageBar`: one city's stages, the bar ``gridengine plan`` and ``gridengine staff`` draw;
* :class:`RolloutProgress`: many cities at once (an overall bar and one bar per stage), or one
  plain line per finished city when the stream is a log file or pipe.

A library caller may pass any callable as ``progress``, e.g. ``progress=print``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import IO, Any

__all__ = ["PLAN_STAGES", "StageBar", "RolloutProgress"]

#: The stages :func:`gridengine.plan_city` reports, in order, followed by the CLI's ``write``.
PLAN_STAGES: tuple[str, ...] = ("ingest", "geocode", "cells", "partition", "grids", "assign", "metrics", "write")


def _is_terminal(stream: IO[str]) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def _rich_progress(stream: IO[str], *, description_width: int, bar_width: int, refresh_per_second: float,
                   transient: bool, force_terminal: bool | None) -> Any:
    """A rich ``Progress`` (not started) drawing on ``stream``; ``force_terminal=None``: as the stream is."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(f"{{task.description:<{description_width}}}"), BarColumn(bar_width=bar_width),
                    MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(file=stream, force_terminal=force_terminal, highlight=False),
                    refresh_per_second=refresh_per_second, transient=transient)


class StageBar:
    """A stage progress bar on ``stream`` (stderr by default), drawn with rich.

    ``bar(stage)`` marks the start of ``stage`` (the earlier one is done); ``bar.close()``
    removes the bar. The bar shows the stages done, the current stage and the elapsed
    time, refreshed every ``interval`` seconds while a stage runs. When the stream is not
    a terminal (a log file, a pipe, CI) the bar draws nothing, so logs stay clean;
    ``enabled=True`` forces it.

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
        self.enabled = _is_terminal(self.stream) if enabled is None else enabled
        self.interval = interval
        self.width = width
        self.current: str | None = None
        self.done = 0
        self.t0 = time.monotonic()
        self.t_stage = self.t0
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, stage: str) -> None:
        if self.current is not None:
            self.done += 1
        if stage in self.stages:
            self.done = max(self.done, self.stages.index(stage))
        self.current = stage
        self.t_stage = time.monotonic()
        if not self.enabled:
            return
        if self._progress is None:
            self._progress = _rich_progress(self.stream, description_width=10, bar_width=self.width,
                                            refresh_per_second=1.0 / max(self.interval, 0.01), transient=True,
                                            force_terminal=True)
            self._task = self._progress.add_task(stage, total=max(len(self.stages), 1))
            self._progress.start()
        self._progress.update(self._task, description=stage, completed=self.done, refresh=True)

    def line(self) -> str:
        """The bar's state as plain text: stages done, the current stage, its and the total elapsed time."""
        n = max(len(self.stages), 1)
        now = time.monotonic()
        return f"{self.done}/{n} {self.current or ''} {now - self.t_stage:5.1f}s (total {now - self.t0:.1f}s)"

    def close(self) -> None:
        """Stop redrawing and remove the bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> StageBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RolloutProgress:
    """Progress of many cities planned at once: rich bars, plain lines, or nothing.

    Parameters
    ----------
    mode
        ``"rich"``: an overall bar (planned, failed, the cities running and their stages) and one bar per
        stage of :data:`PLAN_STAGES`; ``"lines"``: one time-stamped line per finished city (and per stage
        with ``verbose``), for logs; ``"off"``: nothing.
    stream
        Where to draw or write.
    verbose
        Also report each city's stages (lines) and each planned city (rich).

    Notes
    -----
    Call :meth:`start` with the number of cities once it is known; :meth:`line` may be used before.
    The methods are not thread-safe: a caller told of stages from another thread holds its own lock.
    """

    def __init__(self, mode: str, stream: IO[str], *, verbose: bool = False) -> None:
        if mode not in ("rich", "lines", "off"):
            raise ValueError(f"mode must be 'rich', 'lines' or 'off', got {mode!r}")
        self.mode, self.stream, self.verbose = mode, stream, verbose
        self.n = 0
        self.stage_of: dict[str, str] = {}
        self.finished = 0
        self.counts = {"planned": 0, "failed": 0}
        self._progress: Any = None
        self._overall: Any = None
        self._stages: dict[str, Any] = {}

    def start(self, n: int) -> None:
        """Begin the display of ``n`` cities."""
        self.n = n
        if self.mode == "rich" and n:
            self._progress = _rich_progress(self.stream, description_width=40, bar_width=30, refresh_per_second=4,
                                            transient=False, force_terminal=None)
            self._overall = self._progress.add_task("overall", total=n)
            self._stages = {s: self._progress.add_task(f"  {s}", total=n) for s in PLAN_STAGES}
            self._progress.start()

    def line(self, text: str) -> None:
        """One line of news (``rollout: text``), above the bars or time-stamped in a log."""
        if self.mode == "lines":
            self.stream.write(f"{time.strftime('%H:%M:%S')} rollout: {text}\n")
            self.stream.flush()
        elif self._progress is not None:
            self._progress.console.print(f"rollout: {text}", markup=False, highlight=False)
        elif self.mode == "rich":
            self.stream.write(f"rollout: {text}\n")
            self.stream.flush()

    def _advance_to(self, city: str, stage: str | None) -> None:
        """Count the stages ``city`` finished before ``stage`` (all remaining ones with None)."""
        order = list(PLAN_STAGES)
        prev = self.stage_of.get(city)
        start = order.index(prev) if prev is not None else 0
        end = order.index(stage) if stage is not None else len(order)
        if self._progress is not None:
            for s in order[start:end]:
                self._progress.advance(self._stages[s])
        if stage is not None:
            self.stage_of[city] = stage

    def stage(self, city: str, stage: str) -> None:
        """``city`` started ``stage`` (stages told late or twice are ignored)."""
        prev = self.stage_of.get(city)
        if stage not in PLAN_STAGES or (prev is not None and PLAN_STAGES.index(stage) <= PLAN_STAGES.index(prev)):
            return
        self._advance_to(city, stage)
        if self.mode == "lines" and self.verbose:
            self.line(f"{city}: {stage}")
        self._describe()

    def done(self, res: dict[str, Any]) -> None:
        """A city finished: ``res`` holds ``city``, ``status`` and, when planned, ``seconds``, ``customers``
        and ``grids`` (else ``message``)."""
        city = res["city"]
        self._advance_to(city, None)
        self.stage_of.pop(city, None)
        self.finished += 1
        self.counts[res["status"]] = self.counts.get(res["status"], 0) + 1
        if res["status"] == "planned":
            text = (f"[{self.finished}/{self.n}] {city}: planned in {res['seconds']:.1f}s "
                    f"({res['customers']} customers, {res['grids']} grids)")
        else:
            text = f"[{self.finished}/{self.n}] {city}: FAILED: {res['message']}"
        if self.mode == "lines" or res["status"] != "planned" or self.verbose:
            self.line(text)
        if self._progress is not None:
            self._progress.advance(self._overall)
            self._describe()

    def _describe(self) -> None:
        if self._progress is None:
            return
        running = ", ".join(f"{c} ({s})" for c, s in list(self.stage_of.items())[:3])
        more = f" +{len(self.stage_of) - 3}" if len(self.stage_of) > 3 else ""
        self._progress.update(self._overall, description=(
            f"overall: {self.counts['planned']} planned, {self.counts['failed']} failed"
            + (f"; {running}{more}" if running else "")))

    def close(self) -> None:
        """Stop the display (the bars stay on screen, at their last state)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
