"""Names from a results root are text wherever they are shown (issue 18, items 10, 11, 13):
Markdown escaped as the HTML is, no CSV cell a spreadsheet would run, control characters visible
on the console, and the report's three files written as one generation."""

import csv
import io

import pytest
from test_report import NONE_ACC, fake_run, l2, read_stats

from regexp.study import escape, export, pages, report, summary

HOSTILE = '=HYPERLINK("http://x")<script>alert(1)</script>\n# owned | cell\r@x'


def hostile_study(root):
    for seed in range(3):
        fake_run(root, "none", seed, NONE_ACC[seed])
        fake_run(root, "evil", seed, 0.85 + seed / 100, regularizer=l2(), extra={"group": HOSTILE})


def test_markdown_escaping_makes_tags_headings_and_cells_literal():
    text = escape.markdown("<img onerror=x>\n# h | c *e* [l](u) `c` a_b __init__")
    assert "<" not in text and ">" not in text and "\n" not in text
    assert "\\|" in text and "\\*e\\*" in text and "\\[l\\]" in text and "\\`c\\`" in text
    assert "a_b" in text and "\\_\\_init\\_\\_" in text


def test_control_characters_are_shown_not_obeyed():
    assert escape.visible("a\nb\rc\x1b[31m\u2028\ud800") == "a\\nb\\rc\\x1b[31m\\u2028\\ud800"
    assert escape.visible("naïve λ") == "naïve λ"


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_get_a_quote_and_numbers_stay_numbers(text):
    assert escape.csv_cell(text) == "'" + text
    assert escape.csv_cell(-1.5) == -1.5 and escape.csv_cell(3) == 3 and escape.csv_cell("ok") == "ok"


def test_a_hostile_config_name_is_text_in_every_report_file_and_on_the_console(cli, tmp_path):
    hostile_study(tmp_path)
    result = cli("report", tmp_path)
    assert result.exit_code == 0, result.output
    assert not any(line.startswith("# owned") for line in result.output.splitlines())
    assert "\\n# owned" in result.output
    md = (tmp_path / "report.md").read_text()
    assert "<script>" not in md and "<img" not in md
    assert not any(line.startswith("# owned") for line in md.splitlines())
    assert "&lt;script&gt;" in md
    html = (tmp_path / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    cells = {row["config"]: row for row in csv.DictReader(open(tmp_path / "stats.csv", newline=""))}
    evil = next(name for name in cells if "HYPERLINK" in name)
    assert evil.startswith("'=HYPERLINK")
    assert float(cells[evil]["diff_mean"]) == pytest.approx(0.04)  # numbers stay numbers
    assert cells["none"]["config"] == "none"


def test_summary_md_and_csv_escape_names(tmp_path):
    hostile_study(tmp_path)
    rows = summary.write_summary(tmp_path)
    md = (tmp_path / "summary.md").read_text().splitlines()
    assert len(md) == 2 + len(rows)  # header, rule, one line per config: no row split by a newline
    assert all(line.startswith("|") and line.endswith("|") for line in md)
    assert "<script>" not in "".join(md)
    table = list(csv.DictReader(open(tmp_path / "summary.csv", newline="")))
    assert {row["config"][:2] for row in table} == {"'=", "no"}


def test_export_csv_quotes_formula_text_and_keeps_numbers(tmp_path):
    hostile_study(tmp_path)
    for folder in tmp_path.iterdir():
        (folder / "config.yaml").write_text("name: '-cmd'\ntraining: {epochs: 3}\n")
    rows, problems = export.collect_rows(tmp_path)
    assert not problems
    table = list(csv.DictReader(io.StringIO(export.to_csv(rows))))
    evil = [row for row in table if "HYPERLINK" in row["group"]]
    assert evil and all(row["group"].startswith("'=") for row in evil)
    assert all(row["config.name"] == "'-cmd" and row["config.training.epochs"] == "3" for row in table)
    assert all(float(row["test_accuracy"]) > 0 for row in table)


def test_stale_temporaries_of_dead_report_writers_are_cleared(cli, tmp_path):
    hostile_study(tmp_path)
    stale = [
        tmp_path / ".stats.csv.deadbeef.tmp",
        tmp_path / ".report.md.0badf00d.tmp",
        tmp_path / ".report.html.1.tmp",
    ]
    for path in stale:
        path.write_text("half a file")
    other = tmp_path / ".summary.csv.12345678.tmp"  # not a report file: not the report's to clear
    other.write_text("x")
    assert cli("report", tmp_path).exit_code == 0
    assert not any(path.exists() for path in stale) and other.exists()
    assert not [p for p in tmp_path.glob(".*.tmp") if p != other]


def test_the_three_files_carry_the_digests_of_their_generation(cli, tmp_path):
    import hashlib

    hostile_study(tmp_path)
    assert cli("report", tmp_path).exit_code == 0
    csv_digest = hashlib.sha256((tmp_path / "stats.csv").read_bytes()).hexdigest()[:16]
    md_text = (tmp_path / "report.md").read_text()
    md_digest = hashlib.sha256(md_text.encode()).hexdigest()[:16]
    assert f"stats.csv sha256 {csv_digest}" in md_text
    assert f"stats.csv sha256 {csv_digest} and report.md sha256 {md_digest}" in (tmp_path / "report.html").read_text()


def test_a_writer_failing_before_its_renames_leaves_the_previous_generation_whole(cli, tmp_path, monkeypatch):
    hostile_study(tmp_path)
    assert cli("report", tmp_path).exit_code == 0
    before = {name: (tmp_path / name).read_bytes() for name in report.REPORT_FILES}
    fake_run(tmp_path, "l2_more", 0, 0.9, regularizer=l2(0.1))
    calls = []

    def fsync_then_fail(fd):
        calls.append(fd)
        if len(calls) == 3:  # the third file's temporary: the disk is full
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(report.os, "fsync", fsync_then_fail)
    result = cli("report", tmp_path)
    assert result.exit_code == 2 and "the report cannot be written (No space left on device)" in result.output
    assert {name: (tmp_path / name).read_bytes() for name in report.REPORT_FILES} == before
    assert not list(tmp_path.glob(".*.tmp"))
    assert "l2_more" not in read_stats(tmp_path)


def test_templates_and_stylesheet_ship_with_the_package_and_titles_are_said_once(cli, tmp_path):
    import importlib.resources

    folder = importlib.resources.files("regexp.study") / "templates"
    page_templates = {"report.md.j2", "report.html.j2", "tuning.md.j2", "tuning.html.j2"}
    parts = {"_page.html.j2", "_macros.html.j2", "_table.md.j2", "_link.md.j2", "report.css"}
    assert page_templates | parts <= {p.name for p in folder.iterdir()}
    hostile_study(tmp_path)
    assert cli("report", tmp_path).exit_code == 0
    html = (tmp_path / "report.html").read_text()
    md = (tmp_path / "report.md").read_text()
    for key, title in report.TITLES.items():
        assert key == "skipped" or title in html  # nothing was skipped here
        if key in ("answer", "data", "table", "runs", "method"):
            assert f"## {escape.markdown(title)}" in md
    assert (folder / "report.css").read_text().strip() in html


def test_html_cells_are_styled_by_column_name():
    material = report.Table(["config", "p", "verdict"], [["a", "0.01", "better, by less than ±0.5 points"]])
    env = pages.environment("html")
    macro = env.get_template("_macros.html.j2").module.table
    styled = report.Table(material.header, material.body, frozenset({"p"}), "verdict")
    text = str(macro(styled))
    assert '<td>a</td><td class="num">0.01</td><td class="better">better, by less than ±0.5 points</td>' in text
    assert material.verdict is None  # a table without a verdict column colours nothing
    assert 'class="better"' not in str(macro(material))
