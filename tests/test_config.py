"""The config schema: reference defaults, strict validation, overrides, identity, grids."""

from pathlib import Path

import pytest

from conftest import CONFIGS, REFERENCE_CONFIGS
from regexp.config import config_hash, group_hash, load_config, load_runs, resolved_dict
from regexp.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "x") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_reference_experiment(tmp_path):
    config = load_config(write(tmp_path, "regularizer: {type: none}\n"))
    assert resolved_dict(config) == {
        "name": "x",
        "regularizer": {"type": "none", "targets": [], "lambda": None, "l1": None, "l2": None, "layers": None},
        "data": {"dataset": "emnist", "split": "balanced", "path": None, "limit": None, "test_limit": None},
        "model": {"conv1_filters": 32, "conv2_filters": 64, "dense_units": 256, "dropout": 0.25, "num_classes": None},
        "training": {"epochs": 25, "batch_size": 250, "validation_split": 0.2, "learning_rate": 0.001,
                     "seed": 0, "precision": "auto", "fast_path": True},
    }


@pytest.mark.parametrize("name", REFERENCE_CONFIGS)
def test_reference_configs_validate(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.name == name


def test_penalty_defaults_fill_targets_and_lambda(tmp_path):
    entry = load_config(write(tmp_path, "regularizer: {type: l1}\n")).regularizer
    assert entry.targets == ["kernel", "bias"] and entry.lambda_ == 0.01


def test_scientific_notation_reads_as_a_number(tmp_path):
    assert load_config(write(tmp_path, "regularizer: {type: l2, lambda: 1e-3}\n")).regularizer.lambda_ == 0.001


@pytest.mark.parametrize(
    "text, expected",
    [
        ("regularizer: {type: l3}", "x.yaml: regularizer.type: 'l3' is not one of none, l1, l2, elasticnet"),
        ("regularizer: {type: l2, lamda: 0.1}", "regularizer.lamda: unknown field; did you mean 'lambda'?"),
        ("trainig: {epochs: 1}", "trainig: unknown field; did you mean 'training'?"),
        ("regularizer: {type: l2, lambda: -0.1}", "regularizer.lambda: must be at least 0"),
        ("regularizer: {type: l2, lambda: .nan}", "regularizer.lambda: must be a finite number"),
        ("regularizer: {type: elasticnet, l1: 0.01}", "regularizer.l2: required for type elasticnet"),
        ("regularizer: {type: none, lambda: 0.01}", "regularizer.lambda: given with type none"),
        ("regularizer: {type: l2, targets: [kernel, kernel]}", "regularizer.targets: 'kernel' is listed twice"),
        ("regularizer: {type: l2, targets: [weights]}", "regularizer.targets[0]: 'weights' is not one of kernel, bias, activity"),
        ("training: {epochs: 0}", "training.epochs: must be at least 1"),
        ("training: {epochs: ten}", "training.epochs: expected an integer, got string 'ten'"),
        ("training: {validation_split: 1.0}", "training.validation_split: must be less than 1"),
        ("training: {batch_size: 0}", "training.batch_size: must be at least 1"),
        ("data: {dataset: digits}\nmodel: {num_classes: 47}", "model.num_classes: 47 disagrees with the data: digits has 10 classes"),
        ("name: ../escape", "name: '../escape' is not a plain folder name"),
    ],
)
def test_invalid_config_fails_with_one_line_naming_file_and_field(tmp_path, text, expected):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text + "\n"))
    message = str(error.value)
    assert expected in message
    assert message.startswith(str(tmp_path / "x.yaml") + ": ")
    assert "\n" not in message


def test_override_sets_and_type_checks_fields(tmp_path):
    path = write(tmp_path, "regularizer: {type: l2}\n")
    config = load_config(path, ["data.limit=600", "data.dataset=synthetic", "model.num_classes=10", "training.epochs=2"])
    assert (config.data.limit, config.data.dataset, config.model.num_classes, config.training.epochs) == (600, "synthetic", 10, 2)
    with pytest.raises(ConfigError, match=r"\(with --set\): training.epochs: expected an integer"):
        load_config(path, ["training.epochs=many"])
    with pytest.raises(ConfigError, match="training.epoch: unknown field; did you mean 'epochs'"):
        load_config(path, ["training.epoch=3"])
    with pytest.raises(ConfigError, match="expected section.field=value"):
        load_config(path, ["training.epochs"])


def test_config_hash_ignores_name_and_group_hash_ignores_seed(tmp_path):
    a = load_config(write(tmp_path, "regularizer: {type: l2}\n", "a"))
    b = load_config(write(tmp_path, "regularizer: {type: l2}\n", "b"))
    c = load_config(write(tmp_path, "regularizer: {type: l2}\ntraining: {seed: 1}\n", "c"))
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert group_hash(a) == group_hash(c)


def test_grid_expands_into_product_with_shell_safe_names(tmp_path):
    path = write(tmp_path, "regularizer: {type: l2}\nsweep:\n  regularizer.lambda: [0.001, 0.1]\n"
                           "  regularizer.targets: [[kernel, bias], [activity]]\n  training.seed: [0, 1]\n", "grid")
    specs = load_runs(path)
    assert [s.name for s in specs][:3] == [
        "grid__lambda-0.001__targets-kernel+bias__seed-0",
        "grid__lambda-0.001__targets-kernel+bias__seed-1",
        "grid__lambda-0.001__targets-activity__seed-0",
    ]
    assert len(specs) == 8
    assert all(set(s.name) <= set("abcdefghijklmnopqrstuvwxyz0123456789._+-_") for s in specs)
    assert specs[0].group == specs[1].group == "grid__lambda-0.001__targets-kernel+bias"
    assert specs[2].config.regularizer.targets == ["activity"]
    assert specs[-1].config.regularizer.lambda_ == 0.1 and specs[-1].config.training.seed == 1


def test_grid_points_are_validated(tmp_path):
    path = write(tmp_path, "regularizer: {type: l2}\nsweep: {regularizer.lambda: [0.1, -1]}\n", "grid")
    with pytest.raises(ConfigError, match=r"grid.yaml \[sweep lambda--1\]: regularizer.lambda: must be at least 0"):
        load_runs(path)
