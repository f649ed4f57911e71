"""A/B comparison of pgwerk source trees (e.g. before and after a patch), interleaved.

    python -m benchmarks.compare --tree base=. --tree fix=../pgwerk-fix \\
        --only burn_down_c8,latency --rounds 3 [--quick]

(``../pgwerk-fix`` being, say, a second checkout made with ``git worktree add``.)

Each round runs ``python -m benchmarks.run --src TREE --only ... --repeats 1`` once per
tree, alternating the order every round, so that both trees meet the same moments of a
noisy machine. Prints per tree the median (min-max) of each number, and the median of the
per-round ratio against the first tree.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._common import ROOT, fmt, summary, table_text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH, repeatable")
    parser.add_argument("--only", required=True, help="measures, as for benchmarks.run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the smaller --quick sizes")
    parser.add_argument("--dsn")
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args(argv)
    trees = [t.split("=", 1) for t in args.tree]
    data: dict[str, dict[str, list[float]]] = {name: {} for name, _ in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = trees if r % 2 == 0 else trees[::-1]
            for name, path in order:
                out = Path(tmp) / f"{name}-{r}.json"
                cmd = [sys.executable, "-m", "benchmarks.run", "--src", path, "--only", args.only,
                       "--repeats", "1", "--no-write", "--json", str(out)]
                if args.quick:
                    cmd.append("--quick")
                if args.dsn:
                    cmd += ["--dsn", args.dsn]
                print(f"round {r + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
                subprocess.run(cmd, cwd=str(ROOT), check=True, stdout=subprocess.DEVNULL)
                results = json.loads(out.read_text())["results"]
                for measure, runs in results.items():
                    for key, value in runs[0].items():
                        data[name].setdefault(f"{measure}.{key}", []).append(value)
    first = trees[0][0]
    header = ["number"] + [f"{name} median (min-max)" for name, _ in trees] + \
        [f"{name}/{first} (median)" for name, _ in trees[1:]]
    lines = []
    for key in data[first]:
        line = [key]
        for name, _ in trees:
            med, lo, hi = summary(data[name].get(key, []))
            line.append(f"{fmt(med)} ({fmt(lo)}-{fmt(hi)})")
        for name, _ in trees[1:]:
            pairs = zip(data[name].get(key, []), data[first][key], strict=False)
            ratios = [a / b for a, b in pairs if a == a and b == b and b]
            line.append(f"{fmt(summary(ratios)[0], 2)}x")
        lines.append(line)
    print(table_text(header, lines))
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
