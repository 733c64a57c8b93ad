"""Probe a running MESP server from outside with the patterns a user tries
first, and print what it answers against what came: timers of several
periods, sizes and phases, two schedules on one function, jitter, a timer
over a Poisson background, steps 30 to 120 minutes back, a burst, a daily
cycle, and silences after activity.

    bin/mesp serve --addr 127.0.0.1:8080 &
    python scripts/probe_behaviours.py --url http://127.0.0.1:8080

Each line: the next hour's calls that came and that `/v1/prewarm`'s
expected count forecast, minutes warm, pulse minutes warm, and who
answered. The patterns are drawn with fixed seeds, so a rerun prints the
same; they are not the behaviour suite's (forecast/behaviour_test.go),
which holds the rules the shipped set must keep.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from typing import Any

import numpy as np

DAY, HOUR = 1440, 60


def prewarm(url: str, history: np.ndarray) -> dict[str, Any]:
    body = json.dumps({"functions": [{"id": "probe", "counts": [float(v) for v in history]}]}).encode()
    req = urllib.request.Request(url + "/v1/prewarm", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        answer: dict[str, Any] = json.load(r)
    first: dict[str, Any] = answer["functions"][0]
    return first


def timer(rng: np.random.Generator, period: int, size: float, phase: int, jitter: int = 0) -> np.ndarray:
    d = np.zeros(DAY + HOUR)
    for p in range(phase, len(d), period):
        q = p + (int(rng.integers(-jitter, jitter + 1)) if jitter else 0)
        if 0 <= q < len(d):
            d[q] += size
    return d


def report(url: str, name: str, d: np.ndarray, n: int = DAY) -> None:
    history, nxt = d[:n], d[n:n + HOUR]
    r = prewarm(url, history)
    f, warm = np.array(r["forecast"]), np.array(r["warm"])
    pulses = np.flatnonzero(nxt)
    t = r.get("timer")
    period = f"{t['period']}" + (f"/{t['cycle']}" if t.get("cycle") else "") if t else "-"
    off = f"{f.sum() / nxt.sum() - 1:+.0%}" if nxt.sum() else "   -"
    print(f"{name:42s} came {nxt.sum():7.0f} forecast {f.sum():8.1f} ({off:>5s})  warm {warm.sum():2d}/60"
          f"  pulses warm {warm[pulses].sum()}/{len(pulses)}  timer {period:>7s}  {r.get('model')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    url = ap.parse_args().url
    rng = np.random.default_rng(42)
    print("timers")
    for period in (3, 30, 45, 90, 240):
        for size in (1, 20):
            for phase in (0, period // 2):
                report(url, f"every {period} min, {size} a pulse, phase {phase}", timer(rng, period, size, phase))
    report(url, "every 15 min, 50 a pulse, 1 min jitter", timer(rng, 15, 50, 3, 1))
    report(url, "every 10 min, 5 a pulse, over 0.5/min", timer(rng, 10, 5, 2) + rng.poisson(0.5, DAY + HOUR))
    print("two schedules")
    for short, long, small, large in ((5, 60, 3, 100), (10, 60, 2, 50), (15, 120, 10, 300), (6, 60, 1, 30)):
        for phase in (0, 7):
            d = timer(rng, short, small, phase % short) + timer(rng, long, large, phase)
            report(url, f"every {short} ({small}) and {long} ({large}), phase {phase}", d)
    print("steps, bursts, a daily cycle")
    rng = np.random.default_rng(7)  # the draws docs/results.md quotes
    for before, after, back in ((1, 10, 30), (10, 1, 30), (50, 5, 30), (5, 50, 30), (10, 1, 60), (10, 1, 120)):
        d = np.concatenate([rng.poisson(before, DAY - back), rng.poisson(after, back + HOUR)]).astype(float)
        report(url, f"{before} -> {after} a minute, {back} min back", d)
    burst = rng.poisson(0.5, DAY + HOUR).astype(float)
    burst[DAY - 10] = 500
    report(url, "0.5/min, a burst of 500 10 min back", burst)
    t = np.arange(DAY + HOUR)
    report(url, "daily cycle 5..35 a minute", rng.poisson(20 + 15 * np.sin(2 * np.pi * (t - 300) / DAY)).astype(float))
    print("silence after activity")
    for rate in (0.2, 2, 50):
        for silent in (30, 60, 240):
            d = np.concatenate([rng.poisson(rate, DAY - silent), np.zeros(silent + HOUR)]).astype(float)
            report(url, f"{rate}/min, silent for the last {silent} min", d)


if __name__ == "__main__":
    main()
