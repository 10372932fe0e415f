"""The documentation: the site builds strictly, the configuration reference comes from the schema
and every field has a description, and the README's check command is the one CI runs."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from regexp.config.schema import ExperimentConfig

from conftest import REPO


def generator():
    """docs/gen_config_reference.py, the MkDocs hook that writes the configuration reference."""
    spec = importlib.util.spec_from_file_location("gen_config_reference", REPO / "docs" / "gen_config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_config_field_has_a_description():
    assert generator().undocumented_fields() == []


def test_every_field_of_the_run_record_has_a_description_and_a_row():
    assert generator().undocumented_record_fields() == []
    from regexp.results.record import RunRecord

    rows = generator().record_markdown().splitlines()
    assert [row.split("`")[1] for row in rows[2:]] == list(RunRecord.model_fields)


def test_the_reference_has_a_row_per_field_with_its_default():
    text = generator().reference_markdown()
    for section, model in generator().SECTIONS.items():
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in text, f"{section}.{name} is missing from the reference"
    training = ExperimentConfig().training
    assert f"| `epochs` | whole number | `{training.epochs}` |" in text
    assert "| `type` | `none`, `l1`, `l2` or `elasticnet` | `none` |" in text


def test_the_readme_check_command_is_the_one_ci_runs():
    readme = (REPO / "README.md").read_text()
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(ci) == 1
    assert ci[0] in readme.splitlines()


@pytest.mark.docs
def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    reference = (tmp_path / "site" / "config-reference" / "index.html").read_text()
    assert "validation_split" in reference and "<!-- config-reference -->" not in reference
    nav = re.findall(r"^  - [^:]+: (\S+\.md)$", (REPO / "mkdocs.yml").read_text(), re.M)
    assert sorted(nav) == sorted(p.name for p in (REPO / "docs").glob("*.md")), "a page is not in the nav"
