"""Shared fixtures: where the real recordings live, and skipping cleanly when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from evstream.paths import REPO, data_root  # noqa: E402,F401

DATA = data_root().resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data`` (or ``$EVSTREAM_DATA``); tests that need it skip when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"real recordings not found at {DATA} (set EVSTREAM_DATA to the shared/data folder)")
    return DATA


def data_file(rel: str) -> Path:
    """Path to one file under the shared data folder, or skip the test with a clear message."""
    path = DATA / rel
    if not path.exists():
        pytest.skip(f"real recording {rel} not found under {DATA} (set EVSTREAM_DATA)")
    return path


@pytest.fixture
def shared_file():
    return data_file


@pytest.fixture
def tiny_model():
    """``tiny_model(arch, seed=0, **overrides)``: a small untrained model (tests/tiny.py holds the configs)."""
    from tiny import tiny_model as build

    return build


def _skip_reason(report) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2])
    return str(lr or "")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say loudly how many tests did not run because the real recordings were not found."""
    missing = [r for r in terminalreporter.stats.get("skipped", []) if "EVSTREAM_DATA" in _skip_reason(r)]
    if not missing:
        return
    tr = terminalreporter
    tr.section("REAL DATA NOT FOUND", sep="!", red=True, bold=True)
    tr.line(f"{len(missing)} tests were SKIPPED: the real recordings are not at {DATA}.", red=True, bold=True)
    tr.line("Set EVSTREAM_DATA to the shared/data folder (or check out next to ../shared) to run them.",
            red=True, bold=True)


def calibrated_mst(seed: int = 0, batch: int = 32):
    """A small random MST whose activations are in the QCFS range: BN running statistics from a random
    batch, then each λ set to the 99th percentile of its input, as a calibrated model would have.
    Returns the model (eval mode) and that batch."""
    import torch
    from tiny import tiny_model

    m = tiny_model("mst", seed)
    x = torch.rand(batch, 4, 16, 16)
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(x)  # BN running statistics
    m.eval()
    with torch.no_grad():
        def set_lambda(mod, args):  # a pre-hook must return None, or its value replaces the input
            mod.threshold.copy_(torch.quantile(args[0].flatten()[:100000].clamp(min=0), 0.99) + 1e-3)

        handles = [a.register_forward_pre_hook(set_lambda) for a in m.activations()]
        m(x)
        for h in handles:
            h.remove()
    return m, x
