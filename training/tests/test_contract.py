from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURE, ROOT, fixture_rows, mesp_bin

from mesp_training.contract import is_test, read_cluster_parquet, read_clusters, whole_invocations


def test_go_parquet_reads_back_with_pyarrow(clustered: Path) -> None:
    cs = read_clusters(clustered / "clusters.json")
    rows = fixture_rows()
    seen = 0
    for cl in cs["clusters"]:
        ids, counts = read_cluster_parquet(clustered / cl["parquet"])
        assert len(ids) == cl["size"]
        assert counts.shape == (len(ids), 1440)
        for fid, c in zip(ids, counts, strict=True):
            np.testing.assert_array_equal(c, rows[fid])
        seen += len(ids)
    assert seen == len(cs["members"])


def test_split_matches_go(clustered: Path) -> None:
    # Go clustered the train part only: Python's is_test must agree on all.
    members = json.loads((clustered / "clusters.json").read_text())["members"]
    assert members and not any(is_test(m["function"]) for m in members)
    test_ids = [f for f in fixture_rows() if is_test(f)]
    assert len(test_ids) == 21  # the Go split holds out 21 of the fixture's 100


def test_read_clusters_rejects_bad_file(tmp_path: Path) -> None:
    p = tmp_path / "clusters.json"
    p.write_text(json.dumps({"version": 1, "length": 3, "clusters": [{"id": 0, "centroid": [1, 2]}]}))
    with pytest.raises(ValueError, match="centroid length"):
        read_clusters(p)


def test_large_cluster_files_read_back_whole(tmp_path: Path) -> None:
    """Clusters past one Parquet row group (1,024 rows) read back whole."""
    rows_csv, out = tmp_path / "rows.csv.gz", tmp_path / "out"
    mesp = str(mesp_bin())
    make_rows = ["bench-kshape", "--data", str(FIXTURE), "--n", "2500", "--write", str(rows_csv)]
    subprocess.run([mesp, *make_rows], check=True, capture_output=True)
    cluster = ["cluster", "--data", str(rows_csv), "--part", "all", "--k", "2", "--max-iter", "3", "--restarts", "1"]
    subprocess.run([mesp, *cluster, "--out", str(out)], check=True, capture_output=True)
    want = fixture_rows(rows_csv)
    cs = read_clusters(out / "clusters.json")
    groups, seen = 0, 0
    for cl in cs["clusters"]:
        path = out / cl["parquet"]
        groups = max(groups, pq.ParquetFile(path).num_row_groups)
        ids, counts = read_cluster_parquet(path)
        assert len(ids) == cl["size"]
        for fid, c in zip(ids, counts, strict=True):
            np.testing.assert_array_equal(c, want[fid])
        seen += len(ids)
    assert seen == len(want) == 2500
    assert groups > 1


def test_manifest_writer_refuses_a_set_that_does_not_check(tmp_path: Path) -> None:
    """The shipped manifest passes; each broken copy is refused with a
    message, and manifest.json stays as it was."""
    import shutil

    from mesp_training.contract import read_manifest, write_manifest

    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models)
    good = read_manifest(models)
    assert good is not None
    write_manifest(models, good)
    before = (models / "manifest.json").read_bytes()

    def broken(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        m = json.loads(json.dumps(good))
        edit(m)
        return m

    cases: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (lambda m: m["dense"].update(sha256="0" * 64), "dense: sha256 does not match"),
        (lambda m: m["experts"][0].update(serve="maybe"), "serve 'maybe'"),
        (lambda m: m["experts"][1].update(cluster=99), "expert of cluster 99"),
        (lambda m: m["experts"][2]["p_invoke"].update(input_len=60), "p_invoke: input_len 60"),
        (lambda m: m["experts"][2]["p_invoke"].update(base="old-dense-p"), "continues 'old-dense-p'"),
        (lambda m: m["dense"]["p_invoke"].update(base="dense-p"), "cannot continue another"),
        (lambda m: m["prewarm"].update(threshold=1.5), "prewarm threshold 1.5"),
        (lambda m: m.update(routing={"soft_tau": 0, "min_weight": 0.1}), "routing soft_tau 0"),
        (lambda m: m.update(clusters_sha256="x"), "clusters_sha256"),
        (lambda m: m.update(horizon=30), "horizon 30"),
        (lambda m: m["trees"].update(day=True), "trees: trees that read the day (an older layout)"),
        (lambda m: m["quantiles"][0].update(dense_features="yes"), "quantiles[0] dense_features 'yes'"),
        (lambda m: m["trees"].update(scale=1.04), "the expected count's factor is gone"),
        (lambda m: m["expected"].update(share=1.5), "want a share in [0, 1]"),
        (lambda m: m["expected"].update(quantile=0.915), "of a quantile level the set serves"),
        (lambda m: m["quantiles"][0].pop("features_of"), "quantiles[0]: reads the dense p_invoke features"),
        (lambda m: m["silence"].update(min_gap=0), "silence min_gap 0"),
        (lambda m: m["silence"]["bins"][1].update(gap=1), "silence: bins need increasing"),
        (lambda m: m["silence"]["bins"][0].update(p=1.5), "silence: bins need increasing"),
        (lambda m: m["silence"]["past"][0].update(ratio=1), "silence past: classes need increasing ratios"),
        (lambda m: m["silence"]["past"][2]["bins"][0].update(p=-0.1), "silence past: classes need"),
        (lambda m: m["silence"].update(cap_from=-1), "silence cap_from -1"),
        (lambda m: m["sparse"].update(look=0), "want below_daily > 0, look >= 1 minute"),
        (lambda m: m["sparse"].update(steady="yes"), "steady true or false"),
        (lambda m: m["sparse"].update(cap=2), "cap none or a quantile"),
    ]
    for edit, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            write_manifest(models, broken(edit))
        assert (models / "manifest.json").read_bytes() == before


@pytest.mark.parametrize(
    ("level", "want"),
    [
        ([0, 0.49, 0.5, 0.51, 1.49, 2.5], [0, 0, 1, 1, 1, 3]),  # halves up, unlike numpy's round
        ([-0.7, -0.2, 1234.4999, 1234.5], [0, 0, 1234, 1235]),
    ],
)
def test_whole_invocations_rounds_as_go_does(level: list[float], want: list[float]) -> None:
    """The same cases as Go's TestWholeInvocations (forecast/set_test.go)."""
    assert whole_invocations(np.array(level, np.float32)).tolist() == want
