"""Dockerfile.trt cannot be built here (no Docker engine): check what can be checked statically."""

import re
import shutil
import subprocess

import pytest
import tomllib

from tests.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile.trt").read_text()


def test_copied_files_exist():
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY"):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile.trt copies {src}, which is missing"


def test_installs_runtime_and_tensorrt_extras_only():
    extras = re.findall(r'"\.\[([a-z0-9_,-]+)\]"', DOCKERFILE)
    assert extras == ["trt"]
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras[0].split(",")) <= set(declared)
    deps = " ".join(declared["trt"])
    assert "torch" not in deps and "mmseg" not in deps


def test_non_root_entrypoint_and_healthcheck():
    user = re.search(r"^USER (\S+)", DOCKERFILE, re.M)
    assert user and user.group(1) not in ("root", "0")
    assert 'ENTRYPOINT ["bcdeploy"]' in DOCKERFILE and "HEALTHCHECK" in DOCKERFILE
    assert re.search(r"^FROM \$\{TRT_IMAGE\}", DOCKERFILE, re.M) and "nvcr.io/nvidia/tensorrt" in DOCKERFILE


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint is not installed")
def test_hadolint_clean():
    proc = subprocess.run(["hadolint", str(ROOT / "Dockerfile.trt")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
