"""The study's pages from templates: report.md/html (regexp.study.report) and tuning.md/html
(regexp.study.tune_report), each a model of its sections rendered through two Jinja2 templates
in `templates/`, sharing the table macros and the stylesheet.

HTML is autoescaped and Markdown has every value escaped as Markdown text (escape.markdown):
a name, a parameter or an error text read from disk is text in both, never markup.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass

from regexp.study import escape, stats

REPORT_MD, REPORT_HTML = "report.md", "report.html"
TUNING_MD, TUNING_HTML, TUNING_FIGURE = "tuning.md", "tuning.html", "tuning.png"

VERDICT_CLASSES = {
    stats.BETTER: "better",
    stats.WORSE: "worse",
    stats.EQUIVALENT: "equivalent",
    stats.UNDECIDED: "undecided",
    stats.UNSTABLE: "unstable",
    stats.BASELINE: "baseline",
}


@dataclass(frozen=True)
class Table:
    """A table of a page: its cells as text, the columns styled by name (`numeric` ones
    right-aligned, the `verdict` one coloured by verdict in the HTML)."""

    header: list[str]
    body: list[list[str]]
    numeric: frozenset[str] = frozenset()
    verdict: str | None = None


@dataclass(frozen=True)
class Link:
    """A line near a page's top that links to another page: its text, then that page's file in
    each format (None where it is not there: no link in that format)."""

    text: str
    md: str | None
    html: str | None


def verdict_class(verdict: str) -> str:
    """The CSS class of a verdict as shown (its first word decides: "better, by less than ..." is better)."""
    if verdict.startswith(stats.NOT_TESTED):
        return "nottested"
    return VERDICT_CLASSES.get(verdict.split(",")[0].split(" (")[0], "")


def _markdown_value(value) -> str:
    return "" if value is None else escape.markdown(str(value))


@functools.cache
def environment(kind: str):
    """The Jinja2 environment of one output: HTML autoescaped; Markdown with every value escaped as Markdown text."""
    import jinja2

    loader = jinja2.PackageLoader("regexp.study", "templates")
    if kind == "html":
        env = jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)
        env.globals["verdict_class"] = verdict_class
        return env
    return jinja2.Environment(
        loader=loader, autoescape=False, finalize=_markdown_value, trim_blocks=True, lstrip_blocks=True
    )


def css() -> str:
    """The pages' stylesheet (templates/report.css), inlined in each HTML page."""
    return (importlib.resources.files("regexp.study") / "templates" / "report.css").read_text(encoding="utf-8")


def markdown(template: str, model: dict) -> str:
    """The Markdown page `template` of `model`, every value escaped as Markdown text."""
    return environment("md").get_template(template).render(model)


def html(template: str, model: dict) -> str:
    """The HTML page `template` of `model`, autoescaped, the stylesheet inlined as `css`."""
    import markupsafe

    return environment("html").get_template(template).render(model | {"css": markupsafe.Markup(css())})
