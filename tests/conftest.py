"""Shared fixtures: the real-export corpus and a scratch run store."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Real exports from public repositories, kept beside the project (never copied in).
CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.fixture
def corpus() -> Path:
    """The shared corpus folder; the test is skipped when it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"the shared export corpus is not at {CORPUS}")
    return CORPUS


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An empty run store."""
    path = tmp_path / "runs"
    path.mkdir()
    return path
