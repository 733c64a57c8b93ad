from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
FIXTURE = DATA / "azure2019-invitro-dev-sample100.csv.gz"
TINY = ROOT / "training" / "search-tiny.yaml"


def mesp_bin() -> Path:
    b = Path(os.environ.get("MESP_BIN", ROOT / "bin" / "mesp"))
    if not b.exists():
        pytest.fail(f"{b} missing: run `make build` first")
    return b


@pytest.fixture(scope="session")
def clustered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 100-row fixture's training part clustered by the Go CLI (K=3)."""
    out = tmp_path_factory.mktemp("clustered")
    subprocess.run([str(mesp_bin()), "cluster", "--data", str(FIXTURE), "--k", "3", "--out", str(out)],
                   check=True, capture_output=True)
    return out
