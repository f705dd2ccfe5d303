"""`export --triton REPO` after an earlier `export --engine --triton REPO` of another checkpoint left the
earlier `bcdeploy_segmenter_trt/` beside the new `bcdeploy_segmenter_onnx/`: Triton serves both, the
first from the old checkpoint (the stale-variant defect of issue 10 item 3, in the Triton repository).
Model folders that bcdeploy wrote and this export did not must go; anything else in REPO stays."""

from __future__ import annotations

import json

from bcdeploy.export.api import _write_triton
from bcdeploy.export.artifacts import Artifact
from bcdeploy.runtime.model.sidecar import ModelMeta


def _artifact(tmp_path, name: str, checkpoint_sha: str) -> Artifact:
    suffix = ".onnx" if name == "onnx" else ".trt"
    path = tmp_path / checkpoint_sha[:4] / f"model{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(checkpoint_sha.encode())
    meta = ModelMeta(classes=["background", "benign", "malignant"], palette=[[0, 0, 0], [0, 255, 0], [255, 0, 0]],
                     mean=[128.0] * 3, std=[64.0] * 3, input_size=[96, 128],
                     source={"checkpoint": "iter.pth", "checkpoint_sha256": checkpoint_sha})
    return Artifact(name=name, precision="fp32", path=path, sidecar=path.with_suffix(".bcdeploy.json"), meta=meta,
                    not_checked="test")


def test_reexport_removes_the_other_checkpoints_triton_model(tmp_path):
    repo = tmp_path / "repo"
    (repo / "someone_elses_model" / "1").mkdir(parents=True)
    _write_triton(str(repo), [_artifact(tmp_path, "onnx", "a" * 64), _artifact(tmp_path, "engine", "a" * 64)])
    assert (repo / "bcdeploy_segmenter_trt").is_dir()
    _write_triton(str(repo), [_artifact(tmp_path, "onnx", "b" * 64)])
    folders = sorted(p.name for p in repo.iterdir())
    assert folders == ["bcdeploy_segmenter_onnx", "someone_elses_model"], folders
    sources = {json.loads((repo / f / "bcdeploy.json").read_text())["source"]["checkpoint_sha256"]
               for f in folders if (repo / f / "bcdeploy.json").is_file()}
    assert sources == {"b" * 64}

