"""Where regexp's lines go: every module logs to `logging.getLogger(__name__)`, under "regexp".

Nothing is shown until a program says where: the CLI (and each worker process it starts)
calls `print_lines()`, which prints each message as it is, to standard output; a Ray task
collects its run's lines with `collected_lines()` and sends them back to the driver.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

ROOT_LOGGER = "regexp"


class _PrintHandler(logging.Handler):
    """Prints the bare message to whatever sys.stdout is at that moment (a test runner may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), flush=True)
        except Exception:  # noqa: BLE001 - logging's own convention: report it, never raise from a handler
            self.handleError(record)


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def print_lines() -> None:
    """Show regexp's lines on standard output, message only, as the CLI always has (idempotent)."""
    logger = logging.getLogger(ROOT_LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # a root handler set up by another library must not print them twice
    if not any(isinstance(handler, _PrintHandler) for handler in logger.handlers):
        logger.addHandler(_PrintHandler())


@contextlib.contextmanager
def collected_lines() -> Iterator[list[str]]:
    """Collect regexp's lines into a list while the block runs (and show them wherever they went before)."""
    logger = logging.getLogger(ROOT_LOGGER)
    lines: list[str] = []
    handler = _ListHandler(lines)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
