"""docs/results.md's tables are scripts/results_tables.py's rendering of
docs/eval/eval.json: a figure edited by hand, or an eval run whose tables
were not rewritten, fails here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "results_tables.py"


def test_results_page_tables_are_the_eval_json() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_changed_figure_fails_the_check(tmp_path: Path) -> None:
    doc = json.loads((ROOT / "docs" / "eval" / "eval.json").read_text())
    doc["forecasters"]["mesp"]["wape"] += 0.01
    changed = tmp_path / "eval.json"
    changed.write_text(json.dumps(doc))
    done = subprocess.run([sys.executable, str(SCRIPT), "--check", "--eval", str(changed)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "differ" in done.stderr
