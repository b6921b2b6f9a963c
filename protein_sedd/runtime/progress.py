"""Progress of a long loop: a live bar on a terminal, plain lines with an ETA anywhere else.

rich draws its bar only on a terminal; written to a file or a pipe (a batch job's log, `2> log`) it
prints nothing until the loop ends, so a run of many minutes looks hung. There, one line with the count,
the elapsed time and the estimated time left is printed every `PLAIN_EVERY_S` seconds instead, and
one at the end, as rich prints its final bar.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

PLAIN_EVERY_S = 30.0


def log_line(console: Console, text: str) -> None:
    """One plain line: no rich markup (paths and ids may hold '['), no highlighting, never wrapped."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def format_duration(seconds: float) -> str:
    """12 s, 4m05s, 1h02m."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class LoopProgress:
    """`with LoopProgress(console, "steps", total) as progress: ... progress.advance()`."""

    def __init__(self, console: Console, label: str, total: int, *, final_line: bool = True):
        """`final_line=False`: off a terminal, no closing line unless earlier ones were printed (the
        caller prints the result of a loop that was short)."""
        self.console, self.label, self.total, self.final_line = console, label, total, final_line
        self.done = self.shown = 0
        self.bar: Progress | None = None

    def __enter__(self) -> LoopProgress:
        self.began = self.last_line = time.perf_counter()
        if self.console.is_terminal:
            columns = (TextColumn("[bold blue]{task.description}"), BarColumn(), MofNCompleteColumn())
            self.bar = Progress(*columns, TimeRemainingColumn(), console=self.console)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total)
        return self

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.advance(self.task, count)
            return
        if time.perf_counter() - self.last_line >= PLAIN_EVERY_S:
            self._print_line()

    def _print_line(self) -> None:
        self.last_line, self.shown = time.perf_counter(), self.done
        text = self.line(self.last_line - self.began)
        log_line(self.console, text)

    def line(self, elapsed: float) -> str:
        """`steps: 1200/4096 (29%), 1m02s elapsed, ETA 2m28s`."""
        share = self.done / self.total if self.total else 1.0
        eta = format_duration(elapsed / self.done * (self.total - self.done)) if self.done else "unknown"
        return (
            f"{self.label}: {self.done}/{self.total} ({share:.0%}), "
            f"{format_duration(elapsed)} elapsed, ETA {eta}"
        )

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif self.shown != self.done and (self.final_line or self.shown):
            self._print_line()
