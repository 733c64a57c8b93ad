from __future__ import annotations

import contextlib
import gzip
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
# ../shared/data beside the repository when it is there, else the copy in data/
DATA = ROOT.parent / "shared" / "data" if (ROOT.parent / "shared" / "data").is_dir() else ROOT / "data"
FIXTURE = DATA / "azure2019-invitro-dev-sample100.csv.gz"
TINY = ROOT / "training" / "search-tiny.yaml"


def assert_whole_invocations(answered: np.ndarray, level: np.ndarray) -> None:
    """The server's answers are the level rounded to whole invocations;
    either neighbour only where the level lies within float32's reach of a
    half (the server blends in float32 models' answers)."""
    from mesp_training.contract import whole_invocations

    near_half = np.abs(level - np.floor(level) - 0.5) <= 1e-4 * np.maximum(1.0, level)
    off = (answered != whole_invocations(level)) & ~(near_half & (np.abs(answered - level) <= 0.5 + 1e-4))
    assert not off.any(), f"{off.sum()} minutes differ, e.g. {answered[off][:5]} against levels {level[off][:5]}"


def fixture_rows(path: Path = FIXTURE) -> dict[str, np.ndarray]:
    """A gzipped Azure-layout file's rows (the fixture's by default) by
    HashFunction, counts as float32, file order (tests compare against the Go
    loader's output, so they read the file directly)."""
    rows = {}
    with gzip.open(path, "rt") as f:
        next(f)
        for line in f:
            cols = line.rstrip("\n").split(",")
            rows[cols[2]] = np.array(cols[4:], dtype=np.float32)
    return rows


def mesp_bin() -> Path:
    b = Path(os.environ.get("MESP_BIN", ROOT / "bin" / "mesp")).resolve()
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


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def shipped_models() -> Path:
    return Path(os.environ.get("MESP_TEST_MODELS", ROOT / "models"))


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    """`mesp serve` on loopback over a copy of the shipped models; yields host:port."""
    models = tmp_path / "models"
    shutil.copytree(shipped_models(), models, ignore=shutil.ignore_patterns(".work"))
    with serving(models) as addr:
        yield addr


@contextlib.contextmanager
def serving(models: Path) -> Iterator[str]:
    """`mesp serve` on loopback over models; yields host:port."""
    proc = subprocess.Popen([str(mesp_bin()), "serve", "--models", str(models), "--addr", "127.0.0.1:0",
                             "--admin-token", "t0k"], stderr=subprocess.PIPE, text=True)
    addr = None
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"listening on http://(\S+)", line)
        if m:
            addr = m.group(1)
            break
    if addr is None:
        proc.kill()
        pytest.fail("mesp serve did not start")
    try:
        yield addr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
