"""The client's progress display: a rich bar in a terminal, tqdm's widget in a notebook."""

from __future__ import annotations

import sys
from typing import Any

from ..api.schemas import StudyDetail


def progress_info(d: StudyDetail) -> str:
    c = d.trial_counts
    best = d.best_trial
    value = f"{best.value:.4f}" if best and best.value is not None else "-"
    return (
        f"{d.status} running={c.get('running', 0)} pruned={c.get('pruned', 0)} "
        f"failed={c.get('fail', 0)} best={value}"
    )


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a terminal progress bar would not redraw)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


class ProgressBar:
    """``with ProgressBar(name, total, enabled) as show: show(done, info)``."""

    def __init__(self, name: str, total: int, *, enabled: bool) -> None:
        self.name, self.total, self.enabled = name, total, enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda done, info: None
        if in_notebook():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=self.name)
            return self._show_tqdm
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
        )
        self._bar.__enter__()
        self._task = self._bar.add_task(self.name, total=self.total, info="")
        return self._show_rich

    def _show_tqdm(self, done: int, info: str) -> None:
        self._bar.n = done
        self._bar.set_postfix_str(info)  # refreshes

    def _show_rich(self, done: int, info: str) -> None:
        self._bar.update(self._task, completed=done, info=info)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            if self._task is None:
                self._bar.close()
            else:
                self._bar.__exit__(None, None, None)
