"""An export owns the model files of its folder, and nothing else: stale variants go, inputs stay."""

import json
import shutil

import pytest

from bcdeploy.errors import InputError
from bcdeploy.export.folder import refuse_clobbering, stale_model_files
from bcdeploy.fileio import sha256_file


def _export(*args):
    from click.testing import CliRunner

    from bcdeploy.cli import cli

    return CliRunner().invoke(cli, ["export", *map(str, args)])


def _touch(folder, *names):
    for name in names:
        (folder / name).write_bytes(name.encode())


def test_stale_model_files_are_models_and_sidecars_only(tmp_path):
    _touch(tmp_path, "model.onnx", "model.bcdeploy.json", "model.fp16.onnx", "model.fp16.bcdeploy.json", "model.xml",
           "model.bin", "other.trt", "other.trt.bcdeploy.json", "net.engine", "net.plan",
           "iter_30.pth", "config.py", "notes.txt", "weights.bin", "scan.png", ".hidden.onnx")
    (tmp_path / "sub").mkdir()
    _touch(tmp_path / "sub", "model.onnx")
    stale = {p.name for p in stale_model_files(tmp_path, ["model.onnx", "model.bcdeploy.json"])}
    assert stale == {"model.fp16.onnx", "model.fp16.bcdeploy.json", "model.xml", "model.bin", "other.trt",
                     "other.trt.bcdeploy.json", "net.engine", "net.plan"}  # weights.bin has no .xml: not a model


def test_int8_openvino_ir_is_written_with_its_weights_and_is_stale_without_int8(tmp_path):
    """`--int8 --openvino` writes model.int8.xml and model.int8.bin; an export without them removes both."""
    from bcdeploy.export.api import ExportOptions, planned_steps, written_names

    steps = planned_steps(ExportOptions(checkpoint="c", int8=True, openvino=True), "fp32")
    assert steps == ("onnx", "int8", "openvino", "openvino_int8")
    assert {"model.int8.xml", "model.int8.bin", "model.int8.xml.bcdeploy.json", "model.bin"} <= set(written_names(steps))
    assert "openvino_int8" not in planned_steps(ExportOptions(checkpoint="c", openvino=True), "fp32")
    _touch(tmp_path, "model.onnx", "model.bcdeploy.json", "model.int8.xml", "model.int8.bin",
           "model.int8.xml.bcdeploy.json")
    stale = {p.name for p in stale_model_files(tmp_path, written_names(("onnx",)))}
    assert stale == {"model.int8.xml", "model.int8.bin", "model.int8.xml.bcdeploy.json"}


def test_inputs_the_export_would_replace_or_remove_are_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _touch(out, "model.xml", "model.bin", "iter_30.pth", "config.py")
    written = ["model.onnx", "model.bcdeploy.json"]
    refuse_clobbering(out, written, files=[out / "iter_30.pth", out / "config.py"])  # a work dir is fine
    for victim in ("model.bin", "model.onnx", "model.xml"):  # stale OpenVINO weights, a planned name, a model
        with pytest.raises(InputError, match="would replace or remove the input"):
            refuse_clobbering(out, written, files=[out / victim])
    with pytest.raises(InputError, match="is a file, not a folder"):
        refuse_clobbering(out / "iter_30.pth", written, files=[out / "iter_30.pth"])
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    for target in (images, images / "sub", tmp_path):  # equals, lies inside, contains
        with pytest.raises(InputError, match="export folder"):
            refuse_clobbering(target, written, folders=[images])
    link = tmp_path / "link"
    link.symlink_to(images, target_is_directory=True)
    with pytest.raises(InputError):
        refuse_clobbering(link / "sub", written, folders=[images])


@pytest.mark.mmseg
def test_export_refuses_an_out_inside_its_images_folder_before_writing(trained, tmp_path):
    images = tmp_path / "scans"
    images.mkdir()
    result = _export("--ckpt", trained, "--out", images / "export", "--images", images)
    assert result.exit_code == 1 and "lies inside the input" in result.output, result.output
    assert list(images.iterdir()) == []


@pytest.mark.mmseg
@pytest.mark.slow
def test_reexport_removes_the_variants_of_the_earlier_checkpoint(exported, trained, tmp_path):
    """Export A (--fp16 --int8 --openvino) lies in the work dir; export B without variants into it: only B's
    model files remain, every one with a sidecar naming B's SHA-256, and nothing else there is touched."""
    import torch

    from bcdeploy.train.model import build_segmentor, find_config

    work = tmp_path / "work_dirs" / "b"
    shutil.copytree(exported, work)
    config = shutil.copy(find_config(trained, None), work / "config.py")
    state = build_segmentor(find_config(trained, None), trained).state_dict()
    state = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}
    ckpt_b = work / "iter_b.pth"
    torch.save({"state_dict": state, "meta": {}}, ckpt_b)
    _touch(work, "notes.txt", "weights.bin")
    before = {p.name: sha256_file(p) for p in work.iterdir() if p.suffix in (".pth", ".py", ".txt") or p.name == "weights.bin"}
    assert (work / "model.fp16.onnx").is_file() and (work / "model.xml").is_file() and (work / "model.int8.bin").is_file()

    result = _export("--ckpt", ckpt_b, "--config", config, "--out", work)
    assert result.exit_code == 0, result.output
    models = sorted(p.name for p in work.iterdir() if p.suffix in (".onnx", ".xml", ".trt") or p.name == "model.bin")
    assert models == ["model.onnx"], models
    sidecars = sorted(p.name for p in work.iterdir() if p.name.endswith(".bcdeploy.json"))
    assert sidecars == ["model.bcdeploy.json"]
    assert json.loads((work / "model.bcdeploy.json").read_text())["source"]["checkpoint_sha256"] == sha256_file(ckpt_b)
    assert "removed stale model.fp16.onnx" in result.output
    assert "removed stale model.int8.xml" in result.output and "removed stale model.int8.bin" in result.output
    assert not (work / "model.int8.bin").exists()  # the INT8 IR's weights go with it
    assert {name: sha256_file(work / name) for name in before} == before
