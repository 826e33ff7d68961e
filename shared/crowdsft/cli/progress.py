"""One progress bar for the long commands (simulations, sweeps, the LLM experiment)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn


@contextmanager
def progress_bar(total: int, label: str, console: Console) -> Iterator[Callable[[object], None]]:
    """Yields `step(what)`: advances the bar by one; a string `what` becomes its description.
    Written to a file rather than a terminal, each described step is one log line instead."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=total)

        def step(what: object = None) -> None:
            if isinstance(what, str):
                bar.update(task, description=what)
                if not console.is_terminal:
                    console.log(f"{what} done")
            bar.advance(task)

        yield step
