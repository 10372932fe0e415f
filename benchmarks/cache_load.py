"""Loading EMNIST-sized uint8 arrays (131,600 x 28 x 28) from the compressed .npz data cache.

Writes one cache entry with `regexp.data.cache.save_arrays` (as the EMNIST loader does after
its first decode) into a temporary cache folder, then times `regexp.data.cache.load_arrays`
in fresh processes. Two contents, since compression depends on them: EMNIST-like sparse
strokes (most pixels 0, as in EMNIST) and the noisy synthetic data (a pessimistic case).
Falls back to np.savez_compressed/np.load if regexp.data.cache is missing.

    python benchmarks/cache_load.py             # 7 loads per content
    python benchmarks/cache_load.py --runs 15

Goal: median load < 1 s. Reports; always exits 0 unless loading fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import peak_memory_mb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TRAIN, TEST = 112_800, 18_800  # EMNIST-balanced: 131,600 images in all
GOAL_S = 1.0
KEY = {"dataset": "benchmark", "content": None}


def arrays(content: str) -> tuple[np.ndarray, ...]:
    from regexp.data import synthetic

    x_train, y_train, x_test, y_test = synthetic.make(47, train_size=TRAIN, test_size=TEST)
    if content == "sparse":
        # Keep only the bright strokes, as in EMNIST where about 80% of the pixels are 0.
        x_train = np.where(x_train >= 150, x_train, 0).astype(np.uint8)
        x_test = np.where(x_test >= 150, x_test, 0).astype(np.uint8)
    return x_train, y_train, x_test, y_test


def child(content: str) -> None:
    started = time.perf_counter()
    try:
        from regexp.data import cache
    except ImportError:
        cache = None
    imported = time.perf_counter()
    if cache is not None:
        loaded = cache.load_arrays(f"bench-{content}", {**KEY, "content": content})
        if loaded is None:
            raise SystemExit("cache miss: the entry written by the parent was not found")
    else:
        with np.load(Path(os.environ["REGEXP_CACHE"]) / f"bench-{content}.npz") as entry:
            loaded = tuple(entry[name] for name in ("x_train", "y_train", "x_test", "y_test"))
    done = time.perf_counter()

    print(
        json.dumps(
            {
                "load_s": done - imported,
                "import_s": imported - started,
                "shapes": [list(a.shape) for a in loaded],
                "dtypes": [str(a.dtype) for a in loaded],
                "maxrss_mb": peak_memory_mb(),
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh-process loads per content (default 7)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    try:
        from regexp.data import cache
    except ImportError:
        cache = None
    print(
        f"loader: {'regexp.data.cache.load_arrays' if cache else 'np.load (regexp.data.cache not found)'}; "
        f"{TRAIN + TEST:,} images 28x28 uint8 ({(TRAIN + TEST) * 784 / 1e6:.0f} MB raw) + labels"
    )
    with tempfile.TemporaryDirectory(prefix="regexp-cache-bench-") as folder:
        env = {**os.environ, "REGEXP_CACHE": folder}
        os.environ["REGEXP_CACHE"] = folder
        medians = {}
        for content in ("sparse", "noisy"):
            data = arrays(content)
            zeros = float((data[0] == 0).mean())
            t0 = time.perf_counter()
            if cache is not None:
                path = cache.save_arrays(f"bench-{content}", {**KEY, "content": content}, data)
            else:
                path = Path(folder) / f"bench-{content}.npz"
                np.savez_compressed(
                    path,
                    x_train=data[0],
                    y_train=data[1].astype(np.uint8),
                    x_test=data[2],
                    y_test=data[3].astype(np.uint8),
                )
            write_s = time.perf_counter() - t0
            size_mb = path.stat().st_size / 1e6
            loads = []
            for _ in range(args.runs):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", content], capture_output=True, text=True, cwd=REPO, env=env
                )
                if out.returncode != 0:
                    print(f"{content}: load failed:\n{out.stderr[-2000:]}")
                    return 1
                loads.append(json.loads(out.stdout.strip().splitlines()[-1]))
            times = [r["load_s"] for r in loads]
            medians[content] = statistics.median(times)
            print(
                f"{content:>6} ({zeros:.0%} zero pixels): entry {size_mb:.1f} MB (written in {write_s:.1f} s); "
                f"load median {medians[content]:.3f} s (min {min(times):.3f}, max {max(times):.3f}, {len(times)} fresh processes); "
                f"import {statistics.median(r['import_s'] for r in loads):.3f} s; "
                f"peak memory {statistics.median(r['maxrss_mb'] for r in loads):.0f} MB; "
                f"arrays {loads[0]['shapes']} {sorted(set(loads[0]['dtypes']))}"
            )
    worst = max(medians.values())
    print(
        f"goal: load < {GOAL_S} s: {'met' if worst < GOAL_S else 'NOT met'} (slowest content's median: {worst:.3f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
