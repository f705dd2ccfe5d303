"""Shared fixtures: generated DMID-like data (and a copy to damage), a tiny model trained through
`bcdeploy train` and its export, and tiny ONNX models built in code (tests/tiny_models.py). Tests that
need an optional stack are marked and skip with the reason when it is missing."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# Ray (serve tests, Ray clusters) stays on loopback: read once when ray is imported, so set it first.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "unet" / "unet-tiny_deeplabv3_breast-cancer.py"
REFERENCE_CONFIG = ROOT / "configs" / "unet" / "unet-s5-d16_deeplabv3_breast-cancer.py"
TRAIN_ITERS = 30


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _has_cuda() -> bool:
    try:
        from bcdeploy.runtime.model.backends.cuda import device_count

        return device_count() > 0
    except Exception:  # noqa: BLE001 - any failure means no usable GPU
        return False


def pytest_collection_modifyitems(config, items):
    reasons = {
        "mmseg": None if all(map(_has, ("torch", "mmseg", "mmengine", "onnx"))) else "needs the export extra (torch, mmseg, onnx)",
        "trt": None if _has("tensorrt") else "TensorRT is not installed (NVIDIA index only)",
        "gpu": None if _has_cuda() else "no CUDA GPU visible",
    }
    for item in items:
        for marker, reason in reasons.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@dataclass(frozen=True)
class CliResult:
    """What a `bcdeploy` run gave: the shape of subprocess.CompletedProcess the tests read."""
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, check: bool = True) -> CliResult:
    """`bcdeploy ARGS` in-process through click's runner (a subprocess pays ~4 s to import torch).

    A bug (any exception but the CLI's own exit) is raised, not turned into an exit code, so a test
    that expects exit 1 cannot pass on a crash. The entry point itself is smoke-tested in a real
    process by run_cli_subprocess (tests/cli/test_cli.py, tests/cli/test_quiet.py)."""
    from click.testing import CliRunner

    from bcdeploy.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args], prog_name="bcdeploy")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    if check and result.exit_code != 0:
        raise AssertionError(f"bcdeploy {' '.join(map(str, args))} failed ({result.exit_code}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return CliResult(result.exit_code, result.stdout, result.stderr)


def run_cli_subprocess(*args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `bcdeploy` console entry point in a subprocess (entry-point smoke tests only)."""
    proc = subprocess.run([sys.executable, "-m", "bcdeploy.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if check and proc.returncode != 0:
        raise AssertionError(f"bcdeploy {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def dmid(tmp_path_factory) -> Path:
    """A small DMID-like set in the figshare layout (y counted from the bottom, as MIAS)."""
    from bcdeploy.data.synth import synthesize

    out = tmp_path_factory.mktemp("dmid")
    synthesize(out, count=16, min_size=400, max_size=560, layout="figshare", seed=1, y_origin="bottom")
    return out


@pytest.fixture(scope="session")
def prepared(dmid, tmp_path_factory) -> Path:
    from bcdeploy.data.prepare import PrepareOptions, prepare

    out = tmp_path_factory.mktemp("prepared") / "ds"
    prepare(PrepareOptions(images_dir=str(dmid / "TIFF Images"), masks_dir=str(dmid / "ROI Masks"),
                           metadata=str(dmid / "Info.txt"), output_dir=str(out)))
    return out


@pytest.fixture(scope="session")
def trained(prepared, tmp_path_factory) -> Path:
    """Train the tiny config for a few iterations through `bcdeploy train` (in-process); returns the
    checkpoint. Data loading stays in this process (num_workers=0): no forked loader workers outlive
    the fixture inside the test process. A fixed seed gives the same model in every session, so a
    test on its thin logit margins cannot pass or fail by the draw. MMEngine sets OpenCV's thread
    count for the whole process (to 0); it is put back, since later tests (synth's "same seed, same
    bytes" across worker processes) depend on it."""
    if not _has("mmseg"):
        pytest.skip("needs the train extra (torch, mmseg)")
    import cv2

    work = tmp_path_factory.mktemp("work")
    options = ["default_hooks.logger.interval=5", "randomness.seed=0"] + [
        f"{loader}.{key}" for loader in ("train_dataloader", "val_dataloader")
        for key in ("num_workers=0", "persistent_workers=False")]
    threads = cv2.getNumThreads()
    try:
        run_cli("train", TINY_CONFIG, "--data-root", prepared, "--work-dir", work, "--max-iters", TRAIN_ITERS,
                *[arg for option in options for arg in ("--cfg-options", option)])
    finally:
        cv2.setNumThreads(threads)
    ckpt = work / f"iter_{TRAIN_ITERS}.pth"
    assert ckpt.is_file()
    return ckpt


# ---- export fixtures: one in-process export of every CPU variant, shared by the whole session ----

@dataclass(frozen=True)
class ExportRun:
    out: Path  # model.onnx, model.fp16.onnx, model.int8.onnx, model.xml/.bin, each with its sidecar
    triton: Path  # the --triton repository written by the same export
    stdout: str  # the printed table


@pytest.fixture(scope="session")
def export_run(trained, tmp_path_factory) -> ExportRun:
    """`bcdeploy export --fp16 --int8 --openvino --triton` of the trained tiny model, run once in-process.

    The INT8 gate is lifted (0): the 30-iteration model's logit margins are thin by design; the gate
    itself is unit-tested on arrays (tests/export/test_parity_gates.py)."""
    from click.testing import CliRunner

    from bcdeploy.cli import cli

    root = tmp_path_factory.mktemp("export")
    out, triton = root / "out", root / "triton"
    result = CliRunner().invoke(cli, ["export", "--ckpt", str(trained), "--out", str(out), "--fp16", "--int8",
                                      "--int8-min-agreement", "0", "--openvino", "--triton", str(triton)])
    if result.exit_code != 0:
        raise AssertionError(f"export failed ({result.exit_code}):\n{result.output}") from result.exception
    return ExportRun(out, triton, result.output)


@pytest.fixture(scope="session")
def exported(export_run) -> Path:
    """The shared export's folder (model.onnx, model.fp16.onnx, ... with sidecars)."""
    return export_run.out

# ---- end of export fixtures ----


@pytest.fixture
def dmid_copy(dmid, tmp_path) -> Path:
    """A private copy of the generated DMID tree, for tests that damage or watch their inputs."""
    root = tmp_path / "dmid"
    shutil.copytree(dmid, root)
    return root


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """A 3-class 1x1-convolution ONNX model (random weights, seed 0) with its sidecar; shared, read-only."""
    from tests.tiny_models import description, write_onnx, write_sidecar

    path = write_onnx(tmp_path_factory.mktemp("tiny_onnx") / "model.onnx")
    write_sidecar(path, description())
    return path


@pytest.fixture(scope="session")
def threshold_onnx(tmp_path_factory) -> Path:
    """The segmenter of known output (dark/mid/bright -> 0/1/2) with its sidecar; shared, read-only."""
    from tests.tiny_models import write_threshold_onnx

    return write_threshold_onnx(tmp_path_factory.mktemp("threshold_onnx"))
