"""Reading config files: plain YAML 1.2, safely, with one-line errors that name the file.

No tags (a !!python tag is refused, never run), no duplicate keys, keys that are names,
bounded nesting and aliases (no alias bombs), and YAML 1.2's values, so nothing in a config
can run code or change meaning by YAML 1.1's rules (010 is ten, 1:30 a string, on a string).

Why PyYAML with this module, not ruamel.yaml: run on tests/bad_configs and the YAML 1.2 scalar
table in tests/test_bad_configs.py, ruamel.yaml's safe loader refuses what this reader refuses while parsing (tags,
duplicate keys, tabs, NULs, syntax errors, a second document) but accepts an alias bomb, an alias
that contains itself, 40 levels of nesting and a list as a key; it reads 2024-01-01 as a date and
fails on '='; a bad `!!int` or a 5,000-digit integer escape as Python's ValueError; its messages
span several lines. The limits, key and tag checks and one-line messages here would all stay,
with a dependency added, and PyYAML stays anyway: `config.to_yaml` writes with it.
"""

from __future__ import annotations

import math
import re
import reprlib
from pathlib import Path
from typing import Any

import yaml

from regexp.errors import ConfigError

MAX_CONFIG_BYTES = 1_000_000

_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlevel = 60, 60, 2
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = _REPR.maxset = 4


def show_value(value: Any) -> str:
    """A value as an error shows it: YAML's spelling for null, booleans and infinities, short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
    if isinstance(value, int) and abs(value) > 10**30:  # str() of a huge int is slow, or refused
        return f"{'-' if value < 0 else ''}~10^{int(abs(value).bit_length() * math.log10(2))}"
    return _REPR.repr(value)


def type_name(value: Any) -> str:
    return {
        dict: "mapping",
        list: "list",
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


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


def _too_deep(mark, path: str = "") -> _YamlProblem:
    return _YamlProblem(path, f"nested more than {MAX_YAML_DEPTH} levels deep; a config needs a few", mark)


class _StrictLoader(yaml.SafeLoader):
    """A safe loader for YAML 1.2's core schema: plain values, bounded nesting (keys: see _check_nodes).

    Unlike PyYAML's YAML 1.1 resolution, 1e-3 is a float, 010 is ten, 1:30 and 2024-01-01 are
    strings, and only true/false are booleans (yes, no, on and off are strings).
    """

    def compose_node(self, parent, index):
        # checked while composing, before PyYAML's recursive composer runs out of stack; _check_nodes
        # checks again after aliases, which can nest a tree deeper than the text does
        depth = getattr(self, "_depth", 0) + 1
        if depth > MAX_YAML_DEPTH:
            raise _too_deep(self.peek_event().start_mark)
        self._depth = depth
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth - 1


def _construct_int(loader: _StrictLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    match = re.fullmatch(r"([-+]?)(?:0o([0-7][0-7_]*)|0x([0-9a-fA-F][0-9a-fA-F_]*)|([0-9][0-9_]*))", text)
    if not match:
        raise yaml.constructor.ConstructorError(None, None, f"{show_value(text)} is not an integer", node.start_mark)
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
        raise yaml.constructor.ConstructorError(
            None, None, f"{show_value(text)} is not a number", node.start_mark
        ) from None


def _construct_bool(loader: _StrictLoader, node: yaml.ScalarNode) -> bool:
    text = loader.construct_scalar(node)
    if text.lower() not in ("true", "false"):
        raise yaml.constructor.ConstructorError(None, None, f"{show_value(text)} is not true or false", node.start_mark)
    return text.lower() == "true"


_StrictLoader.add_constructor(_YAML + "int", _construct_int)
_StrictLoader.add_constructor(_YAML + "float", _construct_float)
_StrictLoader.add_constructor(_YAML + "bool", _construct_bool)
_StrictLoader.yaml_implicit_resolvers = {}  # YAML 1.2 core schema, not PyYAML's YAML 1.1 set
_StrictLoader.add_implicit_resolver(_YAML + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
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


def key_text(key: Any) -> str:
    """A mapping key as a field path shows it: plain names as they are, anything else quoted."""
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_.+-]{1,60}", key):
        return key
    return show_value(key)


def _tag_text(tag: str) -> str:
    text = "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag
    return text if len(text) <= 60 else text[:57] + "..."


def _check_nodes(loader: _StrictLoader, root: yaml.Node) -> None:
    """Refuse what the constructor must never see: tags, odd keys, duplicates, alias bombs."""
    count = 0
    active: set[int] = set()

    def visit(node: yaml.Node, path: str, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_YAML_VALUES:
            raise _YamlProblem(
                "",
                f"holds more than {MAX_YAML_VALUES:,} values (an alias counts as all it "
                "repeats); a config needs far fewer",
                node.start_mark,
            )
        if node.tag not in _PLAIN_TAGS:
            raise _YamlProblem(
                path,
                f"YAML tag {_tag_text(node.tag)} is not allowed; a config holds only plain "
                "values (text, numbers, true/false, lists, mappings)",
                node.start_mark,
            )
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
            raise _too_deep(node.start_mark, path)
        active.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                visit(item, f"{path}[{i}]", depth + 1)
        else:
            lines: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                    raise _YamlProblem(
                        path, f"a key is a {kind}; keys are plain names such as epochs", key_node.start_mark
                    )
                visit(key_node, path, depth + 1)
                key = loader.construct_object(key_node)
                where = f"{path}.{key_text(key)}" if path else key_text(key)
                line = key_node.start_mark.line + 1
                if key in lines:
                    raise _YamlProblem(where, f"given twice (lines {lines[key]} and {line}); keep one")
                lines[key] = line
                visit(value_node, where, depth + 1)
        active.discard(id(node))

    visit(root, "", 0)


def one_line(text: str) -> str:
    """Escape line breaks and other unprintable characters: an error is always one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def config_error(text: str) -> ConfigError:
    return ConfigError(one_line(text))


def _yaml_problem_text(exc: yaml.YAMLError, text: str) -> str:
    """One line for a YAML error: where it is and what is wrong."""
    if isinstance(exc, yaml.reader.ReaderError):
        position = exc.position
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return f"character U+{exc.character:04X} at line {line}, column {column} is not allowed in YAML; remove it"
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
        raise config_error(f"{source}: {where}{exc.message}{line}") from None
    except yaml.constructor.ConstructorError as exc:  # _check_nodes constructs every scalar first; a safety net
        mark = exc.problem_mark
        where = f" (line {mark.line + 1})" if mark else ""
        raise config_error(f"{source}: {exc.problem}{where}") from None
    except yaml.YAMLError as exc:
        raise config_error(f"{source}: {_yaml_problem_text(exc, text)}") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_config_file(path: Path) -> dict:
    """Read a config file into a mapping, refusing what is not a small UTF-8 YAML mapping."""
    source = str(path)
    try:
        if not path.exists():
            raise config_error(f"{source}: no such file")
        if not path.is_file():
            raise config_error(f"{source}: not a file; expected a YAML config such as configs/none.yaml")
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise config_error(
                f"{source}: file is {size:,} bytes; a config is at most {MAX_CONFIG_BYTES:,} (is this the right file?)"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise config_error(f"{source}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise config_error(
            f"{source}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); save the file as UTF-8"
        ) from None
    data = parse_yaml(text, source)
    if data is None:
        raise config_error(
            f"{source}: holds no settings (empty, or only comments); "
            "expected a mapping such as 'regularizer: {type: l2}'"
        )
    if not isinstance(data, dict):
        raise config_error(
            f"{source}: expected a mapping of sections at the top level (such as 'regularizer: {{type: l2}}'), "
            f"got a {type_name(data)}"
        )
    return data
