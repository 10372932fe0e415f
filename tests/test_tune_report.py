"""tuning.md and tuning.html from hand-made run folders (no training): the report and the tuning
page link to each other on a tuned root and only there, and every value read from disk (run,
study and parameter names, a damaged folder's error) is text in both, never markup."""

from __future__ import annotations

from test_report import NONE_ACC, fake_run, l2, make_study

from regexp.study import pages, report, tune_report

HOSTILE = "<script>alert(1)</script>"
LR = "training.learning_rate"


def fake_tuned_root(root, study: str = "none", param: str = LR, run: str | None = None):
    """A tuned root as `regexp tune` leaves it: two trials and three confirmation runs of `study`
    (the baseline), and the trials and confirmations of an l2 study."""
    space = {param: {"low": 1e-4, "high": 1e-2, "log": True}}
    for trial, (value, accuracy) in enumerate([(1e-3, 0.7), (3e-3, 0.8)]):
        tuning = {"role": "trial", "study": study, "trial": trial, "params": {param: value}, "space": space}
        extra = {"tuning": tuning, "best_val_accuracy": accuracy, "group": f"{study}__trial-{trial}"}
        fake_run(root, f"trial{trial}", 0, accuracy, extra=extra | ({"run": run} if run else {}))
    for seed in range(1, 4):
        tuning = {"role": "confirmation", "study": study, "chosen_trial": 1, "params": {param: 3e-3}, "space": space}
        fake_run(root, "none", seed, NONE_ACC[seed - 1], extra={"tuning": tuning, "group": study})
        tuning = tuning | {"study": "l2"}
        fake_run(root, "l2", seed, NONE_ACC[seed - 1] + 0.05, regularizer=l2(), extra={"tuning": tuning})
    return root


def test_the_report_and_the_tuning_page_link_to_each_other_on_a_tuned_root(cli, tmp_path):
    fake_tuned_root(tmp_path)
    result = cli("report", tmp_path)
    assert result.exit_code == 0, result.output
    report_md, report_html = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    tuning_md, tuning_html = (tmp_path / "tuning.md").read_text(), (tmp_path / "tuning.html").read_text()
    assert f"{report.TUNING_LINK}: [tuning.md](tuning.md)." in report_md
    assert '<a href="tuning.html">tuning.html</a>' in report_html
    assert f"{tune_report.REPORT_LINK}: [report.md](report.md)." in tuning_md
    assert '<a href="report.html">report.html</a>' in tuning_html
    # near the top: before the first section
    assert report_md.index("tuning.md") < report_md.index("\n## ")
    assert tuning_html.index("report.html") < tuning_html.index("<h2")


def test_a_root_without_tuning_gets_no_link_to_a_tuning_page(cli, tmp_path):
    make_study(tmp_path)
    result = cli("report", tmp_path)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "tuning.html").exists() and not (tmp_path / "tuning.md").exists()
    for page in ("report.md", "report.html"):
        text = (tmp_path / page).read_text()
        assert report.TUNING_LINK not in text and "tuning.md" not in text and "tuning.html" not in text


def test_the_tuning_page_links_to_the_report_only_where_the_report_is(tmp_path):
    fake_tuned_root(tmp_path)
    tune_report.write_tuning(tmp_path)
    assert "report.md" not in (tmp_path / "tuning.md").read_text()
    assert "report.html" not in (tmp_path / "tuning.html").read_text()
    (tmp_path / "report.html").write_text("<html></html>")
    tune_report.write_tuning(tmp_path)
    assert "report.md" not in (tmp_path / "tuning.md").read_text()  # only the page that is there
    assert '<a href="report.html">' in (tmp_path / "tuning.html").read_text()


def test_a_hostile_run_study_or_parameter_name_is_text_in_tuning_html_and_md(cli, tmp_path):
    fake_tuned_root(tmp_path, study=f"none{HOSTILE}", param=f"lr{HOSTILE}", run=f"trial{HOSTILE}")
    damaged = tmp_path / "<img src=x onerror=alert(1)>"
    damaged.mkdir()
    (damaged / "metrics.json").write_text("{")
    cli("report", tmp_path)
    html = (tmp_path / "tuning.html").read_text()
    assert "<script" not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # the heading, the answer, the table header
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the damaged folder, named in its error line
    md = (tmp_path / "tuning.md").read_text()
    assert "<script" not in md and "<img" not in md and "&lt;script&gt;" in md
    header = next(line for line in md.splitlines() if line.startswith("| trial |"))
    assert header.count(" | ") == 4  # trial, the searched field, accuracy, epochs, ended: no cell split


def test_tuning_html_cells_are_styled_by_column_name():
    study = tune_report.Study("l2", {"regularizer.lambda": {"low": 1e-6, "high": 1e-1}, "choice": ["a", "b"]})
    assert tune_report.trial_numeric(study) == {"trial", "regularizer.lambda", "best val accuracy", "epochs"}
    macro = pages.environment("html").get_template("_macros.html.j2").module.table
    table = pages.Table(["config", "Holm p", "verdict"], [["l2", "0.688", "undecided"]])
    styled = pages.Table(table.header, table.body, tune_report.CONFIRMATION_NUMERIC, "verdict")
    assert '<td>l2</td><td class="num">0.688</td><td class="undecided">undecided</td>' in str(macro(styled))
