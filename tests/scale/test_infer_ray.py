"""`bcdeploy infer --ray ADDRESS` on a real two-node Ray cluster on 127.0.0.1 (head + worker, 1 CPU
each): the same masks, ledger and report as a local run; the worker node killed part-way through a
run: the run completes, every input is in the ledger exactly once, masks equal the local run's; an
--out a worker cannot write is refused at start with one line; and the local and Ray drivers of the one
run pipeline agree field by field on PNG and DICOM inputs with every output kind, DICOM SEG included."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax
from tests.ray_cluster import add_loopback_node, loopback_cluster
from tests.tiny_models import synthetic_png

pytestmark = [pytest.mark.slow]
ray = pytest.importorskip("ray.data", reason="needs Ray Data (the serve extra)")

IMAGES = 12
# 0.25 CPU per model actor: both actors fit on the head alone once the worker node is gone, beside
# the read/write tasks (0.25 CPU each), so the run can finish on one node.
RAY_ARGS = ("--replicas", "2", "--cpus-per-replica", "0.25")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray_images")
    for seed in range(IMAGES):
        (folder / f"img_{seed:02d}.png").write_bytes(synthetic_png(seed, height=400, width=320))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # a bad file: one failure line
    return folder


@pytest.fixture(scope="module")
def model(threshold_onnx) -> Path:
    return threshold_onnx


@pytest.fixture(scope="module")
def local_run(model, images, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    result = infer(model, images, out)
    assert result.exit_code == 1, result.output  # the broken file fails the run, as it should
    return out


@pytest.fixture(scope="module")
def cluster():
    with loopback_cluster(worker_cpus=(1,), head_cpus=1) as (cluster, workers):
        yield cluster, workers


def infer(model: Path, images: Path, out: Path, *extra: str):
    return CliRunner().invoke(cli, ["infer", "--model", str(model), str(images), "--out", str(out), *extra])


def masks(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "masks").glob("*.png"))}


def ledger_rows(out: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(out / "ledger.sqlite") as db:
        return db.execute("SELECT source, status FROM images ORDER BY source").fetchall()


def check_like_local(out: Path, local: Path, images: Path) -> dict:
    assert masks(out) == masks(local) and len(masks(out)) == IMAGES
    rows = ledger_rows(out)
    assert [source for source, _ in rows] == sorted(str(p.resolve()) for p in images.iterdir())  # once each
    assert dict(rows)[str((images / "broken.png").resolve())] == "failed"
    results = json.loads((out / "results.json").read_text())
    local_results = json.loads((local / "results.json").read_text())
    assert [e["name"] for e in results["images"]] == [e["name"] for e in local_results["images"]]
    assert [e["lesions"] for e in results["images"]] == [e["lesions"] for e in local_results["images"]]
    assert (out / "lesions.csv").read_text() == (local / "lesions.csv").read_text()
    assert len(results["failed"]) == 1 and "broken.png" in results["failed"][0]["file"]
    return results


def test_two_nodes_give_the_local_masks_and_report(cluster, model, images, local_run, tmp_path):
    out = tmp_path / "out"
    result = infer(model, images, out, "--ray", cluster[0].address, *RAY_ARGS)
    assert result.exit_code == 1, result.output
    assert "processed 12, skipped 0 (done earlier), failed 1" in result.output
    results = check_like_local(out, local_run, images)
    nodes = results["summary"]["per_node"]
    print("per node:", nodes)
    assert sum(nodes.values()) == IMAGES
    # the ledger binds results exactly as a local run does: a local re-run skips every image
    again = infer(model, images, out)
    assert "processed 0, skipped 12 (done earlier), failed 1" in again.output, again.output


def test_worker_node_lost_part_way(cluster, model, images, local_run, tmp_path):
    """The worker node is killed once a few images are in the ledger; its tasks and actor are retried on
    the head, and a worker node comes back for the next test."""
    ray_cluster, workers = cluster
    out = tmp_path / "out"
    killed = threading.Event()
    written_at_kill: list[int] = []

    def kill_when_started() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed.is_set():
            written = len(list((out / "masks").glob("*.png"))) if (out / "masks").is_dir() else 0
            if written >= 2:
                ray_cluster.remove_node(workers[0], allow_graceful=False)
                written_at_kill.append(written)
                killed.set()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_started, daemon=True)
    killer.start()
    try:
        result = infer(model, images, out, "--ray", ray_cluster.address, "--batch-size", "1", *RAY_ARGS)
    finally:
        killed.set()
        killer.join(10)
    assert written_at_kill and written_at_kill[0] < IMAGES, "the node must be lost part-way through the run"
    assert result.exit_code == 1, result.output
    results = check_like_local(out, local_run, images)
    print("per node:", results["summary"]["per_node"], "masks written when the node was killed:", written_at_kill)
    workers[0] = add_loopback_node(ray_cluster, 1)


def test_out_a_worker_cannot_write_is_refused(cluster, model, images, tmp_path):
    """A folder the Ray workers cannot write (here, on one machine, nobody can: a worker-only view needs
    a second machine or user) is refused before any image is read, with one line naming a node."""
    out = tmp_path / "ro"
    out.mkdir()
    with read_only(out):
        result = infer(model, images, out, "--ray", cluster[0].address, *RAY_ARGS)
    assert result.exit_code == 1
    assert "cannot write there" in result.output and "shared file system" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(out.iterdir()) == []  # not even the ledger: refused before the run starts


@contextlib.contextmanager
def read_only(folder: Path):
    """chmod is enough for a normal user; root writes anyway, except into an immutable folder."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: cannot make a folder unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_out_inside_the_inputs_is_refused_before_ray_starts(model, images):
    """The writability probe creates --out: an --out inside the inputs must be refused before it."""
    result = infer(model, images, images / "out", "--ray", "local")
    assert result.exit_code == 1 and "error:" in result.output
    assert not (images / "out").exists()


def test_worker_options_without_ray_are_refused(model, images, tmp_path):
    for new in (("--replicas", "2"), ("--cpus-per-replica", "2")):  # the shared vocabulary, refused the same way
        result = infer(model, images, tmp_path / "out", *new)
        assert result.exit_code == 2 and "need --ray" in result.output
    bad = infer(model, images, tmp_path / "out", "--ray", "local", "--replicas", "3:1")
    assert bad.exit_code == 2 and "MIN:MAX" in bad.output


# what differs between two runs of the same work by nature: when, how long, which run, which node
RUN_FIELDS = {"started", "finished", "run_id", "spans", "read_ms", "hash_ms", "decode_ms", "preprocess_ms",
              "infer_ms", "postprocess_ms", "write_ms"}


@pytest.fixture(scope="module")
def mixed_inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("agree_in")
    for seed in range(3):
        (folder / "png" / f"case_{seed}.png").parent.mkdir(exist_ok=True)
        (folder / "png" / f"case_{seed}.png").write_bytes(synthetic_png(seed, height=300, width=240))
    for seed in range(2):
        ds = mammogram_dataset(mammogram_pixels((320, 256), seed=seed), patient_id=f"P{seed}", seed=seed)
        write_syntax(ds, "explicit", folder / "dicom" / f"P{seed}" / "1-1.dcm")  # repeated names, as archives have
    (folder / "png" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def infer_every_kind(model: Path, inputs: Path, out: Path, *extra: str):
    return CliRunner().invoke(cli, ["infer", "--model", str(model), "-r", str(inputs), "--out", str(out),
                                    "--save", "masks,biner,vis,seg", *extra])


def rows(out: Path) -> dict[str, dict]:
    with sqlite3.connect(out / "ledger.sqlite") as db:
        db.row_factory = sqlite3.Row
        found = {}
        for row in db.execute("SELECT * FROM images"):
            row = {k: row[k] for k in row.keys() if k not in RUN_FIELDS}
            if row["image"]:
                row["image"] = {k: v for k, v in json.loads(row["image"]).items() if k != "node"}
            row["outputs"] = json.loads(row["outputs"] or "{}")
            found[row["source"]] = row
        return found


def without_run_fields(entry: dict) -> dict:
    """A report entry less when and where it ran, and the SEG file's own hash (new UIDs in every SEG)."""
    entry = {k: v for k, v in entry.items() if k not in ("started", "finished", "node", "time_ms")}
    if "seg" in entry.get("outputs", {}):
        entry["outputs"] = {**entry["outputs"], "seg": {"path": entry["outputs"]["seg"]["path"]}}
    return entry


def seg_segments(path: Path) -> dict:
    import pydicom

    from bcdeploy.runtime.results.dicom.seg import seg_masks

    return {label: mask.tobytes() for label, mask in seg_masks(pydicom.dcmread(path)).items()}


def test_local_and_ray_drivers_agree_field_by_field(cluster, model, tmp_path, mixed_inputs):
    """The local driver and the Ray driver (runtime/run/driver.py) on the same PNG and DICOM inputs, one
    broken, every output kind (DICOM SEG included): the same ledger rows, files, reports and summary lines."""
    pytest.importorskip("highdicom", reason="needs the dicom extra")
    inputs = mixed_inputs
    local = infer_every_kind(model, inputs, tmp_path / "local")
    on_ray = infer_every_kind(model, inputs, tmp_path / "ray", "--ray", cluster[0].address, *RAY_ARGS)
    assert local.exit_code == on_ray.exit_code == 1, (local.output, on_ray.output)  # the broken file
    summary = [line for line in local.output.splitlines() if line.startswith("processed")]
    assert summary and summary[0].startswith("processed 5, skipped 0 (done earlier), failed 1")
    assert [line for line in on_ray.output.splitlines() if line.startswith("processed")][0].startswith(
        "processed 5, skipped 0 (done earlier), failed 1")
    for output in (local.output, on_ray.output):  # the same information and failure lines, paths as given
        assert any(line.startswith("cpu: ") for line in output.splitlines()), output
        assert f"failed: {inputs / 'png' / 'broken.png'}:" in output

    local_rows, ray_rows = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert local_rows.keys() == ray_rows.keys() and len(local_rows) == 6
    for source, row in local_rows.items():
        other = ray_rows[source]
        for field in row:
            if field == "outputs":
                continue
            assert row[field] == other[field], (source, field)
        assert row["outputs"].keys() == other["outputs"].keys(), source
        for kind, record in row["outputs"].items():
            mine, theirs = tmp_path / "local" / record["path"], tmp_path / "ray" / other["outputs"][kind]["path"]
            if kind == "seg":  # new UIDs and times in every SEG: compare what it says, not its bytes
                assert seg_segments(mine) == seg_segments(theirs), source
            else:
                assert record == other["outputs"][kind] and mine.read_bytes() == theirs.read_bytes(), (source, kind)
    kinds = {kind for row in local_rows.values() for kind in row["outputs"]}
    assert kinds == {"mask", "biner", "vis", "seg"}
    assert sum("seg" in row["outputs"] for row in local_rows.values()) == 2  # the DICOM inputs only

    local_report = json.loads((tmp_path / "local" / "results.json").read_text())
    ray_report = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert [without_run_fields(e) for e in local_report["images"]] == [without_run_fields(e) for e in ray_report["images"]]
    assert local_report["failed"] == ray_report["failed"]
    assert (tmp_path / "local" / "lesions.csv").read_text() == (tmp_path / "ray" / "lesions.csv").read_text()


def test_ray_says_nothing_of_its_own_on_the_terminal(cluster, model, images, tmp_path):
    """Issue "Reliability round 3", defect 7: a real process joining the cluster prints bcdeploy's lines only
    (Ray's token-authentication notice is for cluster operators; `--verbose` shows it)."""
    import sys

    one = tmp_path / "one"
    one.mkdir()
    (one / "a.png").write_bytes((images / "img_00.png").read_bytes())
    done = subprocess.run([sys.executable, "-m", "bcdeploy.cli", "infer", "--model", str(model), str(one), "--out",
                           str(tmp_path / "out"), "--ray", cluster[0].address, *RAY_ARGS],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Token authentication" not in done.stderr and "WARNING" not in done.stderr, done.stderr
