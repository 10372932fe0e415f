"""The configuration reference and the run record's fields, generated from their schemas
(regexp.config.schema, regexp.results.record), not written by hand.

A MkDocs hook (mkdocs.yml: hooks): docs/config-reference.md holds MARKER, replaced at build time
by one table per config section (every field with its type, default and the description its
pydantic Field gives); docs/results.md holds RECORD_MARKER, replaced by the table of the fields
of metrics.json (RunRecord). `python docs/gen_config_reference.py` prints both.
"""

from __future__ import annotations

import types
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from regexp.config.schema import DataConfig, ExperimentConfig, ModelConfig, RegularizerConfig, TrainingConfig
from regexp.results.record import RunRecord

MARKER = "<!-- config-reference -->"
RECORD_MARKER = "<!-- record-reference -->"
SECTIONS: dict[str, type[BaseModel]] = {
    "(top level)": ExperimentConfig,
    "regularizer": RegularizerConfig,
    "data": DataConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
}


def type_text(annotation) -> str:
    """A field's type as a reader says it: 'l1, l2 or none', 'whole number or null', 'list of kernel, bias'."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin is typing.Literal:
        names = [f"`{value}`" for value in args]
        return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
    if origin in (typing.Union, types.UnionType):
        kinds = [type_text(arg) for arg in args if arg is not type(None)]
        return " or ".join(kinds) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {type_text(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    names = {int: "whole number", float: "number", bool: "true or false", str: "text"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def default_text(field) -> str:
    """A field's default as YAML would write it ('(a section)' where the default is a whole section)."""
    if field.default_factory is not None:
        return "(its section's defaults)"
    value = field.default
    if value is PydanticUndefined:
        return "(required)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def undocumented_fields() -> list[str]:
    """`section.field` for every config field without a description (the test keeps this empty)."""
    return [
        f"{section}.{field.alias or name}"
        for section, model in SECTIONS.items()
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]


def reference_markdown() -> str:
    """One Markdown table per section: field, type, default, description."""
    out = []
    for section, model in SECTIONS.items():
        out.append(f"## {section if section.startswith('(') else f'`{section}`'}\n")
        out.append(f"{(model.__doc__ or '').strip().splitlines()[0]}\n")
        out.append("| field | type | default | what |\n|---|---|---|---|")
        for name, field in model.model_fields.items():
            cell = (field.description or "").replace("|", "\\|")
            out.append(
                f"| `{field.alias or name}` | {type_text(field.annotation)} | `{default_text(field)}` | {cell} |"
            )
        out.append("")
    return "\n".join(out)


def undocumented_record_fields() -> list[str]:
    """Every field of metrics.json (RunRecord) without a description (the test keeps this empty)."""
    return [name for name, field in RunRecord.model_fields.items() if not (field.description or "").strip()]


def record_markdown() -> str:
    """The fields of metrics.json regexp reads and checks, as one table: field, type, what."""
    out = ["| field | type | what |", "|---|---|---|"]
    for name, field in RunRecord.model_fields.items():
        cell = (field.description or "").replace("|", "\\|")
        out.append(f"| `{name}` | {type_text(field.annotation)} | {cell} |")
    return "\n".join(out) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    """MkDocs hook: fill the reference pages' markers with the tables."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, reference_markdown())
    if RECORD_MARKER in markdown:
        markdown = markdown.replace(RECORD_MARKER, record_markdown())
    return markdown


if __name__ == "__main__":
    print(reference_markdown())
    print(record_markdown())
