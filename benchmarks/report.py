"""Markdown tables from benchmarks/results/results.jsonl (the newest row of each kind).

    python -m benchmarks.report [--since 2026-11-25T14:00:00Z]

RESULTS.md is written by hand around these tables: they are the figures,
RESULTS.md says what they mean.
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.run import results_path


def newest(rows: list[dict], *keys: str) -> list[dict]:
    latest: dict[tuple, dict] = {}
    for row in rows:
        latest[tuple(json.dumps(row.get(k)) for k in keys)] = row
    return list(latest.values())


def table(header: list[str], lines: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join("" if v is None else str(v) for v in line) + " |" for line in lines]
    return "\n".join(out)


def scale_table(rows: list[dict]) -> str:
    lines = []
    for r in sorted(
        [r for r in rows if r["section"] == "scale"], key=lambda r: (r["rows"], r["at"])
    ):
        engine, pandas = r.get("engine_only", {}), r.get("pandas", {})
        lines.append(
            [
                f"{r['rows'] / 1e6:.1f}M ({r['scale']})",
                f"{r['ingest']['wall_s']:.0f} s / {r['ingest']['peak_rss_mb'] / 1024:.2f} GB"
                if isinstance(r["ingest"], dict)
                else "-",
                f"{r['dbt_build']['wall_s']:.0f} s / {r['dbt_build']['peak_rss_mb'] / 1024:.2f} GB",
                f"{r['end_to_end_s']:.0f} s / {r['end_to_end_peak_mb'] / 1024:.2f} GB",
                f"{r['rows_per_s'] / 1e3:.0f}k",
                f"{engine['engine_s']:.0f} s / {engine['peak_rss_mb'] / 1024:.2f} GB"
                if engine
                else "-",
                f"{pandas['wall_s']:.0f} s / {pandas['peak_rss_mb'] / 1024:.2f} GB"
                if pandas
                else "-",
                r.get("speedup_end_to_end", "-"),
                r.get("memory_ratio_end_to_end", "-"),
                r.get("speedup_engine_only", "-"),
                r.get("memory_ratio_engine_only", "-"),
                f"{r['dbt_build']['loadavg_1m_start']}-{r['loadavg_1m_end']}",
                r["at"][11:16],
            ]
        )
    return table(
        [
            "rows (every run)",
            "ingest (wall / peak)",
            "dbt build",
            "end to end",
            "rows/s",
            "engine only",
            "pandas anchor",
            "speed-up e2e",
            "memory ratio e2e",
            "speed-up engine",
            "memory ratio engine",
            "load 1m",
            "UTC",
        ],
        lines,
    )


def profile_table(rows: list[dict]) -> str:
    lines = []
    for r in sorted(
        newest([r for r in rows if r.get("dbt_profile")], "section", "scale", "step"),
        key=lambda r: (r["section"], r.get("rows", 0)),
    ):
        p = r["dbt_profile"]
        build_s = r["dbt_build"]["wall_s"]
        top = ", ".join(f"{k} {v:.0f}" for k, v in list(p["per_model_s"].items())[:3])
        lines.append(
            [
                r["section"],
                r.get("step", ""),
                r["scale"],
                f"{build_s:.0f}",
                f"{build_s - p['dbt_elapsed_s']:.0f}",
                f"{p['models_s']:.0f}",
                f"{p['tests_s_summed_over_threads']:.0f} ({p['tests']})",
                top,
            ]
        )
    return table(
        [
            "section",
            "step",
            "scale",
            "dbt build wall s",
            "start-up + parse s",
            "models s (summed)",
            "tests s summed over 2 threads (count)",
            "slowest models s",
        ],
        lines,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--since", default="")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in results_path().read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["at"] >= args.since]
    print("## scale\n\n" + scale_table(rows) + "\n")
    print("## dbt profile\n\n" + profile_table(rows) + "\n")
    for section in ("refresh", "train", "inference", "layer", "generate"):
        for r in newest([r for r in rows if r["section"] == section], "scale", "step"):
            print(
                f"### {section} {r['scale']} {r.get('step', '')}\n\n```json\n{json.dumps(r)}\n```\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
