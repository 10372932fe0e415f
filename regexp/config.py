"""Configuration: the YAML schema, its defaults, loading, overrides, hashing and grids.

Every field defaults to the reference experiment (EMNIST-balanced, the reference CNN,
Adam, batch 250, 25 epochs, 20 % validation), so a config file states only what differs.
Validation is strict and happens before anything is trained or written: unknown keys,
wrong types and impossible values fail with one line naming the file and the field.
Files are read as plain YAML 1.2 (no tags, no duplicate keys, bounded nesting and aliases),
so nothing in a config can run code or change meaning by YAML 1.1's rules (010, 1:30, on).

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
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from regexp.errors import ConfigError

MAX_CONFIG_BYTES = 1_000_000
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


# --------------------------------------------------------------------------- YAML


MAX_YAML_DEPTH = 32  # a config nests four levels at most (sweep -> field -> values -> a list value)
MAX_YAML_VALUES = 100_000  # every value counted, an alias as often as it is used
_YAML = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_YAML + kind for kind in ("str", "int", "float", "bool", "null", "map", "seq")}


class _YamlProblem(Exception):
    """A problem found in the YAML node tree: where (a field path, a mark) and what."""

    def __init__(self, path: str, message: str, mark=None):
        super().__init__(message)
        self.path = path
        self.message = message
        self.mark = mark


class _StrictLoader(yaml.SafeLoader):
    """A safe loader for YAML 1.2's core schema: plain values, no duplicate keys, bounded nesting.

    Unlike PyYAML's YAML 1.1 resolution, 1e-3 is a float, 010 is ten, 1:30 and 2024-01-01 are
    strings, and only true/false are booleans (yes, no, on and off are strings).
    """

    def compose_node(self, parent, index):
        depth = getattr(self, "_depth", 0) + 1
        if depth > MAX_YAML_DEPTH:
            raise _YamlProblem("", f"nested more than {MAX_YAML_DEPTH} levels deep; a config needs a few",
                               self.peek_event().start_mark)
        self._depth = depth
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth - 1


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


def _construct_int(loader: _StrictLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    match = re.fullmatch(r"([-+]?)(?:0o([0-7][0-7_]*)|0x([0-9a-fA-F][0-9a-fA-F_]*)|([0-9][0-9_]*))", text)
    if not match:
        raise yaml.constructor.ConstructorError(None, None, f"{_show(text)} is not an integer", node.start_mark)
    sign, octal, hexadecimal, decimal = match.groups()
    try:
        value = int((octal or hexadecimal or decimal).replace("_", ""), 8 if octal else 16 if hexadecimal else 10)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        raise yaml.constructor.ConstructorError(
            None, None, f"an integer of {len(text):,} digits; no setting needs one that long", node.start_mark
        ) from None
    return -value if sign == "-" else value


def _construct_float(loader: _StrictLoader, node: yaml.ScalarNode) -> float:
    try:
        return loader.construct_yaml_float(node)
    except (ValueError, IndexError):  # an explicit !!float tag on text that is no number
        text = loader.construct_scalar(node)
        raise yaml.constructor.ConstructorError(None, None, f"{_show(text)} is not a number", node.start_mark) from None


def _construct_bool(loader: _StrictLoader, node: yaml.ScalarNode) -> bool:
    text = loader.construct_scalar(node)
    if text.lower() not in ("true", "false"):
        raise yaml.constructor.ConstructorError(None, None, f"{_show(text)} is not true or false", node.start_mark)
    return text.lower() == "true"


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_constructor(_YAML + "int", _construct_int)
_StrictLoader.add_constructor(_YAML + "float", _construct_float)
_StrictLoader.add_constructor(_YAML + "bool", _construct_bool)
_StrictLoader.yaml_implicit_resolvers = {}  # YAML 1.2 core schema, not PyYAML's YAML 1.1 set
_StrictLoader.add_implicit_resolver(
    _YAML + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictLoader.add_implicit_resolver(
    _YAML + "int",
    re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7][0-7_]*|0x[0-9a-fA-F][0-9a-fA-F_]*)$"),
    list("-+0123456789"),
)
_StrictLoader.add_implicit_resolver(
    _YAML + "float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
        r"|\.[0-9_]+(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)"
        r"|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_StrictLoader.add_implicit_resolver(_YAML + "null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])


def _key_text(key: Any) -> str:
    """A mapping key as a field path shows it: plain names as they are, anything else quoted."""
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_.+-]{1,60}", key):
        return key
    return _show(key)


def _tag_text(tag: str) -> str:
    text = "!!" + tag[len(_YAML):] if tag.startswith(_YAML) else tag
    return text if len(text) <= 60 else text[:57] + "..."


def _check_nodes(loader: _StrictLoader, root: yaml.Node) -> None:
    """Refuse what the constructor must never see: tags, odd keys, duplicates, alias bombs."""
    count = 0
    active: set[int] = set()

    def visit(node: yaml.Node, path: str, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_YAML_VALUES:
            raise _YamlProblem("", f"holds more than {MAX_YAML_VALUES:,} values (an alias counts as all it "
                                   "repeats); a config needs far fewer", node.start_mark)
        if node.tag not in _PLAIN_TAGS:
            raise _YamlProblem(path, f"YAML tag {_tag_text(node.tag)} is not allowed; a config holds only plain "
                                     "values (text, numbers, true/false, lists, mappings)", node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            if node.tag != _YAML + "str":
                try:
                    loader.construct_object(node)
                except yaml.constructor.ConstructorError as exc:
                    raise _YamlProblem(path, exc.problem, node.start_mark) from None
            return
        if id(node) in active:
            raise _YamlProblem(path, "a YAML alias that contains itself; write the value out", node.start_mark)
        if depth >= MAX_YAML_DEPTH:
            raise _YamlProblem(path, f"nested more than {MAX_YAML_DEPTH} levels deep; a config needs a few",
                               node.start_mark)
        active.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                visit(item, f"{path}[{i}]", depth + 1)
        else:
            lines: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                    raise _YamlProblem(path, f"a key is a {kind}; keys are plain names such as epochs",
                                       key_node.start_mark)
                visit(key_node, path, depth + 1)
                key = loader.construct_object(key_node)
                where = f"{path}.{_key_text(key)}" if path else _key_text(key)
                line = key_node.start_mark.line + 1
                if key in lines:
                    raise _YamlProblem(where, f"given twice (lines {lines[key]} and {line}); keep one")
                lines[key] = line
                visit(value_node, where, depth + 1)
        active.discard(id(node))

    visit(root, "", 0)


def _one_line(text: str) -> str:
    """Escape line breaks and other unprintable characters: an error is always one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _config_error(text: str) -> ConfigError:
    return ConfigError(_one_line(text))


def _yaml_problem_text(exc: yaml.YAMLError, text: str) -> str:
    """One line for a YAML error: where it is and what is wrong."""
    if isinstance(exc, yaml.reader.ReaderError):
        position = exc.position
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return (f"character U+{exc.character:04X} at line {line}, column {column} is not allowed in YAML; "
                "remove it")
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    problem = problem if len(problem) <= 160 else problem[:157] + "..."  # it may quote a long alias or tag
    context = getattr(exc, "context", None)
    if "found character '\\t'" in problem:
        return f"YAML syntax error{where}: a tab; indent with spaces (YAML does not allow tabs)"
    if "found another document" in problem:
        return f"YAML syntax error{where}: a second document ('---'); a config file holds one"
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark and context.startswith("while "):
        problem += f" ({context} that starts at line {context_mark.line + 1})"
    if "mapping values are not allowed" in problem:
        problem += "; check the indentation, and quote a value that holds ': '"
    elif "block" in problem:
        problem += "; check the indentation"
    return f"YAML syntax error{where}: {problem}"


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text with the strict safe loader; errors name `source`."""
    loader = None
    try:
        loader = _StrictLoader(text)  # reading checks the characters already
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(loader, node)
        return loader.construct_document(node)
    except _YamlProblem as exc:
        line = f" (line {exc.mark.line + 1})" if exc.mark else ""
        where = f"{exc.path}: " if exc.path else ""
        raise _config_error(f"{source}: {where}{exc.message}{line}") from None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1})" if mark else ""
        if exc.problem and "could not determine a constructor" in exc.problem:
            tag = exc.problem.split("tag ")[-1]
            raise _config_error(f"{source}: unsupported YAML tag {tag}{where}; only plain YAML is read") from None
        raise _config_error(f"{source}: {exc.problem}{where}") from None
    except yaml.YAMLError as exc:
        raise _config_error(f"{source}: {_yaml_problem_text(exc, text)}") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_config_file(path: Path) -> dict:
    """Read a config file into a mapping, refusing what is not a small UTF-8 YAML mapping."""
    source = str(path)
    try:
        if not path.exists():
            raise _config_error(f"{source}: no such file")
        if not path.is_file():
            raise _config_error(f"{source}: not a file; expected a YAML config such as configs/none.yaml")
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise _config_error(
                f"{source}: file is {size:,} bytes; a config is at most {MAX_CONFIG_BYTES:,} (is this the right file?)"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise _config_error(f"{source}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _config_error(
            f"{source}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); save the file as UTF-8"
        ) from None
    data = parse_yaml(text, source)
    if data is None:
        raise _config_error(
            f"{source}: holds no settings (empty, or only comments); "
            "expected a mapping such as 'regularizer: {type: l2}'"
        )
    if not isinstance(data, dict):
        raise _config_error(
            f"{source}: expected a mapping of sections at the top level (such as 'regularizer: {{type: l2}}'), "
            f"got a {_type_name(data)}"
        )
    return data


# --------------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[str, Any]:
    """Split `section.field=value`; the value is read as YAML (so 600 is an int, [a, b] a list)."""
    if "=" not in text:
        raise _config_error(f"--set {text}: expected section.field=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise _config_error(f"--set {text}: '{key}' is not a dotted field name such as training.epochs")
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
            raise _config_error(f"--set {key}: {where} is a {_type_name(child)}, not a section")
        node = child
    node[parts[-1]] = value


# --------------------------------------------------------------------------- validation


def _type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", int: "integer", float: "number",
            bool: "boolean", type(None): "null"}.get(type(value), type(value).__name__)


_SHOW = reprlib.Repr()
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlevel = 60, 60, 2
_SHOW.maxlist = _SHOW.maxdict = _SHOW.maxtuple = _SHOW.maxset = 4


def _show(value: Any) -> str:
    """A value as an error shows it: YAML's spelling for null, booleans and infinities, short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
    if isinstance(value, int) and abs(value) > 10**30:  # str() of a huge int is slow, or refused
        return f"{'-' if value < 0 else ''}~10^{int(abs(value).bit_length() * math.log10(2))}"
    return _SHOW.repr(value)


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
                where = f"{prefix}.{_key_text(key)}" if prefix else _key_text(key)
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
                    f"sweep.{_key_text(key)}", "not a field; sweep over section.field, e.g. regularizer.lambda"
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
        got = f"got {_type_name(value)} {_show(value)}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"{_show(value)} is not one of {', '.join(choices)}"
    if kind == "missing":
        return "required"
    if kind == "finite_number":
        return f"must be a finite number, got {_show(value)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {"greater_than": "greater than", "greater_than_equal": "at least",
                 "less_than": "less than", "less_than_equal": "at most"}[kind]
        bound = next(iter(ctx.values()))
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # 0, not 0.0: the bound as a person writes it
        hint = _BOUND_HINTS.get(_format_loc(loc), "")
        return f"must be {words} {bound}, got {_show(value)}{hint}"
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
                    f"{where}.layers", f"{_show(name)} is not a layer name or kind; valid: {', '.join(valid)}"
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
            raise _FieldError("data.path", f"cannot be read ({reason}): {_show(data.path)}") from None
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
            "name", f"{_show(name)} is not a plain folder name (no '/', '..' or leading '.'); "
                    "it names one folder under the results root"
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name) or len(name) > 200:
        raise _FieldError("name", f"{_show(name)} may hold only letters, digits and . _ + - (at most 200)")


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
        raise _config_error(f"{source}: {exc.field}: {exc.message}") from None
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
            raise _config_error(f"{source}: sweep: a run would be named {_show(name)}, {len(name)} characters; "
                                "at most 200 (shorten the name or the swept values)")
        if name in names:
            both = [", ".join(f"{k} {_show(v)}" for k, v in zip(keys, point)) for point in (names[name], values)]
            raise _config_error(f"{source}: sweep: {both[0]} and {both[1]} both make the run name {_show(name)}; "
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
