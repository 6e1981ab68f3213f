"""Shared fixtures. Tests run two at a time (pytest-xdist), so each uses one torch thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict | None = None, timeout: float = 300, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m factorkit ARGS`` in a subprocess and capture its output."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "factorkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )


@pytest.fixture
def cli():
    return run_cli
