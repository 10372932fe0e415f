"""Configuration: the YAML schema, its defaults, loading, overrides, hashing and grids.

Every field defaults to the reference experiment (EMNIST-balanced, the reference CNN,
Adam, batch 250, 25 epochs, 20 % validation), so a config file states only what differs.
Validation is strict and happens before anything is trained or written: unknown keys,
wrong types and impossible values fail with one line naming the file and the field.
Files are read by `regexp.yaml_reader`, as plain YAML 1.2.

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
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from regexp.yaml_reader import config_error, key_text, parse_yaml, read_config_file, show_value, type_name

MAX_SWEEP_RUNS = 10_000

RegularizerType = Literal["none", "l1", "l2", "elasticnet"]
Target = Literal["kernel", "bias", "activity"]
Dataset = Literal["emnist", "digits", "synthetic", "idx"]
EmnistSplit = Literal["balanced", "byclass", "bymerge", "digits", "letters", "mnist"]
Precision = Literal["auto", "float32", "mixed_bfloat16"]

# The names the model builder gives its regularized layers, and the kinds that select them.
LAYER_NAMES = ("conv1", "conv2", "dense1", "dense2")
LAYER_KINDS = {"conv": ("conv1", "conv2"), "dense": ("dense1", "dense2")}

# Classes in each dataset whose class count is known without reading it.
EMNIST_CLASSES = {"balanced": 47, "byclass": 62, "bymerge": 47, "digits": 10, "letters": 26, "mnist": 10}
DIGITS_CLASSES = 10

NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class RegularizerConfig(_Section):
    """One penalty: its type, the targets it weighs on, its strength, and (optionally) where."""

    type: RegularizerType = "none"
    # kernel, bias and/or activity; defaults to kernel + bias for a penalty, nothing for none
    targets: list[Target] | None = None
    # strength for l1 or l2 (defaults to 0.01)
    lambda_: NonNegativeFloat | None = Field(default=None, alias="lambda")
    # strengths for elasticnet (both required)
    l1: NonNegativeFloat | None = None
    l2: NonNegativeFloat | None = None
    # layer names (conv1, conv2, dense1, dense2) or kinds (conv, dense); default: all of them
    layers: list[str] | None = None


def _regularizer_form(value: Any) -> str:
    return "list" if isinstance(value, list) else "single"


RegularizerField = Annotated[
    Union[
        Annotated[RegularizerConfig, Tag("single")],
        Annotated[list[RegularizerConfig], Tag("list")],
    ],
    Discriminator(_regularizer_form),
]


class DataConfig(_Section):
    """Which data to train and test on."""

    dataset: Dataset = "emnist"
    split: EmnistSplit = "balanced"
    # a NIST matlab.zip / gzip.zip, or a folder of IDX files; default: download EMNIST
    path: str | None = None
    # use only the first N training samples (quick looks, tests)
    limit: Annotated[int, Field(ge=1)] | None = None
    # use only the first N test samples
    test_limit: Annotated[int, Field(ge=1)] | None = None


class ModelConfig(_Section):
    """The reference CNN's sizes."""

    conv1_filters: Annotated[int, Field(ge=1)] = 32
    conv2_filters: Annotated[int, Field(ge=1)] = 64
    dense_units: Annotated[int, Field(ge=1)] = 256
    dropout: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.25
    # output classes; default: as many as the dataset has
    num_classes: Annotated[int, Field(ge=2)] | None = None


class TrainingConfig(_Section):
    """How to train."""

    epochs: Annotated[int, Field(ge=1)] = 25
    batch_size: Annotated[int, Field(ge=1)] = 250
    validation_split: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.2
    learning_rate: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 0.001
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0  # what numpy's and Python's seeding accept
    # auto: mixed_bfloat16 where the CPU or GPU computes bfloat16 natively, else float32
    precision: Precision = "auto"
    # regexp's faster dropout and fused activity penalties; false: stock Keras layers, exactly the reference's
    fast_path: bool = True


class ExperimentConfig(_Section):
    """One experiment: the whole file."""

    # run folder name under the results root; default: the config file's name
    name: str | None = None
    regularizer: RegularizerField = Field(default_factory=RegularizerConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    # dotted field -> list of values; the run is repeated for every combination
    sweep: dict[str, list[Any]] | None = None

    @property
    def penalties(self) -> list[RegularizerConfig]:
        """The regularizer entries as a list, whichever form the file used."""
        reg = self.regularizer
        return list(reg) if isinstance(reg, list) else [reg]


# --------------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[str, Any]:
    """Split `section.field=value`; the value is read as YAML (so 600 is an int, [a, b] a list)."""
    if "=" not in text:
        raise config_error(f"--set {text}: expected section.field=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise config_error(f"--set {text}: '{key}' is not a dotted field name such as training.epochs")
    return key, parse_yaml(raw, f"--set {key}") if raw.strip() else None


def apply_override(data: dict, key: str, value: Any) -> None:
    """Set a dotted field in the raw config mapping, creating sections as needed."""
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise config_error(f"--set {key}: {where} is a {type_name(child)}, not a section")
        node = child
    node[parts[-1]] = value


# --------------------------------------------------------------------------- validation




def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if part in ("single", "list"):
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_SECTION_MODELS = {
    "regularizer": RegularizerConfig,
    "data": DataConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
}


def _check_unknown_keys(data: dict) -> None:
    """Reject unknown keys before pydantic, with a 'did you mean' for near misses."""

    def check(mapping: dict, model: type[BaseModel], prefix: str) -> None:
        known = _field_names(model)
        for key in mapping:
            if key not in known:
                where = f"{prefix}.{key_text(key)}" if prefix else key_text(key)
                hint = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                suggestion = f"; did you mean '{hint[0]}'?" if hint else f"; expected one of {', '.join(known)}"
                raise _FieldError(where, f"unknown field{suggestion}")

    check(data, ExperimentConfig, "")
    for section, model in _SECTION_MODELS.items():
        value = data.get(section)
        if isinstance(value, dict):
            check(value, model, section)
        elif section == "regularizer" and isinstance(value, list):
            for i, entry in enumerate(value):
                if isinstance(entry, dict):
                    check(entry, model, f"regularizer[{i}]")
    if isinstance(data.get("sweep"), dict):
        for key in data["sweep"]:
            if not isinstance(key, str):
                raise _FieldError(
                    f"sweep.{key_text(key)}", "not a field; sweep over section.field, e.g. regularizer.lambda"
                )


class _FieldError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _describe(error: dict) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    loc = tuple(part for part in error["loc"] if part not in ("single", "list"))
    got = "got no value; give one or remove the line"
    if value is not None:
        got = f"got {type_name(value)} {show_value(value)}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"{show_value(value)} is not one of {', '.join(choices)}"
    if kind == "missing":
        return "required"
    if kind == "finite_number":
        return f"must be a finite number, got {show_value(value)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {"greater_than": "greater than", "greater_than_equal": "at least",
                 "less_than": "less than", "less_than_equal": "at most"}[kind]
        bound = next(iter(ctx.values()))
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # 0, not 0.0: the bound as a person writes it
        hint = _BOUND_HINTS.get(_format_loc(loc), "")
        return f"must be {words} {bound}, got {show_value(value)}{hint}"
    if kind in ("int_type", "int_from_float", "int_parsing"):
        hint = f"; write {int(value)}" if isinstance(value, float) and value.is_integer() else ""
        return f"expected an integer, {got}{hint}"
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
        if loc == ("regularizer",) and value in ("none", "l1", "l2", "elasticnet"):
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


def _check_penalty(entry: RegularizerConfig, where: str) -> None:
    """Cross-field rules of one regularizer entry (pydantic checks each field alone)."""
    given = entry.model_fields_set
    if entry.type == "none":
        for field in ("lambda_", "l1", "l2", "targets", "layers"):
            if field in given and getattr(entry, field) is not None:
                name = "lambda" if field == "lambda_" else field
                raise _FieldError(f"{where}.{name}", "given with type none, which has no penalty; remove it or choose l1, l2 or elasticnet")
        return
    if entry.type in ("l1", "l2"):
        for field in ("l1", "l2"):
            if getattr(entry, field) is not None:
                raise _FieldError(f"{where}.{field}", f"belongs to type elasticnet; type {entry.type} takes 'lambda'")
    else:
        if entry.lambda_ is not None:
            raise _FieldError(f"{where}.lambda", "type elasticnet takes 'l1' and 'l2', not 'lambda'")
        for field in ("l1", "l2"):
            if getattr(entry, field) is None:
                raise _FieldError(f"{where}.{field}", "required for type elasticnet (e.g. l1: 0.01, l2: 0.01)")
    if entry.targets is not None:
        if not entry.targets:
            raise _FieldError(f"{where}.targets", "empty; give any of kernel, bias, activity")
        repeated = sorted({t for t in entry.targets if entry.targets.count(t) > 1})
        if repeated:
            raise _FieldError(f"{where}.targets", f"{repeated[0]!r} is listed twice")
    if entry.layers is not None:
        if not entry.layers:
            raise _FieldError(f"{where}.layers", "empty; leave it out to regularize every layer")
        valid = list(LAYER_NAMES) + list(LAYER_KINDS)
        for name in entry.layers:
            if name not in valid:
                raise _FieldError(
                    f"{where}.layers", f"{show_value(name)} is not a layer name or kind; valid: {', '.join(valid)}"
                )
        if len(set(entry.layers)) != len(entry.layers):
            raise _FieldError(f"{where}.layers", "a layer is listed twice")


def _resolve_penalty(entry: RegularizerConfig) -> RegularizerConfig:
    """Fill the defaults that depend on the type: targets and lambda."""
    if entry.type == "none":
        return entry.model_copy(update={"targets": []})
    update: dict[str, Any] = {}
    if entry.targets is None:
        update["targets"] = ["kernel", "bias"]
    if entry.type in ("l1", "l2") and entry.lambda_ is None:
        update["lambda_"] = 0.01
    return entry.model_copy(update=update)


def penalty_layers(entry: RegularizerConfig) -> list[str]:
    """The layer names an entry applies to, in model order."""
    if not entry.layers:
        return list(LAYER_NAMES)
    chosen = set()
    for name in entry.layers:
        chosen.update(LAYER_KINDS.get(name, (name,)))
    return [name for name in LAYER_NAMES if name in chosen]


def _check_penalties(config: ExperimentConfig) -> ExperimentConfig:
    single = not isinstance(config.regularizer, list)
    entries = config.penalties
    if not single and not entries:
        raise _FieldError("regularizer", "empty list; leave regularizer out for no penalty")
    resolved = []
    for i, entry in enumerate(entries):
        where = "regularizer" if single else f"regularizer[{i}]"
        _check_penalty(entry, where)
        resolved.append(_resolve_penalty(entry))
    if not single:
        seen: dict[tuple[str, str], int] = {}
        dumped = [e.model_dump(by_alias=True) for e in resolved]
        for i, entry in enumerate(resolved):
            if dumped[i] in dumped[:i]:
                raise _FieldError(f"regularizer[{i}]", f"repeats regularizer[{dumped.index(dumped[i])}]")
            if entry.type == "none":
                raise _FieldError(f"regularizer[{i}].type", "'none' has no place in a list of penalties; remove the entry")
            for layer in penalty_layers(entry):
                for target in entry.targets:
                    if (layer, target) in seen:
                        raise _FieldError(
                            f"regularizer[{i}]",
                            f"{layer} {target} already carries regularizer[{seen[layer, target]}]; "
                            "one penalty per target of a layer (merge them into one elasticnet entry)",
                        )
                    seen[layer, target] = i
    return config.model_copy(update={"regularizer": resolved[0] if single else resolved})


def _check_data(config: ExperimentConfig) -> None:
    data = config.data
    if data.dataset == "idx" and not data.path:
        raise _FieldError("data.path", "required for dataset idx (a folder of MNIST-format IDX files)")
    if data.dataset in ("digits", "synthetic") and data.path:
        raise _FieldError("data.path", f"dataset {data.dataset} reads no files; remove path")
    if data.path:
        path = Path(data.path).expanduser()
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise _FieldError("data.path", f"cannot be read ({reason}): {show_value(data.path)}") from None
        if not exists:
            raise _FieldError(
                "data.path",
                f"no such file or folder: {data.path} (looked for {path.absolute()}; a relative path starts "
                "in the folder regexp runs in)",
            )
        if data.dataset == "idx" and not is_dir:
            raise _FieldError(
                "data.path", f"{data.path} is a file; dataset idx reads a folder of MNIST-format IDX files"
            )
    known = {"emnist": EMNIST_CLASSES[data.split], "digits": DIGITS_CLASSES}.get(data.dataset)
    wanted = config.model.num_classes
    if known is not None and wanted is not None and wanted != known:
        what = f"EMNIST {data.split}" if data.dataset == "emnist" else data.dataset
        raise _FieldError(
            "model.num_classes",
            f"{wanted} disagrees with the data: {what} has {known} classes; write {known} or leave num_classes out",
        )


def _check_name(name: str) -> None:
    if name in ("", ".", "..") or "/" in name or "\\" in name or ".." in name or name.startswith("."):
        raise _FieldError(
            "name", f"{show_value(name)} is not a plain folder name (no '/', '..' or leading '.'); "
                    "it names one folder under the results root"
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name) or len(name) > 200:
        raise _FieldError("name", f"{show_value(name)} may hold only letters, digits and . _ + - (at most 200)")


def _check_sweep(config: ExperimentConfig, raw: dict) -> None:
    for key, values in (config.sweep or {}).items():
        where = f"sweep.{key}"
        parts = key.split(".")
        if parts[0] in ("sweep", "name") or len(parts) != 2 or parts[0] not in _SECTION_MODELS:
            raise _FieldError(where, "not a field; sweep over section.field, e.g. regularizer.lambda")
        if parts[1] not in _field_names(_SECTION_MODELS[parts[0]]):
            known = _field_names(_SECTION_MODELS[parts[0]])
            hint = difflib.get_close_matches(parts[1], known, n=1, cutoff=0.6)
            raise _FieldError(where, "unknown field" + (f"; did you mean '{parts[0]}.{hint[0]}'?" if hint else ""))
        if not values:
            raise _FieldError(where, "empty list of values; give at least one, or remove the line")
        if len({_identity(v) for v in values}) != len(values):
            raise _FieldError(where, "a value is listed twice")
        if parts[0] == "regularizer" and isinstance(raw.get("regularizer"), list):
            raise _FieldError(where, "cannot sweep a field of a list of regularizers")
    runs = math.prod(len(values) for values in (config.sweep or {}).values())
    if runs > MAX_SWEEP_RUNS:
        raise _FieldError(
            "sweep", f"asks for {runs:,} runs; at most {MAX_SWEEP_RUNS:,} in one config (split it into several)"
        )


def _identity(value: Any) -> str:
    """A text that two equal sweep values share."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def sanitize_name(text: str) -> str:
    """A shell-safe folder name made from any text (used for file stems and grid points)."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._-+") or "run"
    return name[:200]


def validate(data: dict, source: str, default_name: str) -> ExperimentConfig:
    """Validate a raw mapping into a resolved ExperimentConfig, or raise ConfigError."""
    try:
        _check_unknown_keys(data)
        try:
            config = ExperimentConfig.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            more = len(exc.errors()) - 1
            suffix = f" (and {more} more error{'s' * (more > 1)})" if more else ""
            raise _FieldError(_format_loc(error["loc"]) or "(top level)", _describe(error) + suffix) from None
        config = _check_penalties(config)
        _check_data(config)
        _check_sweep(config, data)
        if config.name is None:
            config = config.model_copy(update={"name": sanitize_name(default_name)})
        _check_name(config.name)
    except _FieldError as exc:
        raise config_error(f"{source}: {exc.field}: {exc.message}") from None
    return config


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
    return validate(data, source, path.stem)


# --------------------------------------------------------------------------- resolution and identity


def resolved_dict(config: ExperimentConfig) -> dict:
    """The fully resolved config as plain data, in the file's own layout."""
    return config.model_dump(by_alias=True, mode="json", exclude={"sweep"})


def to_yaml(config: ExperimentConfig) -> str:
    """The resolved config as YAML, for config.yaml in a run folder."""
    return yaml.safe_dump(resolved_dict(config), sort_keys=False)


def _digest(data: dict) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def config_hash(config: ExperimentConfig) -> str:
    """Identity of what the run computes: the resolved config without its name."""
    data = resolved_dict(config)
    data.pop("name")
    return _digest(data)


def group_hash(config: ExperimentConfig) -> str:
    """Identity of the config up to its seed: runs that differ only in seed share it."""
    data = resolved_dict(config)
    data.pop("name")
    data["training"].pop("seed")
    return _digest(data)


# --------------------------------------------------------------------------- grids


@dataclass(frozen=True)
class RunSpec:
    """One run to do: its folder name, the label of its seed group, its resolved config."""

    name: str
    group: str
    config: ExperimentConfig
    source: str


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, list):
        text = "+".join(_format_value(v) for v in value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text) or "_"  # keeps a sign: -1 stays -1


def expand(config: ExperimentConfig, raw: dict, source: str) -> list[RunSpec]:
    """Expand a config's `sweep:` grid into one RunSpec per combination, validated."""
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
        data["name"] = base_name
        parts, group_parts = [], []
        for key, label, value in zip(keys, labels, values):
            apply_override(data, key, value)
            part = f"{label}-{_format_value(value)}"
            parts.append(part)
            if key != "training.seed":
                group_parts.append(part)
        point = "__".join(parts)
        name = f"{base_name}__{point}"
        if len(name) > 200:
            raise config_error(f"{source}: sweep: a run would be named {show_value(name)}, {len(name)} characters; "
                                "at most 200 (shorten the name or the swept values)")
        if name in names:
            both = [", ".join(f"{k} {show_value(v)}" for k, v in zip(keys, point)) for point in (names[name], values)]
            raise config_error(f"{source}: sweep: {both[0]} and {both[1]} both make the run name {show_value(name)}; "
                                "one would overwrite the other (make the values differ in letters or digits)")
        names[name] = values
        point_source = f"{source} [sweep {point}]"
        point_config = validate(data, point_source, base_name)
        point_config = point_config.model_copy(update={"name": name})
        group = "__".join([base_name, *group_parts])
        specs.append(RunSpec(name, group, point_config, point_source))
    return specs


def load_runs(path: Path | str, overrides: list[str] = ()) -> list[RunSpec]:
    """Read one config file and expand it into the runs it asks for."""
    path = Path(path)
    data, source = _read_with_overrides(path, overrides)
    config = validate(data, source, path.stem)
    raw = copy.deepcopy(data)
    raw["name"] = config.name
    return expand(config, raw, source)
