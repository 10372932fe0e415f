"""Bad configs through the real CLI: one line naming file and field, exit 2, nothing on disk.

Every file in tests/bad_configs/ is a config that `regexp run` must refuse. Its first line
says how: `# expect: <message>`, the start of what follows `error: <file>: ` on the one line
the CLI prints. Files that cannot hold that comment, and files too big to commit, are in
the tables below.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from regexp.config.yaml_reader import MAX_CONFIG_BYTES, parse_yaml

from conftest import REPO

CORPUS = Path("tests") / "bad_configs"  # relative to the repository root, as a user types it
CORPUS_FILES = sorted(path.name for path in (REPO / CORPUS).iterdir() if path.suffix == ".yaml")
EXPECT_LINE = re.compile(rb"# expect: (.+)")
# Files without a first-line comment: what they must produce.
WITHOUT_COMMENT = {
    "empty.yaml": "holds no settings (empty, or only comments); expected a mapping such as 'regularizer: {type: l2}'",
}
# What python_tag*.yaml would create if the tag were ever run; each test runs a copy of such a
# file whose command touches a sentinel under its own tmp_path instead.
PWNED = "/tmp/pwned-regexp"


def expectation(name: str) -> str:
    if name in WITHOUT_COMMENT:
        return WITHOUT_COMMENT[name]
    first_line = (REPO / CORPUS / name).read_bytes().split(b"\n", 1)[0]
    match = EXPECT_LINE.fullmatch(first_line)
    assert match, f"{name}: the first line must be '# expect: <message>' (or the file listed in WITHOUT_COMMENT)"
    return match.group(1).decode("utf-8")


def assert_refused(result, config: Path | str, results: Path, expected: str) -> None:
    """Exit 2, one line `error: <config>: <expected>...`, no traceback, no results folder."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # anything else is a crash
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.output.splitlines()
    assert len(lines) == 1 and result.output == lines[0] + "\n", result.output
    # a grid point's error names the point between file and field: `<file> [sweep lambda--1]: ...`
    prefix = f"error: {config}" + (" " if expected.startswith("[sweep ") else ": ")
    assert lines[0].startswith(prefix), lines[0]
    assert lines[0][len(prefix) :].startswith(expected), f"\n  got:      {lines[0]}\n  expected: {prefix}{expected}"
    assert not results.exists(), sorted(results.rglob("*"))


@pytest.fixture
def in_repo(monkeypatch):
    """Run from the repository root, so configs are named as tests/bad_configs/<file>."""
    monkeypatch.chdir(REPO)


def test_corpus_holds_at_least_25_bad_configs_each_with_its_expected_error():
    assert len(CORPUS_FILES) >= 25
    assert set(WITHOUT_COMMENT) <= set(CORPUS_FILES)
    assert all(expectation(name) for name in CORPUS_FILES)


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_bad_config_is_refused_with_one_line_naming_file_and_field(cli, in_repo, tmp_path, name):
    config = CORPUS / name
    text = config.read_text(encoding="utf-8", errors="surrogateescape")
    sentinel = tmp_path / "pwned"
    if PWNED in text:  # a tag that would run a command: make it aim at this test's own sentinel
        config = tmp_path / name
        config.write_text(text.replace(PWNED, str(sentinel)), encoding="utf-8", errors="surrogateescape")
        assert os.system(f"touch {sentinel}.control") == 0 and Path(f"{sentinel}.control").exists()
    results = tmp_path / "results"
    result = cli("run", config, "--results", results)
    assert_refused(result, config, results, expectation(name))
    assert not sentinel.exists(), "a YAML tag ran a command"


HUGE_BYTES = len("regularizer: {type: l2}\n") + len("# padding\n") * (MAX_CONFIG_BYTES // 10 + 1)


def _huge(path: Path) -> None:
    """Valid YAML, so only its size can refuse it."""
    path.write_text("regularizer: {type: l2}\n" + "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    assert path.stat().st_size == HUGE_BYTES > MAX_CONFIG_BYTES


def _folder(path: Path) -> None:
    path.mkdir()


GENERATED = {
    # name: (how to make it under tmp_path, the message)
    "huge.yaml": (_huge, f"file is {HUGE_BYTES:,} bytes; a config is at most {MAX_CONFIG_BYTES:,}"),
    "missing.yaml": (lambda path: None, "no such file"),
    "folder.yaml": (_folder, "not a file; expected a YAML config"),
}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_bad_config_file_is_refused_with_one_line(cli, tmp_path, name):
    make, expected = GENERATED[name]
    config = tmp_path / name
    make(config)
    results = tmp_path / "results"
    assert_refused(cli("run", config, "--results", results), config, results, expected)


def test_python_tag_is_refused_and_never_run(cli, tmp_path):
    sentinel = tmp_path / "pwned"
    text = f'regularizer:\n  type: l2\n  lambda: !!python/object/apply:os.system ["touch {sentinel}"]\n'
    config = tmp_path / "tag.yaml"
    config.write_text(text)
    results = tmp_path / "results"
    result = cli("run", config, "--results", results)
    expected = "regularizer.lambda: YAML tag !!python/object/apply:os.system is not allowed"
    assert_refused(result, config, results, expected)
    assert not sentinel.exists()
    yaml.unsafe_load(text)  # the control: an unsafe loader does run the command, so the check above can fail
    assert sentinel.exists()


def test_refusal_is_one_line_on_the_real_stderr(tmp_path):
    config = CORPUS / "python_tag.yaml"
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "regexp", "run", str(config), "--results", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"error: {config}: regularizer.lambda: YAML tag ") and done.stderr.count("\n") == 1
    assert not results.exists()


@pytest.mark.parametrize(
    "text, value",
    [
        ("010", 10),  # YAML 1.1: octal 8
        ("0o10", 8),
        ("0x10", 16),
        ("1_000", 1000),
        ("1e-3", 0.001),
        ("1:30", "1:30"),  # YAML 1.1: sexagesimal 90
        ("2024-01-01", "2024-01-01"),  # YAML 1.1: a date
        ("on", "on"),  # YAML 1.1: true
        ("no", "no"),  # YAML 1.1: false
        ("true", True),
        ("~", None),
        ("=", "="),  # YAML 1.1: an unconstructible 'value' tag
    ],
)
def test_yaml_scalars_read_as_yaml_1_2_so_nothing_changes_meaning_silently(text, value):
    assert parse_yaml(f"x: {text}", "s") == {"x": value}
