"""The console's rules, without TensorFlow: --verbose, TensorFlow's C++ log lines, saying a thing once.

regexp/tf_runtime.py applies them where TensorFlow is imported.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

VERBOSE_ENV = "REGEXP_VERBOSE"
# absl/TensorFlow C++ log lines ("I0000 00:00:1795642693.794633   25163 port.cc:153] ..."), the
# notice absl prints before it is initialised, and the second line of the CPU-feature notice.
TENSORFLOW_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\s:]+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)"
)
NO_CUDA_DRIVERS = "Could not find cuda drivers"
_said: set[str] = set()


def verbose() -> bool:
    """True when TensorFlow's own start-up lines are to be shown (`regexp --verbose`)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def say_once(text: str) -> None:
    """Write `text` to stderr, once per process."""
    if text not in _said:
        _said.add(text)
        print(f"regexp: {text}", file=sys.stderr, flush=True)


def keep_line(line: str) -> bool:
    """False for a TensorFlow/absl C++ log line, True for anything else."""
    return not TENSORFLOW_LINE.match(line)


@contextlib.contextmanager
def tensorflow_lines_filtered(dropped: list[str]):
    """Capture descriptor 2 while the block runs; write on every line but TensorFlow's C++
    log lines, which are appended to `dropped`."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 to capture
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            dropped.extend(line for line in lines if not keep_line(line))
            kept = "".join(line for line in lines if keep_line(line))
            if kept:
                os.write(2, kept.encode())
