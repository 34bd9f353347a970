"""The progress bar of an import (rich), drawn only on a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TimeElapsedColumn
from rich.text import Text

from pharos.importer.stats import ImportStats


class ProgressBar:
    """Files done/total (total once counted), files/s, MB/s and the outcome counts. Rich
    redraws it from its own thread; `refresh` only moves the bar."""

    def __init__(self, stats: ImportStats, file: TextIO):
        self._stats = stats
        self._progress = _TwoLineProgress(
            _Column(lambda: "Importing"),
            BarColumn(bar_width=24),
            _Column(self._files),
            _Column(self._rates),
            TimeElapsedColumn(),
            second_line=stats.short_counts,
            console=Console(file=file),
            refresh_per_second=4,
        )
        self._task = self._progress.add_task("import", total=None)

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.refresh()
        self._progress.stop()

    def refresh(self) -> None:
        stats = self._stats
        total = None if stats.total is None else max(stats.total, stats.done)
        self._progress.update(self._task, completed=stats.done, total=total)

    def _files(self) -> str:
        stats = self._stats
        if stats.total is None:
            return f"{stats.done} files"
        return f"{stats.done}/{max(stats.total, stats.done)} files"

    def _rates(self) -> str:
        stats = self._stats
        return f"{stats.files_per_second():.0f} files/s  {stats.mb_per_second():.1f} MB/s"


class NoProgressBar:
    """Stands in for the bar when the output is not a terminal."""

    def __enter__(self) -> NoProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def refresh(self) -> None:
        pass


class _TwoLineProgress(Progress):
    """The bar, then the outcome counts on a line of their own (one line would not fit 80
    columns)."""

    def __init__(self, *columns: ProgressColumn, second_line: Callable[[], str], **kwargs: Any):
        self._second_line = second_line  # before: the base class renders once already
        super().__init__(*columns, **kwargs)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        yield Text(self._second_line(), overflow="ellipsis", no_wrap=True)


class _Column(ProgressColumn):
    def __init__(self, text: Callable[[], str]):
        super().__init__()
        self._text = text

    def render(self, task: Task) -> Text:
        return Text(self._text())
