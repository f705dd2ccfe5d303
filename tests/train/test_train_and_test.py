import json
import pickle
import shutil

import pytest

from bcdeploy.errors import ConfigError, InputError
from tests.conftest import TINY_CONFIG, TRAIN_ITERS, run_cli

pytestmark = pytest.mark.mmseg


class NotAllowListed:
    """Pickled by reference: a weights-only load must refuse it."""


def test_train_writes_mmengine_work_dir(trained):
    work = trained.parent
    assert (work / "last_checkpoint").read_text().strip().endswith(f"iter_{TRAIN_ITERS}.pth")
    assert (work / TINY_CONFIG.name).is_file()  # the dumped config, as MMEngine writes it
    dumped = (work / TINY_CONFIG.name).read_text()
    assert "SyncBN" not in dumped  # single device: BN in what actually ran


def test_test_command_writes_every_metric(trained, prepared, tmp_path):
    out = tmp_path / "test"
    proc = run_cli("test", TINY_CONFIG, trained, "--data-root", prepared, "--out", out, "--cad-fp-per-image", "1")
    assert "aAcc" in proc.stdout and "lesions:" in proc.stdout
    assert "FROC (lesion sensitivity" in proc.stdout and "case AUC" in proc.stdout, proc.stdout
    assert "too few to validate a threshold" in proc.stdout  # a handful of validation images says so
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("aAcc", "mDice", "mAcc", "mDice_lesion", "per_class", "lesion", "confusion_matrix"):
        assert key in metrics
    assert set(metrics["per_class"]) == {"background", "benign", "malignant"}
    assert {"Dice", "Acc", "IoU"} <= set(metrics["per_class"]["benign"])
    lesion = metrics["lesion"]
    for key in ("gt_lesions", "detected", "missed", "detection_rate", "per_lesion_dice_mean",
                "false_positive_components", "false_positives_per_image", "class_confusion", "normal_images"):
        assert key in lesion
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert metrics["images"] == len(manifest["splits"]["val"])
    assert len(list((out / "preds").glob("*.png"))) == metrics["images"]
    # confusion-matrix from the saved predictions
    cm_out = tmp_path / "cm"
    run_cli("confusion-matrix", "--preds", out / "preds", "--labels", prepared / "annotations" / "val",
            "--out", cm_out, "--rm-background", "--title", "tiny")
    counts = json.loads((cm_out / "confusion_matrix.json").read_text())["counts"]
    assert counts == metrics["confusion_matrix"]
    assert (cm_out / "confusion_matrix.png").stat().st_size > 1000
    # the CAD operating point: measured on these images, carried by an export into its sidecars
    cad = metrics["cad"]
    assert cad["images"] == metrics["images"] and [p["fp_per_image"] for p in cad["froc"]] == [
        0.125, 0.25, 0.5, 1.0, 2.0, 4.0]
    point = cad["operating_point"]
    assert point["fp_per_image"] == 1.0 and 0.0 <= point["threshold"] <= 1.0
    export_out = tmp_path / "export"
    run_cli("export", "--ckpt", trained, "--out", export_out, "--operating-points", out / "metrics.json")
    sidecar = json.loads((export_out / "model.bcdeploy.json").read_text())
    assert sidecar["operating_points"]["cad"]["threshold"] == point["threshold"]


def test_untrusted_pickle_is_refused_unless_trusted(trained, tmp_path):
    import torch

    from bcdeploy.train.checkpoint import load_checkpoint_file

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": {"payload": NotAllowListed()}}, evil, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(InputError, match="--trust-checkpoint"):
        load_checkpoint_file(evil)
    assert isinstance(load_checkpoint_file(evil, trust=True)["meta"]["payload"], NotAllowListed)


def test_config_is_found_beside_the_checkpoint(trained, tmp_path):
    from bcdeploy.train.model import find_config

    assert find_config(trained).name == TINY_CONFIG.name
    lonely = tmp_path / "iter_1.pth"
    shutil.copy(trained, lonely)
    with pytest.raises(ConfigError, match="pass --config"):
        find_config(lonely)


def test_weights_of_another_architecture_are_an_error(trained):
    from bcdeploy.train.model import build_segmentor
    from tests.conftest import REFERENCE_CONFIG

    with pytest.raises(InputError, match="do not fit"):
        build_segmentor(REFERENCE_CONFIG, trained)


def test_train_rejects_missing_data_root(tmp_path):
    proc = run_cli("train", TINY_CONFIG, "--data-root", tmp_path / "nothing", "--max-iters", "1", check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("error:")


def test_test_and_confusion_refuse_an_out_inside_their_inputs(trained, prepared):
    from click.testing import CliRunner

    from bcdeploy.cli import cli

    val = prepared / "annotations" / "val"
    before = sorted(p.name for p in prepared.rglob("*"))
    for args in (["test", TINY_CONFIG, trained, "--data-root", prepared, "--out", prepared / "test_out"],
                 ["confusion-matrix", "--preds", val, "--labels", val, "--out", val]):
        result = CliRunner().invoke(cli, [str(a) for a in args])
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert result.exit_code == 1 and len(errors) == 1 and "--out" in errors[0], result.output
    assert sorted(p.name for p in prepared.rglob("*")) == before


def test_custom_imports_given_as_cfg_options_are_imported(tmp_path, monkeypatch):
    """MMEngine imports a config file's custom_imports at load; through --cfg-options they came too late,
    so a loss registered by a module (bcdeploy.train.losses) was unknown when the model was built."""
    import sys

    from bcdeploy.train.config import load_config

    (tmp_path / "registers_a_loss.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "registers_a_loss", raising=False)
    imports = {"imports": ["bcdeploy.train.dataset", "registers_a_loss"], "allow_failed_imports": False}
    cfg = load_config(TINY_CONFIG, cfg_options={"custom_imports": imports})
    assert "registers_a_loss" in sys.modules and cfg.custom_imports["imports"][-1] == "registers_a_loss"
    with pytest.raises(ConfigError, match="custom_imports"):
        load_config(TINY_CONFIG, cfg_options={"custom_imports": {"imports": ["no_such_module_here"]}})


def test_torch_identity_is_of_the_files_that_were_loaded(trained, tmp_path):
    """`bcdeploy predict`'s recorded identity (the checkpoint's and config's SHA-256) is that of the files
    MMSeg loaded: files replaced after opening must not lend their hashes to its masks."""
    import hashlib

    from bcdeploy.train.predict import TorchPredictor

    checkpoint = shutil.copy(trained, tmp_path / trained.name)
    config = shutil.copy(trained.parent / TINY_CONFIG.name, tmp_path / TINY_CONFIG.name)
    loaded = [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in (checkpoint, config)]
    predictor = TorchPredictor(None, checkpoint)
    with open(checkpoint, "ab") as fh:
        fh.write(b"another checkpoint")
    with open(config, "a") as fh:
        fh.write("\n# another config\n")
    described = predictor.describe()
    assert [described["sha256"], described["mask_options"]["config_sha256"]] == loaded
