"""The runtime imports numpy, OpenCV and the chosen backend only: never torch or OpenMMLab."""

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import ROOT

FORBIDDEN = ["torch", "torchvision", "mmcv", "mmengine", "mmseg", "tensorrt", "onnx"]

SCRIPT = """
import json, sys
from bcdeploy.cli import cli
try:
    cli.main(sys.argv[1:], standalone_mode=False)
except SystemExit as exit:
    if exit.code:
        raise
print(json.dumps(sorted(m for m in {forbidden} if m in sys.modules)))
"""


def _run_isolated(python, args, env=None):
    code = SCRIPT.format(forbidden=FORBIDDEN)
    proc = subprocess.run([python, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.mmseg
def test_infer_imports_nothing_heavy(exported, tmp_path):
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "a.png"), np.full((300, 240), 90, np.uint8))
    loaded = _run_isolated(sys.executable, ["infer", "--engine", exported / "model.onnx", tmp_path / "a.png",
                                            "--out", tmp_path / "out"])
    assert loaded == []


def test_help_imports_nothing_heavy():
    assert _run_isolated(sys.executable, ["--help"]) == []


@pytest.mark.mmseg
@pytest.mark.slow
def test_runtime_only_environment(exported, tmp_path):
    """Install bcdeploy with only the `ort` extra into a fresh venv and segment there."""
    import cv2
    import numpy as np

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    pip = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c",
                          str(ROOT / "constraints.txt"), f"{ROOT}[ort]"], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-2000:]
    check = subprocess.run([python, "-c", "import importlib.util as u; print([m for m in ('torch','mmseg','mmcv') if u.find_spec(m)])"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert check.stdout.strip() == "[]"
    cv2.imwrite(str(tmp_path / "a.png"), np.full((300, 240), 90, np.uint8))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    loaded = _run_isolated(python, ["infer", "--engine", exported / "model.onnx", tmp_path / "a.png",
                                    "--out", tmp_path / "out"], env=env)
    assert loaded == [] and Path(tmp_path / "out" / "masks" / "a.png").is_file()
    assert _run_isolated(python, ["--help"], env=env) == []


@pytest.mark.mmseg
def test_openvino_runtime_sends_no_usage_data(exported, tmp_path):
    """`import openvino` also imports its model converter, whose import sends a usage event to Google
    Analytics from a forked process (opt-out: without a consent file it sends) and writes ~/intel/. A
    hospital node must not phone home: the runtime loads OpenVINO without the converter. CI variables are
    removed from the environment, as OpenVINO itself stays quiet under CI=true."""
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "a.png"), np.full((300, 240), 90, np.uint8))
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")} | {"HOME": str(home)}
    code = SCRIPT.format(forbidden=["openvino_telemetry", "openvino.tools.ovc"])
    proc = subprocess.run([sys.executable, "-c", code, "infer", "--engine", str(exported / "model.xml"),
                           str(tmp_path / "a.png"), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    assert list(home.iterdir()) == []  # no ~/intel/openvino_ga_cid, no ~/intel/stats
