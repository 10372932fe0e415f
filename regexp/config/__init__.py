"""Config: the typed schema of an experiment, read strictly from YAML, with overrides and grids.

`load_runs(path, overrides, seeds)` is the entry: a config file or a folder of them becomes the
list of runs it names (one per sweep point and seed), each a validated `RunSpec`. Modules:
`schema` (the pydantic models, their rules, hashes, grids), `yaml_reader` (the strict YAML
reader and its error lines), `names` (what a run name may be).
"""

from regexp.config.names import run_name_problem
from regexp.config.schema import (
    BUILDER_FORMAT,
    DIGITS_CLASSES,
    EMNIST_CLASSES,
    LAYER_KINDS,
    LAYER_NAMES,
    REFERENCE_LAYERS,
    DataConfig,
    ExperimentConfig,
    PlacementProblem,
    RegularizerConfig,
    RunSpec,
    config_hash,
    group_hash,
    load_config,
    load_runs,
    penalty_layers,
    penalty_problem,
    plan_penalties,
    resolved_dict,
    to_yaml,
    validate,
)

__all__ = [
    "BUILDER_FORMAT",
    "DIGITS_CLASSES",
    "EMNIST_CLASSES",
    "LAYER_KINDS",
    "LAYER_NAMES",
    "REFERENCE_LAYERS",
    "DataConfig",
    "ExperimentConfig",
    "PlacementProblem",
    "RegularizerConfig",
    "RunSpec",
    "config_hash",
    "group_hash",
    "load_config",
    "load_runs",
    "penalty_layers",
    "penalty_problem",
    "plan_penalties",
    "resolved_dict",
    "run_name_problem",
    "to_yaml",
    "validate",
]
