"""What a command is doing while it works: one line on the terminal, rich's progress display.

It names the step running (the pipeline's step functions, by name, as the Prefect UI shows
them), with counts where a step reports them (accounts crawled, rows written) and the time
elapsed, and disappears when the command ends. It is drawn on stderr, and only when stderr is
a terminal: piped or captured output carries the command's results alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


class Shown:
    """The line of one command: `call` runs a pipeline step and names it; `say` and `count` tell more."""

    def __init__(self, progress: Progress, what: str):
        self.progress, self.what = progress, what
        self.task = progress.add_task(what, total=None, counts="")
        self.step: str | None = None  # the step running (or the last one run)

    def say(self, doing: str) -> None:
        self.progress.update(self.task, description=f"{self.what}: {doing}", total=None, completed=0, counts="")

    def count(self, done: int, total: int | None) -> None:
        counts = f"{done:,}/{total:,}" if total else f"{done:,}"
        self.progress.update(self.task, completed=done, total=total or None, counts=counts)

    def call(self, step: Callable) -> Callable:
        """The jobs' `call`: run `step` as it is, saying its name first."""

        @functools.wraps(step)
        def run(*args, **kwargs):
            self.step = step.__name__
            self.say(step.__name__.replace("_", " "))
            return step(*args, **kwargs)

        return run


@contextmanager
def showing(what: str) -> Iterator[Shown]:
    """Show what `what` (the command) is doing until the block ends."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        yield Shown(progress, what)
