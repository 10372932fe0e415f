"""Text read from disk, made safe for where it is shown: the console, Markdown, CSV cells.

Names, labels and error texts come from results roots that may have travelled (issue 18): they
are text, never markup, never a formula, never a second console line. The HTML pages are
autoescaped by their templates (regexp.study.pages); these are the other three.
"""

from __future__ import annotations

import re
import unicodedata

# Cells a spreadsheet reads as a formula (OWASP, CSV injection): these first characters.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Markdown punctuation that acts mid-line (a line can start nowhere else: newlines are made
# visible first); a run of underscores inside a word cannot open or close emphasis.
_MARKDOWN_SPECIAL = re.compile(r"[\\`*\[\]|~]|_+")


def visible(text: str) -> str:
    """`text` with every control or line-separating character shown as its escape (a newline as
    `\\n`, others as `\\xNN` or `\\uNNNN`), so that it stays one line on a console."""
    out = []
    for char in str(text):
        if unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs") or char in "\x85":
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def markdown(text: str) -> str:
    """`text` as literal Markdown text inside a line: control characters visible (a newline
    cannot start a heading), HTML's special characters as entities (no raw tags), Markdown's
    own punctuation backslash-escaped (no emphasis, links, code or table cells)."""
    shown = visible(text)

    def escaped(match: re.Match) -> str:
        start, end = match.span()
        inside_word = 0 < start and end < len(shown) and shown[start - 1].isalnum() and shown[end].isalnum()
        return match.group() if match.group()[0] == "_" and inside_word else "\\" + "\\".join(match.group())

    shown = _MARKDOWN_SPECIAL.sub(escaped, shown)
    return shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def csv_cell(value):
    """A CSV cell that a spreadsheet will not run: text starting with = + - @, a tab or a carriage
    return gets a leading `'`; numbers (and everything not text) stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
