"""The tables of docs/results.md, from `make eval`'s docs/eval/eval.json.

    python scripts/results_tables.py            # print them
    python scripts/results_tables.py --write    # rewrite docs/results.md's tables (make eval does)
    python scripts/results_tables.py --check    # fail if docs/results.md differs (make test does)

The page keeps its prose; the block between the markers below is this
script's output, so that no figure of the tables can drift from the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- begin tables: python scripts/results_tables.py --write (from docs/eval/eval.json) -->"
END = "<!-- end tables -->"

FORECASTERS = [
    ("mesp", "`mesp` (`forecast`: the expected count)"),
    ("mesp_median", "`mesp_median` (`median`: whole invocations)"),
    ("dense", "`dense` (one model on all data)"),
    ("peer_lightgbm", "`peer_lightgbm` (LightGBM count peer, L1)"),
    ("peer_lightgbm_whole", "`peer_lightgbm_whole` (the peer rounded)"),
    ("peer_lightgbm_mean", "`peer_lightgbm_mean` (the peer, Tweedie)"),
    ("naive", "`naive`"),
    ("mean60", "`mean60`"),
]
BANDS = {"0-1000": "under 1,000", "1000-10000": "1,000-10,000", "10000-100000": "10,000-100,000",
         ">=100000": "100,000 and more"}


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(head), _row(["---"] * len(head)), *(_row(r) for r in rows)]


def accuracy(d: dict[str, Any]) -> list[str]:
    rows = []
    for name, label in FORECASTERS:
        m = d["forecasters"].get(name)
        if m is None:
            continue
        rows.append([label, f"{m['mae']:.3f}", f"{m['rmse']:.2f}", f"{m['wape']:.4f}", f"{m['mase_mean']:.3f}",
                     f"{m['mase_median']:.3f}", f"{m['hour_wape']:.4f}", f"{m['hour_bias']:.3f}"])
    return _table(["forecaster", "MAE", "RMSE", "WAPE", "MASE mean", "MASE median", "hour WAPE", "hour bias"], rows)


def by_band(d: dict[str, Any]) -> list[str]:
    names = ["mesp", "mesp_median", "dense", "peer_lightgbm", "peer_lightgbm_mean", "mean60"]
    head = ["daily total", "functions", *(f"{n} WAPE / hour WAPE / hour bias" for n in names)]
    rows = []
    for b in d["by_daily_total"]:
        s = b["scores"]
        rows.append([BANDS.get(b["band"], b["band"]), str(b["functions"]),
                     *(f"{s[n]['wape']:.3f} / {s[n]['hour_wape']:.3f} / {s[n]['hour_bias']:.3f}" for n in names if n in s)])
    return _table(head, rows)


def hour_bias(d: dict[str, Any]) -> list[str]:
    names = ["mesp", "mesp_median", "peer_lightgbm", "peer_lightgbm_mean", "mean60"]

    def cell(m: dict[str, Any] | None) -> str:
        if m is None:
            return ""
        ci = m.get("hour_bias_ci95")
        return f"{m['hour_bias']:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")

    rows = [["all", str(d["rows"]), *(cell(d["forecasters"].get(n)) for n in names)]]
    for b in d["by_daily_total"]:
        rows.append([BANDS.get(b["band"], b["band"]), str(b["functions"]), *(cell(b["scores"].get(n)) for n in names)])
    return _table(["daily total", "functions", *(f"{n} hour bias (95% interval)" for n in names)], rows)


def by_behaviour(d: dict[str, Any]) -> list[str]:
    names = ["mesp", "mesp_median", "dense", "peer_lightgbm"]
    rows = []
    for b in d["by_behaviour"]:
        s = b["scores"]
        rows.append([b["behaviour"], str(b["functions"]),
                     *(f"{s[n]['wape']:.4f} / {s[n]['hour_wape']:.4f}" for n in names if n in s)])
    return _table(["behaviour", "functions", *(f"{n} WAPE / hour WAPE" for n in names)], rows)


def per_cluster(d: dict[str, Any]) -> list[str]:
    names = ["mesp_median", "dense", "peer_lightgbm", "naive"]
    rows = []
    for c in d["per_cluster"]:
        label = "OOD (dense)" if c["cluster"] < 0 else str(c["cluster"])
        rows.append([label, str(c["functions"]), *(f"{c[n]['wape']:.4f}" for n in names if n in c)])
    return _table(["routed cluster", "functions", *(f"{n} WAPE" for n in names)], rows)


def provisioning(d: dict[str, Any]) -> list[str]:
    p = d["provisioning"]
    ref = p["comparison"]["reference_keepalive"]
    at = p["comparison"]["at_reference_idle"]

    def row(label: str, m: dict[str, Any]) -> list[str]:
        return [label, f"{m['cold_starts']:,}", f"{m['idle_minutes']:,}",
                f"{m['cold_starts'] / ref['cold_starts']:.3f}x", f"{m['idle_minutes'] / ref['idle_minutes']:.3f}x"]

    rows = [row(f"`keepalive` {k['window']} min", k) for k in p["keepalive"] if k["window"] in (1, 5, 10, 30, 60)]
    rows.append(row("`hybrid_histogram` (Shahrad et al.)", p["hybrid_histogram"]))
    default = p["mesp_minutely_default"]
    rows.append(row(f"**`mesp_minutely_default`** (threshold {default['threshold']:g})", default))
    for name in ("mesp_minutely", "dense_minutely", "peer_lightgbm_minutely", "mesp_hourly"):
        if name in at:
            rows.append(row(f"`{name}` at keepalive10's idle (threshold {at[name]['threshold']:g})", at[name]))
    return _table(["policy", "cold starts", "idle instance-minutes", "cold starts / keepalive10",
                   "idle / keepalive10"], rows)


def silent(d: dict[str, Any]) -> list[str]:
    names = ["mesp_minutely_default", "dense_minutely_default", "keepalive10", "hybrid_histogram"]
    rows = []
    for s in d["provisioning"]["silent"]:
        pol = s["policies"]
        rows.append([f"last {s['silent_hours']} h", str(s["functions"]),
                     *(f"{100 * pol[n]['idle_minutes'] / s['minutes']:.2f}%" for n in names if n in pol)])
    return _table(["silenced", "functions", *(f"{n}: minutes warm" for n in names)], rows)


def platform_mix(d: dict[str, Any]) -> list[str]:
    mix = d["provisioning"]["platform_mix"]
    ref = mix["comparison"]["reference_keepalive"]
    rows = []
    m = mix["mesp_minutely_default"]
    rows.append([f"`mesp_minutely_default` (threshold {m['threshold']:g})", f"{m['cold_starts']:,}",
                 f"{m['idle_minutes']:,}", f"{m['cold_starts'] / ref['cold_starts']:.3f}x",
                 f"{m['idle_minutes'] / ref['idle_minutes']:.3f}x"])
    for name, a in mix["comparison"]["at_reference_idle"].items():
        if "cold_starts_interpolated" in a:
            rows.append([f"`{name}` at keepalive10's idle (threshold {a['threshold']:g})", f"{a['cold_starts']:,}",
                         f"{a['idle_minutes']:,}", f"{a['cold_starts_over_reference']:.3f}x",
                         f"{a['idle_over_reference']:.3f}x"])
    rows.append(["`keepalive` 10 min", f"{ref['cold_starts']:,}", f"{ref['idle_minutes']:,}", "1.000x", "1.000x"])
    return _table(["policy (active and silent copies)", "cold starts", "idle instance-minutes",
                   "cold starts / keepalive10", "idle / keepalive10"], rows)


def scaling(d: dict[str, Any]) -> list[str]:
    sc = d.get("scaling")
    if not sc:
        return ["(no `scaling` section in this eval.json)"]

    def row(label: str, o: dict[str, Any]) -> list[str]:
        share = o["deficit"] / max(1.0, o["invocations"])
        return [label, f"{o['deficit']:,.0f}", f"{share:.4f}", f"{o['replica_minutes']:,}", f"{o['under_minutes']:,}",
                f"{o['over_replica_minutes']:,}"]

    rows = [row(f"`reactive`, window {r['window']} min", r) for r in sc["reactive"]]
    for name in ("mesp", "mesp_floored", "dense", "peer_lightgbm_quantile"):
        for pt in sc.get(name) or []:
            if pt.get("interpolated_level") and pt.get("window") is not None:
                continue  # the levels between served ones: unheld only, where the budget is read
            lead = f", lead {pt['lead']} min" if pt.get("lead") else ""
            held = f", held {pt['window']} min (HPA window)" if pt.get("window") is not None else ""
            if pt.get("floor"):
                held += f", floor {pt['floor']}"
            what = pt.get("output") or f"q{pt['quantile']:g}" + (" (interpolated)" if pt.get("interpolated_level") else "")
            rows.append(row(f"`{name}` {what}{lead}{held}", pt))
    head = ["policy", "deficit", "deficit / invocations", "replica-minutes", "under-minutes", "over-replica-minutes"]
    out = [f"{sc['functions']} of {sc['all_functions']} functions need 2 replicas or more at some minute; "
           f"target {sc['target']:g} invocations per replica-minute.", "", *_table(head, rows)]
    at = sc.get("at_reactive_window5")
    if at:
        how = "interpolated between its two points around that cost" if at["interpolated"] else "its best point within it"
        out += ["", f"At reactive scaling's cost with the 5-minute window ({at['replica_minutes']:,} replica-minutes), "
                    f"MESP's lowest deficit is {at['mesp_deficit']:,.0f} ({how}): "
                    f"{at['mesp_over_reactive']:.3f}x reactive's {at['reactive_deficit']:,.0f}"
                    + (f"; the LightGBM quantile peer's, read the same way, {at['peer_deficit']:,.0f}"
                       if at.get("peer_deficit") else "")
                    + (f"; MESP with its demand floored at the last minute's count (trigger metadata `floor: lastMinute`), "
                       f"{at['mesp_floored_deficit']:,.0f} ({at['mesp_floored_over_reactive']:.3f}x)"
                       if at.get("mesp_floored_deficit") else "") + "."]
    cov = sc.get("coverage") or {}
    if len(cov) > 1 or sc.get("peer_coverage"):
        peer = sc.get("peer_coverage") or {}
        levels = sorted({*cov, *peer}, key=float)
        out += ["", "Coverage on those functions: the share of minutes whose count is at most the quantile forecast "
                    "made a minute before.", "",
                *_table(["quantile", "mesp", "peer_lightgbm_quantile"],
                        [[q, f"{cov[q]:.4f}" if q in cov else "", f"{peer[q]:.4f}" if q in peer else ""]
                         for q in levels])]
    return out


def tables(d: dict[str, Any]) -> str:
    parts = [
        ("Next-hour accuracy, 6 origins per function (EVALUATION.md section 1)", accuracy(d)),
        ("By daily total (WAPE of each minute, the hour's WAPE and bias)", by_band(d)),
        ("The hour's bias, with its 95% interval over bootstrap resamples of the functions", hour_bias(d)),
        ("Timer-like functions and the rest", by_behaviour(d)),
        ("By routed cluster", per_cluster(d)),
        ("Pre-warming, minutes 1081..1440 (EVALUATION.md section 2)", provisioning(d)),
        ("Silent functions: share of their minutes kept warm", silent(d)),
        ("The platform mix: every function and one silent copy of it", platform_mix(d)),
        ("Replicas for busy functions, minutes 1081..1440 (EVALUATION.md section 4)", scaling(d)),
    ]
    out = [BEGIN, ""]
    for title, lines in parts:
        out += [f"#### {title}", "", *lines, ""]
    out.append(END)
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", type=Path, default=ROOT / "docs" / "eval" / "eval.json")
    ap.add_argument("--page", type=Path, default=ROOT / "docs" / "results.md")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the page's tables")
    mode.add_argument("--check", action="store_true", help="exit 1 if the page's tables differ")
    args = ap.parse_args()
    block = tables(json.loads(args.eval.read_text()))
    if not (args.write or args.check):
        print(block)
        return 0
    page = args.page.read_text()
    if BEGIN not in page or END not in page:
        print(f"{args.page}: no tables block ({BEGIN!r} ... {END!r})", file=sys.stderr)
        return 1
    head, rest = page.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    new = head + block + tail
    if args.check:
        if new != page:
            print(f"{args.page}: its tables differ from {args.eval}; run python scripts/results_tables.py --write",
                  file=sys.stderr)
            return 1
        return 0
    args.page.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
