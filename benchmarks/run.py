"""Every benchmark behind benchmarks/README.md's tables, one after another (`make bench`).

    python benchmarks/run.py [--only titanic,house-prices,tabular-tasks,adult,large,digits,digits-split,
                              digit-recipes,pretrained,budget]

Each runs in its own process (never two at once: on 2 cores two multi-threaded jobs slow
each other down several-fold) and prints its own table; a failing one is reported and the
rest still run. On the 2-core development machine the whole set takes about 2.5 hours:
Titanic splits ~15 min, House Prices ~10, the tabular proxies ~10, Adult ~8, the 300,000-row
competition ~7, each digits run ~18 (13 for the pipeline, 5 for two seeds of a reference
CNN beside it), the digit recipes ~30, the pretrained comparison ~25 a split of each of its
three sets, the budget checks ~20.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "titanic": ["titanic_splits.py", "--splits", "4"],
    "house-prices": ["house_prices.py", "--splits", "3"],
    "tabular-tasks": ["tabular_tasks.py", "--splits", "2"],
    "adult": ["tabular_tasks.py", "--tasks", "adult-auc", "--splits", "3"],
    "large": ["large_tabular.py"],
    "digits": ["digits.py", "--reference", "2"],
    "digits-split": ["digits.py", "--split-seed", "1", "--reference", "2"],
    "digit-recipes": [
        "digit_recipes.py",
        *("--variant", "{label_smoothing: 0.1}"),
        *("--variant", "{width: 48, epochs: 30}"),
    ],
    "pretrained": ["pretrained.py", "--splits", "3"],
    "budget": ["budget.py", "--results", str(HERE / "results" / "budget.jsonl")],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS))
    args = ap.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"error: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        script, *extra = BENCHMARKS[name]
        print(f"\n## {name}: python benchmarks/{script} {' '.join(extra)}".rstrip(), flush=True)
        start = time.perf_counter()
        if subprocess.run([sys.executable, str(HERE / script), *extra]).returncode != 0:
            failed.append(name)
        print(f"({name}: {(time.perf_counter() - start) / 60:.1f} min)", flush=True)
    if failed:
        print(f"error: benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
