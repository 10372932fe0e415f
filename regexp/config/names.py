"""Run names: the one rule for what may name a run folder, and the one way to make text fit it.

A run name is one folder directly under the results root, and it is typed in shells: 1 to 200
letters, digits and . _ + -, starting with a letter or a digit. `regexp.config` checks a name
when it validates a config, `regexp.results` again before it makes the folder.
"""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 200
NAME_CHARACTERS = "A-Za-z0-9._+-"  # a regex character class's contents
_RUN_NAME = re.compile(f"[A-Za-z0-9][{NAME_CHARACTERS}]*")
_UNSAFE = re.compile(f"[^{NAME_CHARACTERS}]+")


def safe_text(text: str) -> str:
    """`text` with every run of characters a name may not hold replaced by one '_'."""
    return _UNSAFE.sub("_", text)


def sanitize_name(text: str) -> str:
    """A shell-safe folder name made from any text (used for file stems and grid points)."""
    return (safe_text(text).strip("._-+") or "run")[:MAX_NAME_LENGTH]


def run_name_problem(name: str) -> str | None:
    """Why `name` cannot name a run folder, as the end of a sentence that starts with the name; None if it can."""
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        return "is not a plain folder name (no '/', '..' or leading '.'); it names one folder under the results root"
    if not _RUN_NAME.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        return f"may hold only letters, digits and . _ + - (at most {MAX_NAME_LENGTH})"
    return None
