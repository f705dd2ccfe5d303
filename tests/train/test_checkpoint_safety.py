"""Checkpoints cannot run code (issue 10, item 1): a genuine checkpoint with a code-running gadget
prepended is refused by every command that loads checkpoints, with one line and no side effect,
while genuine MMEngine Runner checkpoints still load without --trust-checkpoint."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from bcdeploy.errors import InputError
from tests.conftest import TINY_CONFIG, TRAIN_ITERS
from tests.hostile_checkpoints import call_prepended, hostile_checkpoint, replace_data_pkl

pytestmark = pytest.mark.mmseg


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "payload-ran"


@pytest.fixture
def hostile(trained, tmp_path, marker):
    """The trained tiny model's checkpoint, gadget prepended, beside a copy of its dumped config."""
    folder = tmp_path / "vendor"
    folder.mkdir()
    shutil.copy(trained.parent / TINY_CONFIG.name, folder / TINY_CONFIG.name)
    return hostile_checkpoint(trained, folder / f"iter_{TRAIN_ITERS}.pth", marker, seed=10)


def _refused_in_one_line(result, path, marker) -> None:
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0] and "--trust-checkpoint" in errors[0], result.output
    assert not marker.exists(), "the checkpoint's payload ran"


def test_gadget_is_live_and_refused_by_the_loader(hostile, marker):
    from bcdeploy.train.checkpoint import load_checkpoint_file

    with pytest.raises(InputError, match="refused to load"):
        load_checkpoint_file(hostile)
    assert not marker.exists()
    with pytest.raises(InputError, match="refused to load"):
        load_checkpoint_file(hostile, training_state=True)
    assert not marker.exists()
    # The same file under a full unpickler (what --trust-checkpoint means) does run the payload, and the
    # weights still load: the gadget is real, and trusting a file is trusting its code.
    assert "state_dict" in load_checkpoint_file(hostile, trust=True)
    assert marker.exists()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gadget_variants_in_a_plain_state_dict(tmp_path, seed):
    import torch

    from bcdeploy.train.checkpoint import load_checkpoint_file

    genuine, marker = tmp_path / "plain.pth", tmp_path / f"ran-{seed}"
    torch.save({"state_dict": {"w": torch.ones(3)}, "meta": {"iter": 1}}, genuine)
    hostile = hostile_checkpoint(genuine, tmp_path / "hostile.pth", marker, seed=seed)
    with pytest.raises(InputError, match="getattr"):
        load_checkpoint_file(hostile)
    assert not marker.exists()


def test_runner_checkpoint_loads_as_data(trained):
    from mmengine.logging.history_buffer import HistoryBuffer

    from bcdeploy.train.checkpoint import load_checkpoint_file

    ckpt = load_checkpoint_file(trained)
    assert set(ckpt) == {"state_dict", "meta"}  # training state is not needed to export or infer
    assert ckpt["meta"]["dataset_meta"]["classes"] == ("background", "benign", "malignant")
    full = load_checkpoint_file(trained, training_state=True)
    assert {"message_hub", "optimizer", "param_schedulers"} <= set(full)
    scalars = full["message_hub"]["log_scalars"]
    loss = scalars["train/loss"]
    assert type(loss) is HistoryBuffer and loss.mean() > 0 and len(loss.data[0]) == len(loss.data[1])
    assert isinstance(full["message_hub"]["runtime_info"]["eta"], np.floating)  # a numpy scalar, rebuilt


def test_numpy_object_arrays_are_refused(tmp_path):
    import torch

    from bcdeploy.train.checkpoint import load_checkpoint_file

    path = tmp_path / "objects.pth"
    torch.save({"state_dict": {}, "meta": {"x": np.array([{"a": 1}], dtype=object)}}, path)
    with pytest.raises(InputError, match="plain number type"):
        load_checkpoint_file(path)


def test_other_getattr_targets_are_refused(tmp_path):
    """`getattr` may only name HistoryBuffer's statistics, never reach another attribute."""
    import torch

    from bcdeploy.train.checkpoint import load_checkpoint_file

    genuine = tmp_path / "g.pth"
    torch.save({"state_dict": {}}, genuine)
    body = (b"\x80\x02cmmengine.logging.history_buffer\nHistoryBuffer\n"
            b"cbuiltins\ngetattr\n" b"(cmmengine.logging.history_buffer\nHistoryBuffer\nX\x08\x00\x00\x00__init__tR")
    replace_data_pkl(genuine, tmp_path / "h.pth", lambda old: body + old[2:])
    with pytest.raises(InputError, match="getattr"):
        load_checkpoint_file(tmp_path / "h.pth")


def _invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_export_refuses(hostile, marker, tmp_path):
    _refused_in_one_line(_invoke("export", "--ckpt", hostile, "--out", tmp_path / "export"), hostile, marker)
    assert not (tmp_path / "export" / "model.onnx").exists()


def test_predict_refuses(hostile, marker, dmid, tmp_path):
    images = sorted((dmid / "TIFF Images").iterdir())[:1]
    result = _invoke("predict", "--ckpt", hostile, *images, "--out", tmp_path / "pred")
    _refused_in_one_line(result, hostile, marker)


def test_test_refuses(hostile, marker, prepared, tmp_path):
    result = _invoke("test", hostile.parent / TINY_CONFIG.name, hostile, "--data-root", prepared, "--out", tmp_path / "t")
    _refused_in_one_line(result, hostile, marker)


def test_bench_parity_refuses(hostile, marker, exported, prepared, tmp_path):
    val = prepared / "images" / "val"
    result = _invoke("bench", "parity", "--ckpt", hostile, "--models", exported / "model.onnx", val,
                     "--out", tmp_path / "parity")
    _refused_in_one_line(result, hostile, marker)


@pytest.mark.parametrize("baseline", [False, True], ids=["ckpt", "mmseg-baseline"])
def test_bench_latency_refuses(hostile, marker, exported, prepared, tmp_path, baseline):
    extra = ["--mmseg-baseline", "--images", prepared / "images" / "val"] if baseline else []
    result = _invoke("bench", "latency", "--models", exported / "model.onnx", "--ckpt", hostile, "--sizes", "64x64",
                     "--min-seconds", "0.01", *extra, "--out", tmp_path / "latency")
    _refused_in_one_line(result, hostile, marker)


def _resume_dir(tmp_path, checkpoint):
    work = tmp_path / "work"
    work.mkdir()
    target = work / f"iter_{TRAIN_ITERS}.pth"
    shutil.copy(checkpoint, target)
    (work / "last_checkpoint").write_text(str(target))
    return work


def test_train_resume_refuses(hostile, marker, prepared, tmp_path):
    work = _resume_dir(tmp_path, hostile)
    result = _invoke("train", TINY_CONFIG, "--data-root", prepared, "--work-dir", work, "--resume",
                     "--max-iters", TRAIN_ITERS)
    _refused_in_one_line(result, work / f"iter_{TRAIN_ITERS}.pth", marker)


@pytest.mark.slow
def test_train_resume_never_runs_the_checkpoints_config_text(trained, prepared, tmp_path, marker):
    """MMEngine's resume parses meta['config'] as a Python config (it runs it); we drop that key."""
    import torch

    ckpt = torch.load(trained, map_location="cpu", weights_only=False)
    ckpt["meta"]["config"] = f"open({str(marker)!r}, 'w').close()\ngpu_ids = [0]\n"
    planted = tmp_path / "planted.pth"
    torch.save(ckpt, planted)
    work = _resume_dir(tmp_path, planted)
    result = _invoke("train", TINY_CONFIG, "--data-root", prepared, "--work-dir", work, "--resume",
                     "--max-iters", TRAIN_ITERS)
    assert result.exit_code == 0, result.output
    assert not marker.exists(), "meta['config'] was run as Python"


def test_mmengine_loads_in_train_are_data_only(hostile, marker, trained, tmp_path, monkeypatch):
    """`load_from`/`Pretrained` paths and URLs in a config reach MMEngine's CheckpointLoader; MMEngine's own
    http loader unpickles fully (torch.hub, weights_only=False). Inside `bcdeploy train` both are ours."""
    import functools
    import http.server
    import threading

    from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

    from bcdeploy.train.checkpoint import mmengine_loads_data_only

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # where the download is cached
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(hostile.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/{hostile.name}"
    before = CheckpointLoader._get_checkpoint_loader(url)
    try:
        with mmengine_loads_data_only():
            assert "message_hub" in _load_checkpoint(str(trained))
            for source in (str(hostile), url):
                with pytest.raises(InputError, match="refused to load"):
                    _load_checkpoint(source)
    finally:
        server.shutdown()
    assert not marker.exists()
    assert CheckpointLoader._get_checkpoint_loader(url) is before  # restored after the block


def test_state_dict_keeps_its_module_versions(tmp_path):
    """`_metadata` (module versions `load_state_dict` reads) survives the data-only load."""
    import torch

    from bcdeploy.train.checkpoint import load_checkpoint_file

    model = torch.nn.Sequential(torch.nn.BatchNorm2d(2))
    path = tmp_path / "bn.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {"x": np.float32(1.5)}}, path)
    ckpt = load_checkpoint_file(path)
    assert ckpt["state_dict"]._metadata == model.state_dict()._metadata
    assert ckpt["meta"]["x"] == np.float32(1.5) and type(ckpt["meta"]["x"]) is np.float32


def test_globals_allowed_elsewhere_in_the_process_do_not_widen_the_loader(trained, tmp_path, marker):
    """torch's allow-list is process-wide; whatever an import allow-lists must not reach our loader."""
    import builtins

    import torch

    from bcdeploy.train.checkpoint import load_checkpoint_file

    hostile = call_prepended(trained, tmp_path / "h.pth", "builtins", "exec", f"open({str(marker)!r}, 'w').close()")
    torch.serialization.add_safe_globals([builtins.exec])
    try:
        with pytest.raises(InputError, match="refused to load"):
            load_checkpoint_file(hostile)
        assert builtins.exec in torch.serialization.get_safe_globals()  # put back afterwards
    finally:
        torch.serialization.clear_safe_globals()
    assert not marker.exists()
