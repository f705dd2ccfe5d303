"""Serve tests use the threshold segmenter of tests/conftest.py (`threshold_onnx`) as their model."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(threshold_onnx) -> Path:
    return threshold_onnx
