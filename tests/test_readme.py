"""The README's commands run as a newcomer types them, so a renamed option breaks CI, not a newcomer.

The code block after the README's `<!-- readme-check ... -->` line is run line by line, in a
folder whose configs/ holds the README's demo config only (so the sweep stays small); the commands that train get the tiny-data overrides appended (the options they
were given are still parsed and used).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import CONFIGS, REPO, TINY_SET

MARKER = "<!-- readme-check"
TRAINS = ("run", "sweep")


def checked_commands(readme: str) -> list[list[str]]:
    """The commands of the code block after the marker, comments dropped, split as a shell would."""
    after = readme.split(MARKER, 1)[1]
    block = re.search(r"```[a-z]*\n(.*?)```", after, re.S).group(1)
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_the_checked_block_holds_every_command_once():
    commands = checked_commands((REPO / "README.md").read_text())
    assert [c[0] for c in commands] == ["regexp"] * len(commands)
    assert {c[1] for c in commands} == {"run", "sweep", "plot", "report", "export"}


@pytest.mark.slow
@pytest.mark.mlflow
def test_the_readme_commands_run(tmp_path):
    pytest.importorskip("mlflow")
    (tmp_path / "configs").mkdir()
    shutil.copy(CONFIGS / "demo_digits.yaml", tmp_path / "configs" / "demo_digits.yaml")
    for command in checked_commands((REPO / "README.md").read_text()):
        args = command[1:] + (TINY_SET if command[1] in TRAINS else [])
        done = subprocess.run(
            [sys.executable, "-m", "regexp", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert done.returncode == 0, f"{shlex.join(command)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert (tmp_path / "results" / "demo" / "report.html").is_file()
    assert (tmp_path / "results" / "demo" / "runs.csv").is_file()
    assert (tmp_path / "mlflow.db").is_file()
