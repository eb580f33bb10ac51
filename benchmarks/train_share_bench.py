"""`apy-runway train` before and after sharing fits (issue 24 item 3), in the same run.

    python -m benchmarks.train_share_bench HOME --previous CHECKOUT [--repeat 1]

HOME holds the default data already built (generate, ingest, build). CHECKOUT
is a checkout of the previous code (e.g. `git worktree add --detach DIR <commit>`).
Each side runs `train --no-build --no-report` in its own process with its own
code first on PYTHONPATH, previous then current, alternating when repeated;
prints wall seconds, the ratio current / previous and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed_train(code: Path, home: str, run_id: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(code)}
    argv = [sys.executable, "-m", "apy_runway.cli", "--home", home, "train"]
    argv += ["--no-build", "--no-report", "--run-id", run_id]
    started = time.perf_counter()
    subprocess.run(argv, cwd=code, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("home")
    parser.add_argument("--previous", required=True, type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    rows = []
    stamp = time.strftime("%H%M%S")
    for i in range(args.repeat):
        previous = timed_train(args.previous.resolve(), args.home, f"bench-prev-{stamp}-{i}")
        current = timed_train(REPO, args.home, f"bench-cur-{stamp}-{i}")
        rows.append({"previous_s": round(previous, 1), "current_s": round(current, 1)})
        print(json.dumps(rows[-1]), flush=True)
    previous = sum(r["previous_s"] for r in rows)
    current = sum(r["current_s"] for r in rows)
    print(
        json.dumps(
            {
                "runs": rows,
                "ratio_current_over_previous": round(current / previous, 3),
                "load_before": [round(x, 1) for x in load_before],
                "load_after": [round(x, 1) for x in os.getloadavg()],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
