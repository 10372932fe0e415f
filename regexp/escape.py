"""Text read from disk, made safe for where it is shown: the console, Markdown, CSV cells.

Names, labels and error texts come from results roots that may have travelled (issue 18): they
are text, never markup, never a formula, never a second console line. The HTML report is
escaped by `html.escape` where it is built; these are the other three.
"""

from __future__ import annotations

import re
import unicodedata

# Cells a spreadsheet reads as a formula (OWASP, CSV injection): these first characters.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Markdown punctuation that acts mid-line (a line can start nowhere else: newlines are made
# visible first); an underscore inside a word cannot open emphasis, so it stays as it is.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


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
    shown = _MARKDOWN_SPECIAL.sub(r"\\\1", visible(text))
    return shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def csv_cell(value):
    """A CSV cell that a spreadsheet will not run: text starting with = + - @, a tab or a carriage
    return gets a leading `'`; numbers (and everything not text) stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
