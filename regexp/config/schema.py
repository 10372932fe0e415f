"""Configuration: the YAML schema, its defaults, loading, overrides, hashing and grids.

Every field defaults to the reference experiment (EMNIST-balanced, the reference CNN,
Adam, batch 250, 25 epochs, 20 % validation), so a config file states only what differs.
Validation is strict and happens before anything is trained or written: unknown keys,
wrong types and impossible values fail with one line naming the file and the field.
Files are read by `regexp.config.yaml_reader`, as plain YAML 1.2.

Every rule lives in the models below, next to the field it constrains: pydantic's types and
bounds check a field alone, a `field_validator` adds a field's own rules, a `model_validator`
the rules between fields, and defaults that depend on other fields (a penalty's targets and
lambda, the run name from the file name) are filled in before validation, so they are checked
like given values. `_error_line` turns pydantic's error list into the one line a user reads.

This module must stay free of TensorFlow: `regexp sweep` validates whole folders with it.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from regexp.config.names import MAX_NAME_LENGTH, run_name_problem, safe_text, sanitize_name
from regexp.config.yaml_reader import (
    config_error,
    key_text,
    parse_yaml,
    read_config_file,
    show_value,
    type_name,
)

MAX_SWEEP_RUNS = 10_000

# Classes in each dataset whose class count is known without reading it.
EMNIST_CLASSES = {"balanced": 47, "byclass": 62, "bymerge": 47, "digits": 10, "letters": 26, "mnist": 10}
DIGITS_CLASSES = 10

RegularizerType = Literal["none", "l1", "l2", "elasticnet"]
Target = Literal["kernel", "bias", "activity"]
Dataset = Literal["emnist", "digits", "synthetic", "idx", "npz", "image_folder"]
EmnistSplit = Literal[tuple(EMNIST_CLASSES)]  # the splits are EMNIST_CLASSES' keys, written once
Precision = Literal["auto", "float32", "mixed_bfloat16"]
Sampler = Literal["qmc", "tpe"]
Pruner = Literal["none", "successive_halving", "hyperband"]

# The kinds of layer that carry a kernel, which a regularizer entry's `layers:` may name besides
# layer names (regexp.model says which Keras classes each kind is).
LAYER_KINDS = ("conv", "conv1d", "conv3d", "depthwise", "separable", "dense")
# The reference CNN's regularizable layers and their kinds, in model order: where penalties go
# when `model.builder` is not given, known without building the model.
REFERENCE_LAYERS = {"conv1": "conv", "conv2": "conv", "dense1": "dense", "dense2": "dense"}
LAYER_NAMES = tuple(REFERENCE_LAYERS)
# The model fields that are the reference CNN's arguments (its builder's params).
REFERENCE_PARAMS = ("conv1_filters", "conv2_filters", "dense_units", "dropout")
# A builder reference: `module.path:function`, or `file.py:function` (relative to the config's folder).
BUILDER_FORMAT = re.compile(r"(?P<source>[^:]+):(?P<function>[A-Za-z_][A-Za-z0-9_]*)")
MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def _unset(value: Any) -> bool:
    """A field added since completed runs were first hashed is left out of the resolved form while
    unset (`exclude_if`), so that their config hashes stay what they were."""
    return value is None


def _rule(message: str, *at: str | int) -> PydanticCustomError:
    """A broken rule, for a validator to raise: `message` about the field `at` below where it validates."""
    return PydanticCustomError("rule", "{message}", {"message": message, "at": at})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RegularizerConfig(_Section):
    """One penalty: its type, the targets it weighs on, its strength, and (optionally) where."""

    type: RegularizerType = Field("none", description="The penalty: none, l1, l2 or elasticnet (L1 + L2).")
    targets: list[Target] | None = Field(
        None, description="What it weighs on: kernel, bias and/or activity; default kernel + bias (nothing for none)."
    )
    lambda_: NonNegativeFloat | None = Field(
        default=None, alias="lambda", description="The strength of an l1 or l2 penalty; default 0.01."
    )
    l1: NonNegativeFloat | None = Field(None, description="elasticnet: the L1 strength (required for elasticnet).")
    l2: NonNegativeFloat | None = Field(None, description="elasticnet: the L2 strength (required for elasticnet).")
    layers: list[str] | None = Field(
        None,
        description="Layer names of the model (the reference CNN's: conv1, conv2, dense1, dense2) or kinds of layer "
        "(conv, conv1d, conv3d, depthwise, separable, dense) the penalty goes on; default: every layer of those kinds.",
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults_of_the_type(cls, data: Any) -> Any:
        """Type none takes nothing else; a penalty's targets default to kernel + bias, l1's and l2's lambda to 0.01."""
        if not isinstance(data, dict):
            return data
        kind = data.get("type", "none")
        if kind == "none":
            for key in ("lambda", "l1", "l2", "targets", "layers"):
                if data.get(key) is not None and not (key == "targets" and data[key] == []):  # [] is the resolved form
                    raise _rule(
                        "given with type none, which has no penalty; remove it or choose l1, l2 or elasticnet", key
                    )
            return {**data, "targets": []}
        defaults = {"targets": ["kernel", "bias"], **({"lambda": 0.01} if kind in ("l1", "l2") else {})}
        return {**data, **{key: value for key, value in defaults.items() if data.get(key) is None}}

    @field_validator("targets")
    @classmethod
    def _targets_once_each(cls, targets: list[str] | None) -> list[str] | None:
        repeated = sorted({t for t in targets or [] if targets.count(t) > 1})
        if repeated:
            raise _rule(f"{repeated[0]!r} is listed twice")
        return targets

    @field_validator("layers")
    @classmethod
    def _layers_known_and_once_each(cls, layers: list[str] | None) -> list[str] | None:
        if layers is None:
            return None
        if not layers:
            raise _rule("empty; leave it out to regularize every layer")
        for name in layers:
            if not name.strip():
                raise _rule("an empty layer name; give layer names or kinds (conv, dense, ...)")
        if len(set(layers)) != len(layers):
            raise _rule("a layer is listed twice")
        return layers

    @model_validator(mode="after")
    def _strengths_and_targets_fit_the_type(self) -> RegularizerConfig:
        if self.type in ("l1", "l2"):
            for field in ("l1", "l2"):
                if getattr(self, field) is not None:
                    raise _rule(f"belongs to type elasticnet; type {self.type} takes 'lambda'", field)
        elif self.type == "elasticnet":
            if self.lambda_ is not None:
                raise _rule("type elasticnet takes 'l1' and 'l2', not 'lambda'", "lambda")
            for field in ("l1", "l2"):
                if getattr(self, field) is None:
                    raise _rule("required for type elasticnet (e.g. l1: 0.01, l2: 0.01)", field)
        if self.type != "none" and not self.targets:
            raise _rule("empty; give any of kernel, bias, activity", "targets")
        return self


def _regularizer_form(value: Any) -> str:
    return "list" if isinstance(value, list) else "single"


RegularizerField = Annotated[
    Annotated[RegularizerConfig, Tag("single")] | Annotated[list[RegularizerConfig], Tag("list")],
    Discriminator(_regularizer_form),
]


class PlacementProblem(ValueError):
    """A regularizer entry that cannot be placed on a model's layers: the message, and where in the entry."""

    def __init__(self, message: str, *at: str | int):
        super().__init__(message)
        self.message, self.at = message, at


def _inventory_text(layers: dict[str, str]) -> str:
    return ", ".join(f"{name} ({kind})" for name, kind in layers.items()) or "none"


def penalty_layers(entry: RegularizerConfig, layers: dict[str, str] = REFERENCE_LAYERS) -> list[str]:
    """The names of `layers` ({name: kind}, in model order) an entry applies to, in model order.

    Raises PlacementProblem for a name that is neither a layer nor a kind, or a kind the model has none of.
    """
    if not entry.layers:
        return list(layers)
    chosen = set()
    for name in entry.layers:
        if name in layers:
            chosen.add(name)
        elif name in LAYER_KINDS:
            of_kind = {layer for layer, kind in layers.items() if kind == name}
            if not of_kind:
                raise PlacementProblem(
                    f"the model has no {name} layer; its layers: {_inventory_text(layers)}", "layers"
                )
            chosen.update(of_kind)
        else:
            kinds = [kind for kind in LAYER_KINDS if kind in layers.values()]
            raise PlacementProblem(
                f"{show_value(name)} is not a layer name or kind; valid: {', '.join([*layers, *kinds])} "
                f"(the model's layers: {_inventory_text(layers)})",
                "layers",
            )
    return [name for name in layers if name in chosen]


def plan_penalties(entries: list[RegularizerConfig], layers: dict[str, str]) -> dict[str, dict[str, int]]:
    """Which entry sits on which target of which layer: {layer: {target: entry index}}, every
    layer of `layers` ({name: kind}, in model order) present. The one placement rule, for the
    reference CNN at validation and for any other model once built.

    Raises PlacementProblem (its `at` starts with the entry's index) for a layer or kind the model
    lacks, or two entries on one target of a layer.
    """
    plan: dict[str, dict[str, int]] = {name: {} for name in layers}
    for i, entry in enumerate(entries):
        if entry.type == "none":
            continue
        try:
            chosen = penalty_layers(entry, layers)
        except PlacementProblem as problem:
            raise PlacementProblem(problem.message, i, *problem.at) from None
        for layer in chosen:
            for target in entry.targets:
                if target in plan[layer]:
                    raise PlacementProblem(
                        f"{layer} {target} already carries regularizer[{plan[layer][target]}]; one penalty "
                        "per target of a layer (merge them into one elasticnet entry)",
                        i,
                    )
                plan[layer][target] = i
    return plan


class DataConfig(_Section):
    """Which data to train and test on."""

    dataset: Dataset = Field(
        "emnist",
        description="emnist, digits (scikit-learn's, offline), synthetic (tests), idx (MNIST-format files), "
        "npz (a .npz of arrays) or image_folder (train/ and test/, one folder of images per class).",
    )
    split: EmnistSplit = Field(
        "balanced", description="EMNIST's split: balanced, byclass, bymerge, digits, letters or mnist."
    )
    path: str | None = Field(
        None,
        description="A NIST matlab.zip / gzip.zip, a folder of IDX files (required for idx), a .npz file (npz) or "
        "a folder of images (image_folder); default: download EMNIST.",
    )
    limit: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Use only the first N training samples (quick looks, tests); default: all."
    )
    test_limit: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Use only the first N test samples; default: all."
    )
    image_size: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None,
        exclude_if=_unset,
        description="[height, width] every image is resized to (datasets npz and image_folder); "
        "default: the images' own size, which must then be the same for all of them.",
    )

    @field_validator("image_size")
    @classmethod
    def _image_size_is_two_sides(cls, size: list[int] | None) -> list[int] | None:
        if size is not None and len(size) != 2:
            raise _rule(f"expected [height, width], got {len(size)} number{'s' * (len(size) != 1)}")
        return size

    @model_validator(mode="after")
    def _path_fits_the_dataset(self) -> DataConfig:
        if self.dataset == "idx" and not self.path:
            raise _rule("required for dataset idx (a folder of MNIST-format IDX files)", "path")
        if self.dataset == "npz" and not self.path:
            raise _rule("required for dataset npz (a .npz file with x_train, y_train, x_test, y_test)", "path")
        if self.dataset == "image_folder" and not self.path:
            raise _rule(
                "required for dataset image_folder (a folder with train/ and test/, one subfolder per class)", "path"
            )
        if self.image_size is not None and self.dataset not in ("npz", "image_folder"):
            raise _rule(
                f"dataset {self.dataset} has 28x28 images; image_size is for npz and image_folder", "image_size"
            )
        if self.dataset in ("digits", "synthetic") and self.path:
            raise _rule(f"dataset {self.dataset} reads no files; remove path", "path")
        if self.path:
            path = Path(self.path).expanduser()
            try:
                exists, is_dir = path.exists(), path.is_dir()
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                raise _rule(f"cannot be read ({reason}): {show_value(self.path)}", "path") from None
            if not exists:
                raise _rule(
                    f"no such file or folder: {self.path} (looked for {path.absolute()}; a relative path "
                    "starts in the folder regexp runs in)",
                    "path",
                )
            if self.dataset in ("idx", "image_folder") and not is_dir:
                what = "MNIST-format IDX files" if self.dataset == "idx" else "images, one subfolder per class"
                raise _rule(f"{self.path} is a file; dataset {self.dataset} reads a folder of {what}", "path")
            if self.dataset == "npz" and is_dir:
                raise _rule(f"{self.path} is a folder; dataset npz reads one .npz file", "path")
        return self

    def known_classes(self) -> int | None:
        """The dataset's class count where it is known without reading the data."""
        return {"emnist": EMNIST_CLASSES[self.split], "digits": DIGITS_CLASSES}.get(self.dataset)


class ModelConfig(_Section):
    """The model: the reference CNN and its sizes, or `builder`, a function that builds another."""

    conv1_filters: Annotated[int, Field(ge=1)] = Field(32, description="Filters of the first 3×3 convolution, conv1.")
    conv2_filters: Annotated[int, Field(ge=1)] = Field(64, description="Filters of the second 3×3 convolution, conv2.")
    dense_units: Annotated[int, Field(ge=1)] = Field(256, description="Units of the hidden dense layer, dense1.")
    dropout: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = Field(
        0.25, description="Dropout rate after each pooling layer."
    )
    num_classes: Annotated[int, Field(ge=2)] | None = Field(
        None, description="Output classes; default: as many as the dataset has (if given, it must agree)."
    )
    builder: str | None = Field(
        default=None,
        exclude_if=_unset,
        description="The function that builds the model, as 'module.path:function' (a module on PYTHONPATH) or "
        "'./file.py:function' (a file relative to the config's folder). It is called as "
        "function(input_shape, num_classes, **params) and returns an unregularized Keras model; "
        "default: the reference CNN (conv1_filters, conv2_filters, dense_units and dropout are its arguments).",
    )
    params: dict[str, Any] | None = Field(
        default=None,
        exclude_if=_unset,
        description="Keyword arguments for model.builder (a free mapping of names to values).",
    )
    # The builder's source file and its SHA-256, found at validation (None for the reference CNN).
    _builder_file: Path | None = PrivateAttr(default=None)
    _builder_sha256: str | None = PrivateAttr(default=None)

    @field_validator("builder")
    @classmethod
    def _builder_is_a_reference(cls, builder: str | None) -> str | None:
        if builder is None:
            return None
        match = BUILDER_FORMAT.fullmatch(builder.strip())
        if not match:
            raise _rule(f"{show_value(builder)} is not 'module.path:function' or './file.py:function'")
        source = match["source"]
        if not is_file_reference(source) and not MODULE_NAME.fullmatch(source):
            raise _rule(f"{show_value(source)} is neither a module name (a.b.c) nor a .py file")
        return builder.strip()

    @model_validator(mode="after")
    def _builder_source_found(self, info: ValidationInfo) -> ModelConfig:
        if self.builder is None:
            if self.params is not None:
                raise _rule(
                    "the reference CNN takes conv1_filters, conv2_filters, dense_units and dropout as model fields; "
                    "params are the arguments of model.builder",
                    "params",
                )
            return self
        for field in REFERENCE_PARAMS:
            if field in self.model_fields_set:
                raise _rule(
                    "belongs to the reference CNN; with model.builder, give the builder's arguments in model.params",
                    field,
                )
        base = (info.context or {}).get("config_dir")
        self._builder_file = builder_source(self.builder, Path(base) if base is not None else Path.cwd())
        try:
            self._builder_sha256 = hashlib.sha256(self._builder_file.read_bytes()).hexdigest()
        except OSError as exc:
            raise _rule(f"{self._builder_file} cannot be read ({exc.strerror or exc})", "builder") from None
        return self

    @property
    def builder_file(self) -> Path | None:
        """The builder's source file (None for the reference CNN)."""
        return self._builder_file

    @property
    def builder_sha256(self) -> str | None:
        """The SHA-256 of the builder's source file (None for the reference CNN)."""
        return self._builder_sha256

    def builder_params(self) -> dict[str, Any]:
        """The keyword arguments the builder is called with: the reference CNN's sizes, or `params`."""
        if self.builder is None:
            return {field: getattr(self, field) for field in REFERENCE_PARAMS}
        return dict(self.params or {})


def is_file_reference(source: str) -> bool:
    """Whether a builder reference's part before the colon names a file (else a module)."""
    return source.endswith(".py") or "/" in source or "\\" in source


def builder_source(builder: str, config_dir: Path) -> Path:
    """The source file of a builder reference: a file relative to `config_dir`, or the file a module
    on the import path is read from (found without running it, except its parent packages).

    Raises the validation rule for a file or module that is not there.
    """
    source = BUILDER_FORMAT.fullmatch(builder)["source"]
    if is_file_reference(source):
        path = (config_dir / Path(source).expanduser()).absolute()
        if not path.is_file():
            raise _rule(
                f"no such file: {source} (looked for {path}; a relative file starts in the config's folder)", "builder"
            )
        return path
    import importlib.util

    try:
        spec = importlib.util.find_spec(source)  # imports the parent packages, which may raise anything
    except Exception as exc:  # noqa: BLE001 - said in one line, as any other bad reference
        raise _rule(f"module {source} cannot be found ({type(exc).__name__}: {exc})", "builder") from None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise _rule(f"no module named {source} on the import path (PYTHONPATH), or it has no source file", "builder")
    return Path(spec.origin)


class TrainingConfig(_Section):
    """How to train."""

    epochs: Annotated[int, Field(ge=1)] = Field(25, description="Epochs to train.")
    batch_size: Annotated[int, Field(ge=1)] = Field(250, description="Samples per training step.")
    validation_split: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = Field(
        0.2, description="The last fraction of the training split, held out for validation."
    )
    learning_rate: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        0.001, description="Adam's learning rate."
    )
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = Field(  # what numpy's and Python's seeding accept
        0, description="Seeds the initialisation, the validation split and the data order (0 to 2**32 - 1)."
    )
    precision: Precision = Field(
        "auto", description="auto: mixed_bfloat16 where the CPU or GPU computes bfloat16 natively, else float32."
    )
    fast_path: bool = Field(
        True,
        description="regexp's faster dropout and fused activity penalties; false: stock Keras layers, the reference's.",
    )


class SearchRange(_Section):
    """A range of a numeric field to search: from `low` to `high`, on a log scale if `log`."""

    low: float = Field(description="The smallest value a trial may take.", allow_inf_nan=False)
    high: float = Field(description="The largest value a trial may take (greater than low).", allow_inf_nan=False)
    log: bool = Field(default=False, description="Sample on a log scale (low must then be greater than 0).")

    @model_validator(mode="after")
    def _a_proper_range(self) -> SearchRange:
        if self.low >= self.high:
            raise _rule(f"low {show_value(self.low)} must be less than high {show_value(self.high)}", "low")
        if self.log and self.low <= 0:
            raise _rule(f"a log range needs low greater than 0, got {show_value(self.low)}", "low")
        return self


def _space_form(value: Any) -> str:
    return "choices" if isinstance(value, list) else "range"


SpaceEntry = Annotated[
    Annotated[SearchRange, Tag("range")] | Annotated[list[Any], Tag("choices")],
    Discriminator(_space_form),
]
SEARCH_FIELD = re.compile(r"(regularizer\.\d+|[a-z_]+)\.[a-z_0-9]+")
NOT_SEARCHED = {
    "training.seed": "trials run on the config's seed and the confirmation on fresh ones, so the seed is not searched",
    "name": "the run name is not a hyperparameter",
}


class SearchConfig(_Section):
    """What `regexp tune` searches, and how (ignored by `regexp run` and `regexp sweep`)."""

    trials: Annotated[int, Field(ge=1)] = Field(default=12, description="Trials per config (Optuna trials).")
    confirm_seeds: Annotated[int, Field(ge=2)] = Field(
        default=5, description="Fresh seeds the best trial's values are re-run on (at least 2, for intervals)."
    )
    sampler: Sampler = Field(default="qmc", description="qmc: quasi-random (Sobol) exploration; tpe: Optuna's TPE.")
    pruner: Pruner = Field(
        default="successive_halving",
        description="Stops unpromising trials early on their per-epoch validation accuracy; none: every trial runs out.",
    )
    space: dict[str, SpaceEntry] = Field(
        description="Field path as --set spells it (regularizer.lambda, regularizer.0.l1, training.learning_rate) "
        "-> {low, high, log} or a list of choices."
    )

    @field_validator("space", mode="before")
    @classmethod
    def _space_keys_are_field_paths(cls, space: Any) -> Any:
        for key in space if isinstance(space, dict) else ():
            if not isinstance(key, str) or not SEARCH_FIELD.fullmatch(key):
                raise _rule(
                    "not a field path; write it as --set does, e.g. regularizer.lambda or regularizer.0.l1",
                    key_text(key),
                )
            if key in NOT_SEARCHED:
                raise _rule(f"cannot be searched: {NOT_SEARCHED[key]}", key)
        return space

    @field_validator("space")
    @classmethod
    def _space_is_not_empty_and_choices_are_plain(cls, space: dict[str, Any]) -> dict[str, Any]:
        if not space:
            raise _rule("empty; give at least one field to search, e.g. regularizer.lambda: {low: 1.0e-6, high: 0.1}")
        for key, entry in space.items():
            if isinstance(entry, list):
                if not entry:
                    raise _rule("empty list of choices; give at least one, or a {low, high} range", key)
                if any(not isinstance(v, (bool, int, float, str)) for v in entry):
                    raise _rule("a choice must be a number, text or true/false", key)
                if len({_identity(v) for v in entry}) != len(entry):
                    raise _rule("a choice is listed twice", key)
        return space


_SECTION_MODELS: dict[str, type[_Section]] = {
    "regularizer": RegularizerConfig,
    "data": DataConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
}


class ExperimentConfig(_Section):
    """One experiment: the whole file.

    Validate with `context={"default_name": ...}` (as `validate` does) to name a run whose
    file gives no name.
    """

    name: str | None = Field(
        default=None,
        validate_default=True,
        description="The run's folder under the results root; default: the config file's name.",
    )
    regularizer: RegularizerField = Field(
        default_factory=RegularizerConfig, description="One penalty, or a list of them (each with its own layers)."
    )
    data: DataConfig = Field(default_factory=DataConfig, description="Which data to train and test on.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The reference CNN's sizes.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="How to train.")
    sweep: dict[str, list[Any]] | None = Field(
        None, description="A grid: dotted field -> list of values; one run for every combination."
    )
    search: SearchConfig | None = Field(
        default=None, description="What `regexp tune` searches; `regexp run` and `regexp sweep` ignore it."
    )

    @field_validator("name")
    @classmethod
    def _name_is_a_run_folder(cls, name: str | None, info: ValidationInfo) -> str | None:
        if name is None:
            default = (info.context or {}).get("default_name")
            if default is None:
                return None
            name = sanitize_name(default)
        problem = run_name_problem(name)
        if problem:
            raise _rule(f"{show_value(name)} {problem}")
        return name

    @field_validator("regularizer")
    @classmethod
    def _list_of_penalties_apart(cls, regularizer: RegularizerConfig | list[RegularizerConfig]) -> Any:
        if not isinstance(regularizer, list):
            return regularizer
        if not regularizer:
            raise _rule("empty list; leave regularizer out for no penalty")
        dumped = [entry.model_dump(by_alias=True) for entry in regularizer]
        for i, entry in enumerate(regularizer):
            if dumped[i] in dumped[:i]:
                raise _rule(f"repeats regularizer[{dumped.index(dumped[i])}]", i)
            if entry.type == "none":
                raise _rule("'none' has no place in a list of penalties; remove the entry", i, "type")
        return regularizer

    @field_validator("sweep", mode="before")
    @classmethod
    def _sweep_keys_are_text(cls, sweep: Any) -> Any:
        for key in sweep if isinstance(sweep, dict) else ():
            if not isinstance(key, str):
                raise _rule("not a field; sweep over section.field, e.g. regularizer.lambda", key_text(key))
        return sweep

    @field_validator("sweep")
    @classmethod
    def _sweep_is_a_grid_of_fields(cls, sweep: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        for key, values in (sweep or {}).items():
            section, _, field = key.partition(".")
            if section not in _SECTION_MODELS or not field or "." in field:
                raise _rule("not a field; sweep over section.field, e.g. regularizer.lambda", key)
            known = _field_names(_SECTION_MODELS[section])
            if field not in known:
                raise _rule(_unknown_field(field, known, f"{section}."), key)
            if not values:
                raise _rule("empty list of values; give at least one, or remove the line", key)
            if len({_identity(v) for v in values}) != len(values):
                raise _rule("a value is listed twice", key)
        runs = math.prod(len(values) for values in (sweep or {}).values())
        if runs > MAX_SWEEP_RUNS:
            raise _rule(f"asks for {runs:,} runs; at most {MAX_SWEEP_RUNS:,} in one config (split it into several)")
        return sweep

    @model_validator(mode="after")
    def _sections_agree(self) -> ExperimentConfig:
        known, wanted = self.data.known_classes(), self.model.num_classes
        if known is not None and wanted is not None and wanted != known:
            what = f"EMNIST {self.data.split}" if self.data.dataset == "emnist" else self.data.dataset
            raise _rule(
                f"{wanted} disagrees with the data: {what} has {known} classes; write {known} or leave num_classes out",
                "model",
                "num_classes",
            )
        if isinstance(self.regularizer, list):
            for key in self.sweep or {}:
                if key.startswith("regularizer."):
                    raise _rule("cannot sweep a field of a list of regularizers", "sweep", key)
        if self.model.builder is None:  # another model's layers are known once it is built (regexp.model)
            try:
                plan_penalties(self.penalties, REFERENCE_LAYERS)
            except PlacementProblem as problem:
                raise _rule(problem.message, *self.penalty_location(problem.at)) from None
        if self.search is not None:
            self._search_fits_this_config()
        return self

    def penalty_location(self, at: tuple) -> tuple:
        """The field path of a PlacementProblem's `at` (entry index first) as the file spells it."""
        return ("regularizer", *(at if isinstance(self.regularizer, list) else at[1:]))

    def _search_fits_this_config(self) -> None:
        """Each searched field exists here, a range sits on a number, and the config validates at
        both ends of every range and at every choice; no field is both swept and searched."""
        if "training.seed" in (self.sweep or {}):
            raise _rule(
                "cannot be swept in a config with search: (the confirmation runs choose fresh seeds)",
                "sweep",
                "training.seed",
            )
        plain = self.model_dump(by_alias=True, mode="json", exclude={"search", "sweep"})
        for key, entry in self.search.space.items():
            at = ("search", "space", key)
            if key in (self.sweep or {}):
                raise _rule("is also in sweep:; a field is either swept or searched, not both", *at)
            current = field_value(plain, key)
            if isinstance(entry, SearchRange):
                if current is None:
                    raise _rule(
                        "cannot take a range: this config does not set it (null), so it has nothing to tune", *at
                    )
                if isinstance(current, bool) or not isinstance(current, (int, float)):
                    raise _rule(
                        f"cannot take a range: it holds {type_name(current)} {show_value(current)} in this config "
                        "(a range needs a number field; give a list of choices instead)",
                        *at,
                    )
                if isinstance(current, int) and not (entry.low.is_integer() and entry.high.is_integer()):
                    raise _rule("a whole-number field: low and high must be whole numbers", *at)
                points = [("low", entry.low), ("high", entry.high)]
            else:
                points = [("choice", value) for value in entry]
            for which, value in points:
                point = copy.deepcopy(plain)
                apply_override(point, key, int(value) if isinstance(current, int) and which != "choice" else value)
                try:
                    ExperimentConfig.model_validate(point)
                except ValidationError as exc:
                    raise _rule(f"at {which} {show_value(value)}: {_error_line(exc)}", *at) from None

    @property
    def penalties(self) -> list[RegularizerConfig]:
        """The regularizer entries as a list, whichever form the file used."""
        reg = self.regularizer
        return list(reg) if isinstance(reg, list) else [reg]


def field_value(data: dict, key: str) -> Any:
    """The value at a dotted field path in a resolved config mapping; raises a rule error if there is none."""
    node: Any = data
    parts = key.split(".")
    for i, part in enumerate(parts):
        where = ".".join(parts[:i]) or "(top level)"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise _rule(
                    f"{where} is a list here (entries 0 to {len(node) - 1}); name one, e.g. {where}.0.<field>",
                    "search",
                    "space",
                    key,
                )
            node = node[int(part)]
        elif isinstance(node, dict):
            if part.isdigit():
                raise _rule(
                    f"{where} is a single entry here, not a list; leave out the .{part}", "search", "space", key
                )
            if part not in node:
                known = [k for k in node if k not in ("name", "sweep", "search")]
                raise _rule(_unknown_field(part, known, f"{where}." if i else ""), "search", "space", key)
            node = node[part]
        else:
            raise _rule(f"{where} is {type_name(node)}, not a section", "search", "space", key)
    return node


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _identity(value: Any) -> str:
    """A text that two equal sweep values share."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


# --------------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[str, Any]:
    """Split `section.field=value`; the value is read as YAML (so 600 is an int, [a, b] a list)."""
    if "=" not in text:
        raise config_error(f"--set {text}: expected section.field=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|\d+))*", key):
        raise config_error(f"--set {text}: '{key}' is not a dotted field name such as training.epochs")
    return key, parse_yaml(raw, f"--set {key}") if raw.strip() else None


def apply_override(data: dict, key: str, value: Any) -> None:
    """Set a dotted field in the raw config mapping, creating sections as needed; a number part
    names an entry of a list (regularizer.0.lambda)."""
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            node = _list_entry(node, part, key, where)
            continue
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, (dict, list)) or (isinstance(child, list) and not parts[i + 1].isdigit()):
            raise config_error(f"--set {key}: {where} is a {type_name(child)}, not a section")
        node = child
    if isinstance(node, list):
        raise config_error(f"--set {key}: {'.'.join(parts[:-1])} is a list; name an entry, e.g. {parts[0]}.0.<field>")
    node[parts[-1]] = value


def _list_entry(node: list, part: str, key: str, where: str) -> dict:
    """The entry `part` (a number) of a list on the way to `key`, or a ConfigError."""
    if not part.isdigit() or int(part) >= len(node):
        raise config_error(f"--set {key}: {where}: the list has entries 0 to {len(node) - 1}")
    entry = node[int(part)]
    if not isinstance(entry, dict):
        raise config_error(f"--set {key}: {where} is a {type_name(entry)}, not a section")
    return entry


# --------------------------------------------------------------------------- the one-line error


def _unknown_field(key: Any, known: list[str], prefix: str = "") -> str:
    """'unknown field', with the nearest known name, or the list of them."""
    hint = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    return (
        f"unknown field; did you mean '{prefix}{hint[0]}'?"
        if hint
        else f"unknown field; expected one of {', '.join(known)}"
    )


_UNKNOWN_KEY = ("extra_forbidden", "invalid_key")  # a key no field has; a key that is no text


def _precedence(error: dict) -> tuple[int, int]:
    """Unknown keys first (outermost first), then what is wrong with a field alone, then broken rules."""
    if error["type"] in _UNKNOWN_KEY:
        return 0, len(error["loc"])
    return (2 if error["type"] == "rule" else 1), 0


def _path(loc: tuple) -> tuple:
    """The location as the file spells it: without the tag pydantic gives a regularizer's form."""
    if len(loc) > 1 and loc[0] == "regularizer" and loc[1] in ("single", "list"):
        return loc[:1] + loc[2:]
    if len(loc) > 3 and loc[:2] == ("search", "space") and loc[3] in ("range", "choices"):
        return loc[:3] + loc[4:]
    return loc


def _model_at(section: tuple[str, ...]) -> type[BaseModel]:
    """The model whose fields a key at `section` (the string parts of its location) must be one of."""
    if not section:
        return ExperimentConfig
    if section[0] == "search":
        return SearchRange if len(section) > 2 else SearchConfig
    return _SECTION_MODELS[section[0]]


def _path_text(parts: tuple) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def penalty_problem(entry: Any) -> str | None:
    """What is wrong with one regularizer entry as recorded in a run's metrics.json (the resolved
    form), as '<field>: <problem>' by the config's own rules, or None if it validates."""
    try:
        RegularizerConfig.model_validate(entry)
    except ValidationError as exc:
        return _error_line(exc)
    return None


def _error_line(exc: ValidationError) -> str:
    """The one line a user reads for a config that does not validate: the field, then what is wrong."""
    errors = exc.errors()
    error = min(errors, key=_precedence)
    path = _path(error["loc"])
    if error["type"] in _UNKNOWN_KEY:
        section = tuple(part for part in path[:-1] if isinstance(part, str))
        model = _model_at(section)
        where = f"{_path_text(path[:-1])}.{key_text(path[-1])}" if path[:-1] else key_text(path[-1])
        return f"{where}: {_unknown_field(path[-1], _field_names(model))}"
    if error["type"] == "rule":
        path += error["ctx"]["at"]
    more = len(errors) - 1
    suffix = f" (and {more} more error{'s' * (more > 1)})" if more else ""
    return f"{_path_text(path) or '(top level)'}: {_describe(error, path)}{suffix}"


def _describe(error: dict, path: tuple) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    got = "got no value; give one or remove the line"
    if value is not None:
        got = f"got {type_name(value)} {show_value(value)}"
    if kind == "rule":
        return ctx["message"]
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"{show_value(value)} is not one of {', '.join(choices)}"
    if kind == "missing":
        return "required"
    if kind == "finite_number":
        return f"must be a finite number, got {show_value(value)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {
            "greater_than": "greater than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }[kind]
        bound = next(iter(ctx.values()))
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # 0, not 0.0: the bound as a person writes it
        hint = _BOUND_HINTS.get(_path_text(path), "")
        return f"must be {words} {bound}, got {show_value(value)}{hint}"
    if kind in ("int_type", "int_from_float", "int_parsing"):
        hint = f"; write {int(value)}" if isinstance(value, float) and value.is_integer() else ""
        return f"expected an integer, {got}{hint}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, {got}"
    if kind in ("float_type", "float_parsing"):
        hint = "; remove the quotes" if isinstance(value, str) and _is_number(value) else ""
        return f"expected a number, {got}{hint}"
    if kind in ("string_type",):
        hint = "; put it in quotes to make it text" if isinstance(value, (int, float)) else ""
        return f"expected a string, {got}{hint}"
    if kind in ("list_type",):
        hint = f"; write [{value}]" if isinstance(value, str) and len(value) <= 60 else ""
        return f"expected a list, {got}{hint}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        if value is None:
            return "empty (no fields under it); give its fields or remove the line"
        hint = ""
        if path == ("regularizer",) and value in ("none", "l1", "l2", "elasticnet"):
            hint = f"; write regularizer: {{type: {value}}}"
        return f"expected a mapping, {got}{hint}"
    return f"{error['msg'][0].lower()}{error['msg'][1:]} ({got})"


_BOUND_HINTS = {
    "training.validation_split": " (the fraction of the training split held out for validation, e.g. 0.2)",
    "model.dropout": " (the fraction of units dropped, e.g. 0.25)",
    "training.seed": " (a 32-bit seed)",
}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- loading


def validate(data: dict, source: str, default_name: str, config_dir: Path | None = None) -> ExperimentConfig:
    """Validate a raw mapping into a resolved ExperimentConfig, or raise ConfigError.

    `default_name` names the run when `data` gives no name (sanitized: usually the file's stem);
    a `model.builder` file is found relative to `config_dir` (default: the current folder).
    """
    try:
        return ExperimentConfig.model_validate(data, context={"default_name": default_name, "config_dir": config_dir})
    except ValidationError as exc:
        raise config_error(f"{source}: {_error_line(exc)}") from None


def _read_with_overrides(path: Path, overrides: list[str]) -> tuple[dict, str]:
    data = read_config_file(path)
    for text in overrides:
        key, value = parse_override(text)
        apply_override(data, key, value)
    return data, f"{path} (with --set)" if overrides else str(path)


def load_config(path: Path | str, overrides: list[str] = ()) -> ExperimentConfig:
    """Read, override and validate one config file."""
    path = Path(path)
    data, source = _read_with_overrides(path, overrides)
    return validate(data, source, path.stem, path.parent)


# --------------------------------------------------------------------------- resolution and identity


def resolved_dict(config: ExperimentConfig) -> dict:
    """The fully resolved config as plain data, in the file's own layout (with model.builder,
    without the reference CNN's sizes, which it does not use); sweep and search left out."""
    exclude: dict = {"sweep": True, "search": True}
    if config.model.builder is not None:
        exclude["model"] = set(REFERENCE_PARAMS)
    return config.model_dump(by_alias=True, mode="json", exclude=exclude)


def to_yaml(config: ExperimentConfig) -> str:
    """The resolved config as YAML, for config.yaml in a run folder; with model.builder, a last
    comment line gives its file's SHA-256 (so that a run is not resumed with a changed model)."""
    text = yaml.safe_dump(resolved_dict(config), sort_keys=False)
    if config.model.builder is not None:
        text += f"# model.builder {config.model.builder_file}: SHA-256 {config.model.builder_sha256}\n"
    return text


def _digest(data: dict) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _identity_data(config: ExperimentConfig) -> dict:
    """What the run computes: the resolved config without its name, with the SHA-256 of a
    model.builder's source file (so a changed model file is a different config)."""
    data = resolved_dict(config)
    data.pop("name")
    if config.model.builder is not None:
        data["model"]["builder_sha256"] = config.model.builder_sha256
    return data


def config_hash(config: ExperimentConfig) -> str:
    """Identity of what the run computes: the resolved config without its name (and a builder's file digest)."""
    return _digest(_identity_data(config))


def group_hash(config: ExperimentConfig) -> str:
    """Identity of the config up to its seed: runs that differ only in seed share it."""
    data = _identity_data(config)
    data["training"].pop("seed")
    return _digest(data)


# --------------------------------------------------------------------------- grids


@dataclass(frozen=True)
class RunSpec:
    """One run to do: its folder name, the label of its seed group, its resolved config, and
    for a run of `regexp tune` what it is there (metrics.json's `tuning`)."""

    name: str
    group: str
    config: ExperimentConfig
    source: str
    tuning: dict | None = None


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, list):
        text = "+".join(_format_value(v) for v in value)
    else:
        text = str(value)
    return safe_text(text) or "_"  # keeps a sign: -1 stays -1


def expand(config: ExperimentConfig, raw: dict, source: str, config_dir: Path | None = None) -> list[RunSpec]:
    """Expand a config's `sweep:` grid into one RunSpec per combination, validated (a builder file
    relative to `config_dir`)."""
    base_name = config.name
    if not config.sweep:
        return [RunSpec(base_name, base_name, config, source)]
    keys = list(config.sweep)
    shorts = [k.split(".")[-1] for k in keys]
    labels = [s if shorts.count(s) == 1 else k.replace(".", "_") for s, k in zip(shorts, keys)]
    specs, names = [], {}
    for values in itertools.product(*(config.sweep[k] for k in keys)):
        data = copy.deepcopy(raw)
        data.pop("sweep", None)
        parts, group_parts = [], []
        for key, label, value in zip(keys, labels, values):
            apply_override(data, key, value)
            part = f"{label}-{_format_value(value)}"
            parts.append(part)
            if key != "training.seed":
                group_parts.append(part)
        point = "__".join(parts)
        name = f"{base_name}__{point}"
        if len(name) > MAX_NAME_LENGTH:
            raise config_error(
                f"{source}: sweep: a run would be named {show_value(name)}, {len(name)} characters; "
                f"at most {MAX_NAME_LENGTH} (shorten the name or the swept values)"
            )
        if name in names:
            both = [", ".join(f"{k} {show_value(v)}" for k, v in zip(keys, point)) for point in (names[name], values)]
            raise config_error(
                f"{source}: sweep: {both[0]} and {both[1]} both make the run name {show_value(name)}; "
                "one would overwrite the other (make the values differ in letters or digits)"
            )
        names[name] = values
        data["name"] = name
        point_source = f"{source} [sweep {point}]"
        point_config = validate(data, point_source, base_name, config_dir)
        group = "__".join([base_name, *group_parts])
        specs.append(RunSpec(name, group, point_config, point_source))
    return specs


def with_seed_grid(data: dict, seeds: int) -> dict:
    """The raw config with `training.seed: [0, ..., seeds - 1]` added to its `sweep:` grid; a grid
    that already varies the seed keeps its own (and one that is not a mapping is left to validation)."""
    grid = data.get("sweep") or {}
    if not isinstance(grid, dict) or "training.seed" in grid:
        return data
    return {**data, "sweep": {**grid, "training.seed": list(range(seeds))}}


def load_runs(path: Path | str, overrides: list[str] = (), seeds: int | None = None) -> list[RunSpec]:
    """Read one config file and expand it into the runs it asks for (with `seeds`, each over seeds 0..seeds-1)."""
    path = Path(path)
    data, source = _read_with_overrides(path, overrides)
    if seeds is not None:
        data = with_seed_grid(data, seeds)
    config = validate(data, source, path.stem, path.parent)
    raw = copy.deepcopy(data)
    raw["name"] = config.name
    return expand(config, raw, source, path.parent)
