"""How often the hourly health rule cries wolf, and what it still catches, on a
built home (its warehouse and latest training run), with the rule's own code
(inference.monitoring), the pooled comparison beside the nearest-day one.

- false alarms: leave one day out. Each day of the reference window (the dbt
  mart drift_reference_features) is scored against a reference built from
  the other days: a day of the window is by definition one the model's
  reference holds, so a `degraded` verdict on it is a false alarm.
- detection: the same held-out days with one of the model's 3 most important
  numeric features shifted by k reference stds (every scored row).
- what the per-day quantiles cost the Lambda's cold start: the latest run's
  spec + arrays parsed and loaded (json.loads + read_arrays + portable.load,
  best of 20), as shipped and with the per-day quantiles taken out (the anchor).

python -m benchmarks.drift_calibration HOME [--every N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

from inference import contracts, monitoring
from inference.model import artefact, portable

SHIFTS = (0.25, 0.5, 1.0)


def load(home: Path) -> tuple[dict, list[str], list[str], np.ndarray]:
    spec = json.loads((home / "runs" / "latest" / contracts.PORTABLE_SPEC_FILE).read_text())
    columns = json.loads((home / "data" / "exports" / "feature_columns.json").read_text())
    numeric = list(columns["numeric"])
    con = duckdb.connect(str(home / "data" / "warehouse.duckdb"), read_only=True)
    con.execute("set TimeZone = 'UTC'")
    frame = con.execute("select * from drift_reference_features").df()
    con.close()
    values = {n: frame[n].to_numpy(dtype=np.float64, na_value=np.nan) for n in numeric}
    days = frame["snapshot_date"].to_numpy(dtype="datetime64[D]").astype(str)
    important = monitoring.important_features(spec["monitoring"]["importance"])
    return values, numeric, important, days


def verdicts(reference: dict, live: dict, important: list[str]) -> dict[str, tuple[bool, int]]:
    """{rule: (degraded, drifted count)} for the nearest-day rule (`score`)
    and the pooled W/std as measured (`pooled_score`)."""
    entries = monitoring.drift(reference, live, {})
    out = {}
    for rule, key in (("nearest day, net of sampling", "score"), ("pooled", "pooled_score")):
        marked = [
            {**e, "drifted": e["drifted"] if e[key] is None else e[key] > 0.1} for e in entries
        ]
        reasons, details = monitoring.drift_verdict(marked, important)
        out[rule] = (bool(reasons), len(details["drifted_features"]))
    return out


def load_cost(run_dir: Path, repeat: int = 20) -> dict:
    """Cold-load time and bytes of the run's portable model, as shipped and
    without the drift reference's per-day quantiles."""
    spec = (run_dir / contracts.PORTABLE_SPEC_FILE).read_bytes()
    arrays = (run_dir / contracts.PORTABLE_ARRAYS_FILE).read_bytes()
    document = json.loads(spec)
    for ref in document["monitoring"]["reference"]["features"].values():
        ref.pop("daily", None)
    kept = {
        k: v
        for k, v in portable.read_arrays(arrays).items()
        if not k.startswith(contracts.DRIFT_DAILY_ARRAY_PREFIX)
    }
    anchor = ((json.dumps(document, indent=1) + "\n").encode(), artefact.npz_bytes(kept))

    def best(spec_bytes: bytes, arrays_bytes: bytes) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            portable.load(json.loads(spec_bytes), portable.read_arrays(arrays_bytes))
            times.append(time.perf_counter() - start)
        return min(times) * 1000

    shipped_ms, anchor_ms = best(spec, arrays), best(*anchor)
    return {
        "load shipped (spec + arrays)": f"{shipped_ms:.1f} ms, {len(spec):,} + {len(arrays):,} B",
        "load without per-day quantiles": (
            f"{anchor_ms:.1f} ms, {len(anchor[0]):,} + {len(anchor[1]):,} B"
        ),
        "load ratio": round(shipped_ms / anchor_ms, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--every", type=int, default=1, help="hold out every Nth day")
    args = parser.parse_args(argv)
    values, numeric, important, days = load(args.home)
    top = [f for f in important if f in numeric][:3]
    window = sorted(set(days.tolist()))
    alarms: dict[str, list] = {}
    caught: dict[tuple[str, float], list] = {}
    for i, day in enumerate(window[:: args.every]):
        rest = days != day
        reference = monitoring.reference(
            {n: v[rest] for n, v in values.items()}, {}, None, None, "", "", days=days[rest]
        )
        live = {n: v[~rest] for n, v in values.items()}
        for rule, (degraded, count) in verdicts(reference, live, important).items():
            alarms.setdefault(rule, []).append((degraded, count))
        for shift in SHIFTS:
            for feature in top:
                std = reference["features"][feature]["std"]
                moved = {**live, feature: live[feature] + shift * std}
                for rule, (degraded, _) in verdicts(reference, moved, important).items():
                    caught.setdefault((rule, shift), []).append(degraded)
        print(f"[{i + 1}/{len(window[:: args.every])}] held out {day}", file=sys.stderr)
    rows = {
        "home": str(args.home),
        "window": f"{window[0]}..{window[-1]}",
        "rows": len(days),
        "pools_per_day": round(len(days) / len(window), 1),
        "shifted_features": top,
    }
    for rule, found in alarms.items():
        rows[f"false alarms ({rule})"] = (
            f"{sum(d for d, _ in found)}/{len(found)} days degraded; drifted features per day "
            f"median {int(np.median([c for _, c in found]))}, max {max(c for _, c in found)}"
        )
    for (rule, shift), found in caught.items():
        rows[f"caught +{shift} std ({rule})"] = f"{sum(found)}/{len(found)}"
    run_dir = args.home / "runs" / "latest"
    spec = json.loads((run_dir / contracts.PORTABLE_SPEC_FILE).read_text())
    if any("daily" in r for r in spec["monitoring"]["reference"]["features"].values()):
        rows |= load_cost(run_dir)
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
