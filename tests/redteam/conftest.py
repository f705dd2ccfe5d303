"""Shared bits of the red-team regression tests: a tiny ONNX model (onnx.helper, no torch) and an in-process
`infer`, so each case runs in well under a second."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from tests.tiny_models import description, write_onnx, write_sidecar


@pytest.fixture()
def tiny_model(tmp_path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    path = write_onnx(folder / "model.onnx", embedded=description())
    write_sidecar(path, description())
    return path


def write_png(path: Path, seed: int = 0, size: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


def infer(model: Path, *args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["infer", "--engine", str(model), *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.output
