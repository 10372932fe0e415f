"""Results: what a results root holds and how it is written, read and shared.

`scan_runs(root)` is the entry for readers: every run folder read strictly, the damaged ones
named. Writers use the folder layout (`run_dir`, `staging_dir`, `promote`), the atomic writes and
the run locks. Modules: `store` (layout, file names, atomic writes, strict reading, damage),
`locks` (one writer per run and per summary), `flatten` (a resolved config as dotted keys).
"""

from regexp.results.flatten import flatten
from regexp.results.locks import RunLock, RunLocked, summary_lock
from regexp.results.store import (
    CHECKPOINT,
    CONFIG,
    DAMAGED,
    HISTORY,
    METRICS,
    MODEL_SUMMARY,
    WEIGHTS,
    DamagedRun,
    SavedRun,
    completed_hash,
    damaged_runs,
    ensure_writable_root,
    history_csv,
    is_run_folder,
    load_run,
    promote,
    read_history,
    read_metrics,
    remove_temporary_files,
    run_dir,
    scan_runs,
    set_aside_damaged,
    staging_dir,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "DAMAGED",
    "HISTORY",
    "METRICS",
    "MODEL_SUMMARY",
    "DamagedRun",
    "RunLock",
    "RunLocked",
    "SavedRun",
    "WEIGHTS",
    "completed_hash",
    "damaged_runs",
    "ensure_writable_root",
    "flatten",
    "history_csv",
    "is_run_folder",
    "load_run",
    "promote",
    "read_history",
    "read_metrics",
    "remove_temporary_files",
    "run_dir",
    "scan_runs",
    "set_aside_damaged",
    "staging_dir",
    "summary_lock",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
