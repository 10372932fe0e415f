"""Training throughput, side by side: (A) the reference script's training code vs (B) regexp's path.

One invocation runs several rounds; each round starts a fresh process per measurement, in
alternating order (A,B then B,A, ...), so that the two see the same machine weather on shared
cores; each row also says how many cores other processes kept busy meanwhile (/proc/stat).
Reported per process: steady-state training samples/s (the median epoch after the first,
which traces the graphs); seconds per EMNIST epoch (112,800 samples, 80/20): the training
part scaled to 90,240 samples, the validation pass scaled to 22,560, plus what was measured
between them (callbacks, checkpoints, iterator set-up, stalls); CPU time per sample; peak
memory (VmHWM; ru_maxrss also shown). The headline is the median over rounds of the paired
ratio B/A.

(A) is the reference: `model.fit` on float32 numpy arrays scaled /255 (N, 28, 28, 1), one-hot
targets, categorical cross-entropy, `validation_split=0.2`, batch 250, Adam, the reference CNN
as a plain keras.Sequential, no regularizer, verbose=0.
(B) is regexp: `regexp.training.session.prepare_training` (the runner's own set-up: threads,
determinism, precision "auto", input streams, model) + `regexp.training.train.fit` (
regexp's checkpoint after every epoch), verbose=0.
(P) is (B) with an activity penalty (default: configs/elasticnet_activity.yaml, the costliest),
measured for the study extrapolation.

    python benchmarks/train_throughput.py                 # defaults: ~5 minutes on 2 cores
    python benchmarks/train_throughput.py --quick         # smoke check (~1.5 minutes)
    python benchmarks/train_throughput.py --rounds 7 --samples 40000 --epochs 5 --json out.json

Goal: median B/A >= 2.5 on this machine. A benchmark reports; it always exits 0 unless it
could not measure at all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import busy_cpu_seconds, peak_memory_mb

REPO = Path(__file__).resolve().parents[1]
EMNIST_TRAIN = 112_800  # EMNIST-balanced's training split: 90,240 train + 22,560 validation
STUDY_CONFIGS, STUDY_EPOCHS = 8, 25
STUDY_ACTIVITY_CONFIGS = 4  # l1_activity, l2_activity, l2_activity_extended, elasticnet_activity
BATCH, CLASSES, VALIDATION_SPLIT, SEED = 250, 47, 0.2, 0
GOAL = 2.5


# --------------------------------------------------------------------------- child side


class _Clock:
    """Per-epoch times, fed by the same Keras callback in A and B (appended after regexp's own
    callbacks in B, so that its epoch ends after the checkpoint is written)."""

    def __init__(self):
        self.train_seconds: list[float] = []  # epoch start -> validation start
        self.val_seconds: list[float] = []  # the validation pass
        self.epoch_seconds: list[float] = []  # previous epoch's end (or fit's start) -> this epoch's end
        self.epoch_cpu_seconds: list[float] = []  # CPU seconds of the whole process, all threads


def _timing_callback(clock: _Clock):
    import keras

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self._last, self._last_cpu = time.perf_counter(), time.process_time()
            self._start = self._val_start = None

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_test_begin(self, logs=None):
            if self._start is not None:
                self._val_start = time.perf_counter()
                clock.train_seconds.append(self._val_start - self._start)
                self._start = None

        def on_test_end(self, logs=None):
            if self._val_start is not None:
                clock.val_seconds.append(time.perf_counter() - self._val_start)
                self._val_start = None

        def on_epoch_end(self, epoch, logs=None):
            now, cpu = time.perf_counter(), time.process_time()
            clock.epoch_seconds.append(now - self._last)
            clock.epoch_cpu_seconds.append(cpu - self._last_cpu)
            self._last, self._last_cpu = now, cpu

    return Timer()


def _data(samples: int):
    from regexp.data import synthetic

    x_train, y_train, x_test, y_test = synthetic.make(CLASSES, train_size=samples, test_size=BATCH)
    return x_train, y_train, x_test, y_test


def _run_reference(samples: int, epochs: int, clock: _Clock) -> dict:
    """The reference script's training code, as it was written (plain Keras, numpy input)."""
    import keras
    from keras import layers

    x_train, y_train, _, _ = _data(samples)
    keras.utils.set_random_seed(SEED)
    x = (x_train.astype("float32") / 255.0).reshape(-1, 28, 28, 1)
    y = keras.utils.to_categorical(y_train, CLASSES)
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Dropout(0.25),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(), metrics=["accuracy"])
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=epochs,
        verbose=0,
        validation_split=VALIDATION_SPLIT,
        callbacks=[_timing_callback(clock)],
    )
    n_train = int(round(len(x) * (1 - VALIDATION_SPLIT)))
    return {
        "n_train": n_train,
        "n_val": len(x) - n_train,
        "precision": "float32",
        "final_loss": float(history.history["loss"][-1]),
        "final_val_accuracy": float(history.history["val_accuracy"][-1]),
    }


def _run_regexp(samples: int, epochs: int, clock: _Clock, penalty_config: str | None) -> dict:
    """regexp's path, set up the way regexp.training.session.train_run does."""
    from regexp.config import load_config, validate
    from regexp.data import Dataset
    from regexp.training import train
    from regexp.training.session import prepare_training

    x_train, y_train, x_test, y_test = _data(samples)
    if penalty_config:
        config = load_config(REPO / penalty_config)
    else:
        config = validate({"regularizer": {"type": "none"}}, "benchmark", "benchmark")
    config = config.model_copy(
        update={"training": config.training.model_copy(update={"epochs": epochs, "seed": SEED, "precision": "auto"})}
    )
    data = Dataset(x_train, y_train, x_test, y_test, CLASSES, "synthetic")
    model, splits, precision, reason, thread_counts, *_ = prepare_training(config, data)
    logs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="regexp-bench-") as tmp:
        train.fit(
            model,
            splits,
            epochs,
            checkpoint_dir=str(Path(tmp) / "checkpoint"),
            record_epoch=lambda epoch, row: logs.append(row),
            verbose=0,
            callbacks=[_timing_callback(clock)],
        )
    return {
        "n_train": splits.train_size,
        "n_val": splits.validation_size,
        "precision": f"{precision} ({reason})",
        "threads": thread_counts,
        "penalty": penalty_config,
        "final_loss": logs[-1].get("loss") if logs else None,
        "final_val_accuracy": logs[-1].get("val_accuracy") if logs else None,
    }


def child(kind: str, samples: int, epochs: int, penalty_config: str | None) -> None:
    import resource

    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    clock = _Clock()
    if kind == "A":
        info = _run_reference(samples, epochs, clock)
    else:
        info = _run_regexp(samples, epochs, clock, penalty_config if kind == "P" else None)
    n_train, n_val = info["n_train"], info["n_val"]
    # Epoch 1 traces the graphs: dropped. An EMNIST-sized epoch is the training part scaled to
    # 90,240 samples, the validation pass scaled to 22,560, plus what happens between them
    # (callbacks, checkpoints, iterator set-up, stalls) as measured.
    steady = list(zip(clock.train_seconds, clock.val_seconds, clock.epoch_seconds))[1:]
    emnist = [
        t * EMNIST_TRAIN * (1 - VALIDATION_SPLIT) / n_train
        + v * EMNIST_TRAIN * VALIDATION_SPLIT / n_val
        + max(0.0, e - t - v)
        for t, v, e in steady
    ]
    result = {
        "kind": kind,
        **info,
        "train_seconds": clock.train_seconds,
        "val_seconds": clock.val_seconds,
        "epoch_seconds": clock.epoch_seconds,
        "first_epoch_extra_seconds": (clock.epoch_seconds[0] - statistics.median(clock.epoch_seconds[1:]))
        if len(clock.epoch_seconds) > 1
        else None,
        "train_rate": n_train / statistics.median(t for t, _, _ in steady) if steady else None,
        "cpu_us_per_sample": 1e6 * statistics.median(clock.epoch_cpu_seconds[1:]) / (n_train + n_val)
        if len(clock.epoch_cpu_seconds) > 1
        else None,
        "emnist_epoch_seconds": statistics.median(emnist) if emnist else None,
        "emnist_epoch_seconds_mean": statistics.mean(emnist) if emnist else None,
        "maxrss_mb": peak_memory_mb(),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu_seconds": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
        "process_seconds": time.perf_counter() - started,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- parent side


def machine() -> dict:
    info = {"cpu": platform.processor() or "?", "flags": set()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and info["cpu"] in ("?", "x86_64", ""):
                    info["cpu"] = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not info["flags"]:
                    info["flags"] = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    wanted = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")
    info["cores"] = cores
    info["bf16_flags"] = {flag: flag in info["flags"] for flag in wanted}
    del info["flags"]
    try:
        info["load_1min"] = os.getloadavg()[0]
    except OSError:
        pass
    return info


def measure(kind: str, args) -> dict | None:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--samples",
        str(args.samples),
        "--epochs",
        str(args.epochs),
        "--penalty-config",
        args.penalty_config,
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0"}
    busy_before, started = busy_cpu_seconds(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    wall, busy_after = time.perf_counter() - started, busy_cpu_seconds()
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            if busy_before is not None and busy_after is not None:
                # Cores kept busy by other processes while this one ran (the cores are shared).
                result["other_load"] = max(0.0, (busy_after - busy_before - result["cpu_seconds"]) / wall)
            return result
    print(f"  {kind}: failed (exit {done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
    return None


def fmt_rate(value) -> str:
    return f"{value:8,.0f}" if value else f"{'-':>8}"


def fmt_num(value, width: int, decimals: int) -> str:
    return f"{value:{width}.{decimals}f}" if value else f"{'-':>{width}}"


def fmt_duration(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds (default 5)")
    parser.add_argument(
        "--samples",
        type=int,
        default=24_000,
        help="synthetic training samples per process, before the 80/20 split (default 24,000)",
    )
    parser.add_argument("--epochs", type=int, default=5, help="epochs per process; the first is excluded (default 5)")
    parser.add_argument(
        "--penalty-config",
        default="configs/elasticnet_activity.yaml",
        help="activity-penalty config measured with B for the study estimate",
    )
    parser.add_argument(
        "--penalty-rounds",
        type=int,
        default=3,
        help="how many rounds also measure the penalty config (default 3; 0: skip)",
    )
    parser.add_argument(
        "--quiet-load",
        type=float,
        default=0.5,
        help="rounds where other processes kept fewer cores busy than this during both A and B "
        "are the comparable ones (default 0.5)",
    )
    parser.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    parser.add_argument("--quick", action="store_true", help="smoke check: 2 rounds, 7,500 samples, 3 epochs")
    parser.add_argument("--child", choices=["A", "B", "P"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.samples, args.epochs = 2, 7_500, 3
    if args.epochs < 3:
        parser.error("--epochs must be at least 3: the first is excluded and rates need two more")
    if args.child:
        child(args.child, args.samples, args.epochs, args.penalty_config)
        return 0
    penalty_rounds = min(args.penalty_rounds, args.rounds)

    m = machine()
    print(
        f"machine: {m['cpu']}, {m['cores']} cores; "
        + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in m["bf16_flags"].items())
        + (f"; load {m['load_1min']:.2f} at start" if "load_1min" in m else "")
    )
    print(
        f"python {platform.python_version()}; {args.rounds} rounds x (A, B{', P' if penalty_rounds else ''}), "
        f"{args.samples:,} samples ({1 - VALIDATION_SPLIT:.0%} train), {args.epochs} epochs per process "
        f"(first excluded), batch {BATCH}"
    )
    print(
        "A = reference script (fit on float32 numpy, one-hot, validation_split); "
        "B = regexp (make_splits + build/compile_model + train.fit, precision auto); "
        f"P = B with {args.penalty_config}"
    )
    print()
    header = (
        f"{'round':>5} {'order':>5} | {'A train/s':>9} {'B train/s':>9} {'B/A':>5} | "
        f"{'A s/ep':>6} {'B s/ep':>6} {'A/B':>5} | {'P train/s':>9} {'P s/ep':>6} | "
        f"{'other load A/B/P':>16} | {'MB A/B/P':>14}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for r in range(args.rounds):
        order = ["A", "B"] if r % 2 == 0 else ["B", "A"]
        if r < penalty_rounds:
            order.append("P")
        got = {kind: measure(kind, args) for kind in order}
        rows.append(got)
        a, b, p = (got.get(k) or {} for k in "ABP")
        ratio = b["train_rate"] / a["train_rate"] if a.get("train_rate") and b.get("train_rate") else None
        eratio = (
            a["emnist_epoch_seconds"] / b["emnist_epoch_seconds"]
            if a.get("emnist_epoch_seconds") and b.get("emnist_epoch_seconds")
            else None
        )
        got["ratio"], got["epoch_ratio"] = ratio, eratio
        measured = [x for k, x in zip("ABP", (a, b, p)) if k in order]
        loads = "/".join(f"{x['other_load']:.1f}" if "other_load" in x else "-" for x in measured)
        memory = "/".join(f"{x['maxrss_mb']:.0f}" if "maxrss_mb" in x else "-" for x in measured)
        print(
            f"{r + 1:>5} {''.join(order[:2]):>5} | {fmt_rate(a.get('train_rate')):>9} "
            f"{fmt_rate(b.get('train_rate')):>9} {fmt_num(ratio, 5, 2)} | "
            f"{fmt_num(a.get('emnist_epoch_seconds'), 6, 1)} {fmt_num(b.get('emnist_epoch_seconds'), 6, 1)} "
            f"{fmt_num(eratio, 5, 2)} | {fmt_rate(p.get('train_rate')):>9} {fmt_num(p.get('emnist_epoch_seconds'), 6, 1)} | "
            f"{loads:>16} | {memory:>14}",
            flush=True,
        )

    med = statistics.median
    if not any(g["ratio"] for g in rows):
        print("\nno paired measurement succeeded")
        return 1

    def load(m):
        return m.get("other_load", 0.0) if m else 0.0

    # Rounds in which other processes kept less than --quiet-load cores busy during each measurement
    # compared: the cores are shared, and one busy core halves a 2-thread job's speed.
    quiet = [g for g in rows if g["ratio"] and max(load(g.get("A")), load(g.get("B"))) < args.quiet_load]
    basis = quiet or [g for g in rows if g["ratio"]]
    basis_name = (
        f"the {len(quiet)} round(s) with other load < {args.quiet_load} cores"
        if quiet
        else f"all rounds (none had other load below {args.quiet_load} cores)"
    )

    def values(kind, key, among=None):
        return [g[kind][key] for g in (among or basis) if g.get(kind) and g[kind].get(key) is not None]

    def spread(xs):
        return f"{med(xs):.2f} (min {min(xs):.2f}, max {max(xs):.2f}, {len(xs)} rounds)"

    first = next(g[k] for g in rows for k in ("B", "A") if g.get(k))
    print()
    print(
        f"tensorflow {first['tensorflow']}, keras {first['keras']}; "
        f"B precision: {next((g['B']['precision'] for g in rows if g.get('B')), '?')}; "
        f"B threads: {next((g['B']['threads'] for g in rows if g.get('B')), '?')}"
    )
    print(
        "other load: cores kept busy by other processes during each measurement (2 = the whole machine); "
        "s/ep: seconds per EMNIST epoch"
    )
    all_ratios = [g["ratio"] for g in rows if g["ratio"]]
    all_eratios = [g["epoch_ratio"] for g in rows if g["epoch_ratio"]]
    ratios = [g["ratio"] for g in basis]
    eratios = [g["epoch_ratio"] for g in basis if g["epoch_ratio"]]
    print(f"median of paired ratios B/A, training samples/s, all rounds: {spread(all_ratios)}")
    print(f"median of paired ratios A/B, seconds per EMNIST epoch, all rounds: {spread(all_eratios)}")
    if quiet and len(quiet) < len(all_ratios):
        print(f"the same over {basis_name}: B/A training {spread(ratios)}; A/B per EMNIST epoch {spread(eratios)}")
    headline = med(ratios)
    print(f"goal: B/A >= {GOAL} ({basis_name}): {'met' if headline >= GOAL else 'NOT met'} ({headline:.2f})")
    mratios = [
        g["A"]["emnist_epoch_seconds_mean"] / g["B"]["emnist_epoch_seconds_mean"]
        for g in basis
        if g["A"].get("emnist_epoch_seconds_mean") and g["B"].get("emnist_epoch_seconds_mean")
    ]
    if mratios:
        print(
            f"A/B per EMNIST epoch from each process's mean epoch instead of its median (stalls count): {spread(mratios)}"
        )
    print(f"below: medians over {basis_name}")
    print(
        f"train samples/s: A {med(values('A', 'train_rate')):,.0f}, B {med(values('B', 'train_rate')):,.0f}"
        + (f", P {med(values('P', 'train_rate')):,.0f}" if values("P", "train_rate") else "")
    )
    cpu = {k: med(values(k, "cpu_us_per_sample")) for k in "ABP" if values(k, "cpu_us_per_sample")}
    if "A" in cpu and "B" in cpu:
        print(
            "CPU time per sample, all threads, whole steady epoch (less sensitive to other processes than wall "
            "time): " + ", ".join(f"{k} {v:.0f} us" for k, v in cpu.items()) + f"; A/B {cpu['A'] / cpu['B']:.2f}"
        )
    a_ep, b_ep = med(values("A", "emnist_epoch_seconds")), med(values("B", "emnist_epoch_seconds"))
    # P against the B of its own round, with P's load also below the threshold where possible.
    p_rounds = [
        g
        for g in basis
        if g.get("P") and g["P"].get("emnist_epoch_seconds") and (not quiet or load(g["P"]) < args.quiet_load)
    ]
    p_factors = [g["P"]["emnist_epoch_seconds"] / g["B"]["emnist_epoch_seconds"] for g in p_rounds]
    print(
        f"seconds per EMNIST epoch (112,800 samples, 80/20): A {a_ep:.1f} s, B {b_ep:.1f} s"
        + (
            f", P {med(values('P', 'emnist_epoch_seconds', p_rounds)):.1f} s (P/B in the same round: "
            f"{spread(p_factors)})"
            if p_factors
            else ""
        )
    )
    print(
        f"peak memory (VmHWM, median per process, at {args.samples:,} samples): "
        + ", ".join(f"{k} {med(values(k, 'maxrss_mb', rows)):.0f} MB" for k in "ABP" if values(k, "maxrss_mb", rows))
        + "; ru_maxrss: "
        + ", ".join(
            f"{k} {med(values(k, 'ru_maxrss_mb', rows)):.0f} MB" for k in "ABP" if values(k, "ru_maxrss_mb", rows)
        )
    )

    # The study: 8 configs x 25 epochs, each run paying its first epoch's tracing once.
    def tracing(kind):
        extra = values(kind, "first_epoch_extra_seconds", rows)
        return max(0.0, med(extra)) if extra else 0.0

    print(
        f"first-epoch extra (tracing, graph building): A {tracing('A'):.1f} s, B {tracing('B'):.1f} s"
        + (f", P {tracing('P'):.1f} s" if values("P", "first_epoch_extra_seconds", rows) else "")
    )
    plain = STUDY_CONFIGS - STUDY_ACTIVITY_CONFIGS
    a_total = STUDY_CONFIGS * (STUDY_EPOCHS * a_ep + tracing("A"))
    print(
        f"full study ({STUDY_CONFIGS} configs x {STUDY_EPOCHS} EMNIST-sized epochs), extrapolated "
        "(start-up, data loading and test evaluation excluded; kernel/bias penalties at the no-penalty rate):"
    )
    if p_factors:
        factor = med(p_factors)
        b_total = plain * (STUDY_EPOCHS * b_ep + tracing("B")) + STUDY_ACTIVITY_CONFIGS * (
            STUDY_EPOCHS * b_ep * factor + tracing("P")
        )
        a_penalised = plain * (STUDY_EPOCHS * a_ep + tracing("A")) + STUDY_ACTIVITY_CONFIGS * (
            STUDY_EPOCHS * a_ep * factor + tracing("A")
        )
        print(
            f"  B: {fmt_duration(b_total)} ({plain} configs at B's rate, {STUDY_ACTIVITY_CONFIGS} activity-penalty "
            f"configs x{factor:.2f} slower, as P ({Path(args.penalty_config).stem}, the costliest: an upper bound))"
        )
        print(
            f"  A: {fmt_duration(a_total)} at its no-penalty rate (a lower bound); "
            f"{fmt_duration(a_penalised)} if activity penalties slow it as much as they slow B (not measured for A)"
        )
    else:
        b_total = STUDY_CONFIGS * (STUDY_EPOCHS * b_ep + tracing("B"))
        print(f"  B: {fmt_duration(b_total)} (all at B's no-penalty rate: activity penalties cost more, a lower bound)")
        print(f"  A: {fmt_duration(a_total)} (all at A's no-penalty rate: a lower bound)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": m, "args": vars(args) | {"json": str(args.json)}, "rounds": rows}, indent=1, default=str
            )
        )
        print(f"measurements written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
