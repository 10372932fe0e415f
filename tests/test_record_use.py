"""The run record is the one place a status or a field of metrics.json is spelled: the study stage
reads a run's fields by attribute (`record.test_accuracy`), and the study and run stages compare
statuses as RunStatus, never as bare text. Checked on the source (ast), with a control snippet
that shows each check finds what it looks for."""

import ast

import pytest

from regexp.results import RunRecord, RunStatus

from conftest import REPO

STATUS_TEXTS = {status.value for status in RunStatus}
FIELDS = set(RunRecord.model_fields)


def _texts(node: ast.AST) -> set[str]:
    """The string constants of `node`, or of the tuple, list or set it is."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return {item.value for item in items if isinstance(item, ast.Constant) and isinstance(item.value, str)}


def status_texts_compared(source: str) -> list[str]:
    """Each comparison of `source` with a status spelled as text ('line: "completed"')."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                found += [f"{node.lineno}: {text!r}" for text in sorted(_texts(operand) & STATUS_TEXTS)]
    return found


def _record_dicts(tree: ast.AST) -> set[str]:
    """The names a module gives metrics.json as a plain dict: `m`, `metrics`, and any name bound
    to an expression that reads a `.metrics` attribute (`m = run.metrics`)."""
    names = {"m", "metrics"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(part, ast.Attribute) and part.attr == "metrics" for part in ast.walk(node.value)
        ):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    return names


def _is_record_dict(node: ast.AST, names: set[str]) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "metrics") or (
        isinstance(node, ast.Name) and node.id in names
    )


def fields_read_by_key(source: str) -> list[str]:
    """Each `m["<field>"]` and `m.get("<field>")` of `source` on metrics.json as a plain dict
    (`run.metrics`, or a name for it) whose key is a field of RunRecord."""
    tree = ast.parse(source)
    names = _record_dicts(tree)
    found = []
    for node in ast.walk(tree):
        receiver = key = None
        if isinstance(node, ast.Subscript):
            receiver, key = node.value, node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            receiver, key = node.func.value, (node.args[0] if node.args else None)
        if key is not None and _is_record_dict(receiver, names):
            found += [f"{node.lineno}: {text!r}" for text in sorted(_texts(key) & FIELDS)]
    return found


def sources(*packages: str) -> dict[str, str]:
    return {
        str(path.relative_to(REPO)): path.read_text()
        for package in packages
        for path in sorted((REPO / "regexp" / package).rglob("*.py"))
    }


def test_the_checks_find_a_status_compared_as_text_and_a_field_read_by_key():
    snippet = 'if m.get("status") == "completed" and m["test_accuracy"] is not None and s in ("failed", "pruned"): pass'
    assert status_texts_compared(snippet) == ["1: 'completed'", "1: 'failed'", "1: 'pruned'"]
    assert fields_read_by_key(snippet) == ["1: 'status'", "1: 'test_accuracy'"]
    assert fields_read_by_key('first = runs[0].metrics\nfirst.get("seed")\nrun.metrics["group"]') == [
        "2: 'seed'",
        "3: 'group'",
    ]
    assert status_texts_compared('if record.status is RunStatus.COMPLETED: row["failed"] = 1') == []
    assert (
        fields_read_by_key('run.metrics.get("written_by_a_newer_regexp"); row["test_accuracy"]; record.test_accuracy')
        == []
    )


def test_study_and_run_compare_statuses_as_run_status_never_as_text():
    found = {name: status_texts_compared(text) for name, text in sources("study", "run").items()}
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_the_study_stage_reads_no_field_of_the_record_by_string_key():
    found = {name: fields_read_by_key(text) for name, text in sources("study").items()}
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_the_run_stage_reads_a_runs_status_through_the_record():
    found = {
        name: [line for line in fields_read_by_key(text) if "'status'" in line] for name, text in sources("run").items()
    }
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_the_results_the_mlflow_export_logs_are_fields_of_the_record():
    from regexp.study.mlflow_export import RESULT_FIELDS

    assert set(RESULT_FIELDS) <= FIELDS


def test_a_record_written_with_a_key_the_record_does_not_name_is_refused_and_nothing_is_written(tmp_path):
    from regexp.results import write_record
    from regexp.results.record import RecordError

    record = {"run": "r", "status": "failed", "error": "boom"}
    with pytest.raises(RecordError, match="^tets_accuracy: not a field of the run record"):
        write_record(tmp_path / "metrics.json", {**record, "tets_accuracy": 0.5})
    assert not (tmp_path / "metrics.json").exists()
    write_record(tmp_path / "metrics.json", record)  # the control: every key named
    assert (tmp_path / "metrics.json").exists()
