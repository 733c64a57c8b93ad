"""The numpy router (mesp_training.routing) routes windows in batches as it
routes them one by one; Go agreement is router/calibrate_test.go's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT, fixture_rows

from mesp_training.invocation_train import LOOP_END, LOOP_START, loop_routes, operating_cost
from mesp_training.routing import Router

CLUSTERS = json.loads((ROOT / "models" / "clusters.json").read_text())


@pytest.mark.parametrize("n", [240, 1080, 1439, 1440])
def test_batch_routes_equal_single_routes_on_real_rows(n: int) -> None:
    router = Router(CLUSTERS)
    days = np.stack(list(fixture_rows().values())).astype(float)
    got = router.route_many(days[:, -n:], chunk=7)  # chunks that do not divide the batch
    for i, day in enumerate(days):
        cluster, distance, ood = router.route(day[-n:])
        assert (got.cluster[i], got.ood[i]) == (cluster, ood)
        assert got.distance[i] == pytest.approx(distance, abs=1e-9)  # FFT round-off
    # Not everything is one cluster or out of distribution.
    assert len(set(got.served_cluster().tolist())) > 2


def test_flat_and_bad_windows() -> None:
    router = Router(CLUSTERS)
    flat = router.route_many(np.zeros((2, 600)))
    assert flat.ood.all() and (flat.served_cluster() == -1).all()
    with pytest.raises(ValueError, match="window of 1441 minutes"):
        router.route_many(np.ones((1, 1441)))


def test_loop_routes_route_each_minutes_history() -> None:
    router = Router(CLUSTERS)
    days = np.stack(list(fixture_rows().values()))[:12].astype(float)
    routes = loop_routes(router, days)
    assert routes.shape == (12, LOOP_END - LOOP_START + 1)
    for k in (0, 123, LOOP_END - LOOP_START):
        t = LOOP_START - 1 + k  # minute m = t + 1 is decided from minutes 1..t
        assert (routes[:, k] == router.route_many(days[:, :t]).served_cluster()).all()


def test_operating_cost_by_hand() -> None:
    invoked = np.array([True, False, False, True])
    p1 = np.array([0.5, 0.2, 0.01, 0.0])
    # threshold 0.1: warm in minutes 1 and 2; minute 4's invocation is cold,
    # minute 2 is idle at 0.1 / 0.9 cold starts.
    assert operating_cost(p1, invoked, 0.1) == pytest.approx(1 + 0.1 / 0.9)
