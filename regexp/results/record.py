"""The run record: what one run's metrics.json holds, as a typed model written and read through it.

`RunRecord` checks every field a reader of results uses (types, finite numbers, accuracies in
[0, 1], bounded lengths, text that is valid Unicode), so that code reading a record never
meets a value it cannot handle: a record that fails a check makes its run folder damaged,
named in one line ('<field>: <value> is not <what it must be>').

Keys the model does not name are kept as they are and not checked (`model_extra`): records
written by newer versions, or fields only some runs have, stay readable. A field becomes
checked by adding it to `RunRecord` with one of the annotated types below (`Fraction`,
`Count`, `Text`, ...); every field is optional unless the status says otherwise
(`_REQUIRED`), so results roots written before the field existed stay readable.

No TensorFlow here: `regexp plot`, `report` and `export` read records with it.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from regexp.config import penalty_problem
from regexp.config.names import MAX_NAME_LENGTH, run_name_problem


class RunStatus(str, enum.Enum):
    """How a run ended, as its record says. A str: `status == "completed"` holds for old code too."""

    COMPLETED = "completed"
    DIVERGED = "diverged"
    FAILED = "failed"
    PRUNED = "pruned"  # a tuning trial its pruner stopped early (regexp tune): not completed, not failed

    def __str__(self) -> str:
        return self.value


STATUSES = tuple(status.value for status in RunStatus)

# Bounds on what a record may hold: far above what a run writes, low enough that no reader
# (a legend, a table cell, a t-test) is slowed down or overflows on them.
MAX_LABEL_LENGTH = 1000  # group, data description, a version, a layer name
MAX_ERROR_LENGTH = 10_000  # the one-line error of a failed run
MAX_TRACEBACK_LENGTH = 200_000
MAX_EPOCHS = 1_000_000
MAX_PARAMS = 1_000_000_000  # also bounds the weights regexp reads back from model.weights.h5
MAX_MAGNITUDE = 1e15  # a loss, a rate, seconds: anything larger is not a measurement
MAX_SEED = 2**63


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value: Any, limit: int) -> bool:
    if not isinstance(value, str) or len(value) > limit:
        return False
    try:
        value.encode("utf-8")  # a lone surrogate ("\ud800" in JSON) cannot be written anywhere
    except UnicodeEncodeError:
        return False
    return True


def _checked(expected: str, valid: Callable[[Any], bool]) -> BeforeValidator:
    """A validator that lets None and values `valid` accepts through, and says `expected` otherwise."""

    def check(value: Any) -> Any:
        if value is not None and not valid(value):
            raise ValueError(expected)
        return value

    return BeforeValidator(check)


def text(limit: int = MAX_LABEL_LENGTH) -> BeforeValidator:
    return _checked(f"text of at most {limit} characters", lambda v: _is_text(v, limit))


Fraction = Annotated[float | None, _checked("a number from 0 to 1", lambda v: _is_number(v) and 0 <= v <= 1)]
Measure = Annotated[
    float | None,
    _checked(f"a finite number of at most {MAX_MAGNITUDE:g}", lambda v: _is_number(v) and abs(v) <= MAX_MAGNITUDE),
]
Count = Annotated[
    int | None, _checked(f"a whole number from 0 to {MAX_EPOCHS}", lambda v: _is_int(v) and 0 <= v <= MAX_EPOCHS)
]
Epoch = Annotated[
    int | None, _checked(f"a whole number from 1 to {MAX_EPOCHS}", lambda v: _is_int(v) and 1 <= v <= MAX_EPOCHS)
]
Label = Annotated[str | None, text()]
_Key = Annotated[str, text(MAX_NAME_LENGTH)]


def _is_mapping_of(valid: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, dict) and all(_is_text(k, MAX_NAME_LENGTH) and valid(x) for k, x in v.items())


def _is_plain(value: Any) -> bool:
    """A JSON scalar a table cell can show: text of a label's length, a finite number, a bool, null."""
    return value is None or isinstance(value, bool) or _is_number(value) or _is_text(value, MAX_LABEL_LENGTH)


class _Part(BaseModel):
    """A nested object of the record: unknown keys kept, unchecked."""

    model_config = ConfigDict(extra="allow")


class Sparsity(_Part):
    overall: Fraction = None
    threshold: Annotated[float | None, _checked("a number from 0 to 1", lambda v: _is_number(v) and 0 <= v <= 1)] = None
    layers: Annotated[
        dict[_Key, Fraction] | None,
        _checked("an object of layer: number from 0 to 1", _is_mapping_of(lambda x: _is_number(x) and 0 <= x <= 1)),
    ] = None


class DataSummary(_Part):
    description: Label = None
    num_classes: Annotated[int | None, _checked("a whole number", lambda v: _is_int(v) and 0 < v <= MAX_PARAMS)] = None
    train: Annotated[int | None, _checked("a whole number", lambda v: _is_int(v) and 0 <= v <= MAX_PARAMS)] = None
    validation: Annotated[int | None, _checked("a whole number", lambda v: _is_int(v) and 0 <= v <= MAX_PARAMS)] = None
    test: Annotated[int | None, _checked("a whole number", lambda v: _is_int(v) and 0 <= v <= MAX_PARAMS)] = None


class TrainingPath(_Part):
    precision: Label = None


class Tuning(_Part):
    """What a run is to a tuning study (regexp tune): one of its trials, or a confirmation run."""

    role: Literal["trial", "confirmation"]
    study: Label
    trial: Annotated[int | None, _checked("a whole number", lambda v: _is_int(v) and 0 <= v <= MAX_PARAMS)] = None


class RunRecord(BaseModel):
    """One run's metrics.json. `run` and `status` are required; the rest as `_REQUIRED` says."""

    model_config = ConfigDict(extra="allow")

    run: str = Field(description="The run's name: its folder under the results root.")
    status: RunStatus = Field(
        description="How the run ended: completed, diverged, failed or pruned (a tuning trial stopped early)."
    )
    group: Label = Field(
        None, description="The config the run belongs to (its seeds share it); summary and report group by it."
    )
    group_hash: Label = Field(
        None,
        description="Digest of the resolved config without its seed: runs with the same one are seeds of one config.",
    )
    config_hash: Label = Field(
        None, description="Digest of the resolved config: a completed run with the same digest is not trained again."
    )
    seed: Annotated[int | None, _checked("a whole number", lambda v: _is_int(v) and abs(v) < MAX_SEED)] = Field(
        None, description="training.seed: it sets the initial weights, dropout and the order of the batches."
    )
    error: Annotated[str | None, text(MAX_ERROR_LENGTH)] = Field(
        None, description="Why a failed run failed, in one line."
    )
    traceback: Annotated[str | None, text(MAX_TRACEBACK_LENGTH)] = Field(
        None, description="A failed run's Python traceback, for a bug report."
    )
    epochs_run: Count = Field(None, description="Epochs trained, those before a resume included.")
    epochs_planned: Count = Field(None, description="training.epochs as the config asked.")
    best_epoch: Epoch = Field(
        None, description="The epoch (1-based) with the highest validation accuracy; the first of equals."
    )
    diverged_epoch: Epoch = Field(None, description="The epoch whose loss became non-finite, for a diverged run.")
    resumed_from_epoch: Count = Field(
        None, description="The epoch whose checkpoint the run resumed from, if it was interrupted."
    )
    test_accuracy: Fraction = Field(
        None, description="Accuracy on the test split with the final weights: what the report compares."
    )
    best_val_accuracy: Fraction = Field(
        None, description="The highest validation accuracy over the epochs (what regexp tune maximizes)."
    )
    best_epoch_test_accuracy: Fraction = Field(None, description="Test accuracy with the best epoch's weights.")
    test_loss: Measure = Field(
        None, description="Loss on the test split with the final weights (cross-entropy plus the penalties)."
    )
    best_epoch_test_loss: Measure = Field(None, description="Test loss with the best epoch's weights.")
    wall_time_s: Annotated[
        float | None, _checked("a number of seconds", lambda v: _is_number(v) and 0 <= v <= MAX_MAGNITUDE)
    ] = Field(None, description="Seconds the run took in the process that finished it, set-up and evaluation included.")
    train_samples_per_s: Measure = Field(
        None, description="Median training samples per second over the epochs after the first."
    )
    epoch_seconds: Annotated[
        list[float] | None,
        _checked(
            f"a list of at most {MAX_EPOCHS} numbers of seconds",
            lambda v: (
                isinstance(v, list)
                and len(v) <= MAX_EPOCHS
                and all(_is_number(x) and 0 <= x <= MAX_MAGNITUDE for x in v)
            ),
        ),
    ] = Field(
        None,
        description="Seconds of each epoch this process trained, its training and validation passes, in "
        "order (the first also traces the training step, unless `training_path.compiled` says it was reused).",
    )
    param_count: Annotated[
        int | None, _checked(f"a whole number up to {MAX_PARAMS}", lambda v: _is_int(v) and 0 <= v <= MAX_PARAMS)
    ] = Field(None, description="The model's number of parameters.")
    finished_at: Label = Field(None, description="When the run ended (UTC, ISO 8601).")
    sparsity: Annotated[
        Sparsity | None,
        _checked("an object with a number 'overall'", lambda v: isinstance(v, dict) and (not v or "overall" in v)),
    ] = Field(
        None, description="Fraction of near-zero kernel weights (|w| under `threshold`): `overall` and per layer."
    )
    regularizer: Annotated[list[Any] | None, _checked("a list", lambda v: isinstance(v, list))] = Field(
        None, description="The penalties as resolved, one entry per regularizer (type, targets, strengths, layers)."
    )
    data: Annotated[
        DataSummary | None, _checked("an object with a text 'description'", lambda v: isinstance(v, dict))
    ] = Field(
        None, description="The data as trained: its description, class count and train / validation / test sizes."
    )
    training_path: Annotated[TrainingPath | None, _checked("an object", lambda v: isinstance(v, dict))] = Field(
        None, description="How it trained: precision, threads, input pipeline, fast path, and each layer's path."
    )
    tuning: Annotated[
        Tuning | None,
        _checked(
            "an object with role 'trial' or 'confirmation' and a text 'study'",
            lambda v: (
                isinstance(v, dict)
                and v.get("role") in ("trial", "confirmation")
                and _is_text(v.get("study"), MAX_LABEL_LENGTH)
            ),
        ),
    ] = Field(
        None, description="For regexp tune: its role (trial or confirmation), study, trial number and the values tried."
    )
    # Described, not checked: readers take them as they find them (each checks what it uses).
    model: Any = Field(
        None, description="The model: its builder, the builder's file and SHA-256, its arguments, its kernel layers."
    )
    penalties: Any = Field(None, description="The penalties as placed: per layer, each target's type and strength.")
    activity_penalty: Any = Field(None, description="How an activity penalty is scaled (`semantics`).")
    host: Any = Field(None, description="The machine it ran on: host name, CPU, cores, memory, GPUs.")
    regexp_source: Any = Field(
        None, description="regexp's source it ran from: the git commit and whether it was dirty."
    )
    data_source: Any = Field(None, description="Where the data came from: the files read and their SHA-256.")
    versions: Annotated[
        dict[str, Any] | None, _checked("an object of name: version text", _is_mapping_of(_is_plain))
    ] = Field(None, description="The versions of regexp, Python, TensorFlow, Keras and numpy it ran with.")
    activations: Annotated[
        dict[str, Any] | None,
        _checked(
            "an object of layer: {statistic: number}",
            _is_mapping_of(_is_mapping_of(lambda x: x is None or _is_number(x))),
        ),
    ] = Field(
        None, description="Per layer, statistics of its outputs over the test set (mean, fraction of zeros, ...)."
    )

    @property
    def is_evaluated(self) -> bool:
        """Completed with a test accuracy: a run the statistics, summary and figures count."""
        return self.status is RunStatus.COMPLETED and self.test_accuracy is not None

    @field_validator("run", mode="before")
    @classmethod
    def _run_is_a_run_name(cls, value: Any) -> Any:
        if not isinstance(value, str) or run_name_problem(value):
            raise ValueError("a run name")
        return value

    @field_validator("status", mode="before")
    @classmethod
    def _status_is_known(cls, value: Any) -> Any:
        if value not in STATUSES:
            raise ValueError(f"one of {', '.join(STATUSES)}")
        return value

    @field_validator("regularizer")
    @classmethod
    def _entries_validate_as_config(cls, entries: list[Any] | None) -> list[Any] | None:
        for index, entry in enumerate(entries or []):
            problem = penalty_problem(entry)  # the config's own rules, on the entry as it was resolved
            if problem:
                field, _, what = problem.partition(": ")
                raise ValueError(f"{'' if field == '(top level)' else field}@{index}: {what}")
            for key in _recorded_penalty_keys(entry):
                if key not in entry:
                    raise ValueError(f"{key}@{index}: missing (a run records each penalty in full)")
        return entries


def _recorded_penalty_keys(entry: dict) -> tuple[str, ...]:
    """The keys of a regularizer entry that readers use, as a run records them (the resolved form)."""
    if entry.get("type", "none") == "none":
        return ()
    return ("type", "targets") + (("l1", "l2") if entry["type"] == "elasticnet" else ("lambda",))


# Fields a record of that status must have (not null).
_REQUIRED = {RunStatus.COMPLETED: ("test_accuracy", "test_loss")}


class RecordError(ValueError):
    """A record that does not validate; the message is '<field>: <what is wrong>'."""


def _show(value: Any) -> str:
    try:
        shown = repr(value) if isinstance(value, str) else json.dumps(value)
    except (TypeError, ValueError):
        shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def parse_record(data: Any) -> RunRecord:
    """`data` (metrics.json as parsed) as a RunRecord, or RecordError naming the first field that fails."""
    if not isinstance(data, dict):
        raise RecordError(f"holds a JSON {type(data).__name__}, not an object")
    for field in ("run", "status"):
        if data.get(field) is None:
            raise RecordError(f"{field}: missing")
    try:
        record = RunRecord.model_validate(data)
    except ValidationError as exc:
        raise RecordError(_first_problem(exc)) from None
    for field in _REQUIRED.get(record.status, ()):
        if getattr(record, field) is None:
            raise RecordError(f"{field}: missing (the run is {record.status.value})")
    return record


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    cause = (error.get("ctx") or {}).get("error")
    expected = str(cause) if cause is not None else error["msg"].lower()
    if where == "regularizer" and "@" in expected:  # an entry's own problem: regularizer[i].field: what
        field, _, rest = expected.partition("@")
        index, _, what = rest.partition(": ")
        return f"regularizer[{index}]{'.' + field if field else ''}: {what}"
    return f"{where}: {_show(error['input'])} is not {expected}"


# Every key a run record names, as metrics.json spells it: what regexp may write at its top level.
RECORD_KEYS = frozenset(field.alias or name for name, field in RunRecord.model_fields.items())
