import json

import pytest

from bcdeploy.bench.timing import measure, summarize
from tests.conftest import run_cli


def test_summary_statistics():
    stats = summarize([10.0] * 98 + [20.0, 30.0], items_per_call=2)
    assert stats["runs"] == 100 and stats["p50_ms"] == 10.0 and stats["p99_ms"] == pytest.approx(20.1, abs=0.01)
    assert stats["mean_ms"] == pytest.approx(10.3) and stats["throughput_ips"] == pytest.approx(2000 / 10.3, rel=1e-3)


def test_measure_respects_minimum_count_and_time():
    calls = []
    samples = measure(lambda: calls.append(1), warmup=3, min_runs=7, min_seconds=0.0)
    assert len(samples) == 7 and len(calls) == 10


@pytest.mark.mmseg
@pytest.mark.slow
def test_parity_report_and_gates(exported, trained, prepared, tmp_path):
    val = prepared / "images" / "val"
    labels = prepared / "annotations" / "val"
    out = tmp_path / "parity"
    proc = run_cli("bench", "parity", "--ckpt", trained, "--models", exported / "model.onnx",
                   "--models", exported / "model.fp16.onnx", "--models", exported / "model.trt",
                   val, "--labels", labels, "--out", out, check=False)
    report = json.loads((out / "parity.json").read_text())
    rows = {r["model"]: r for r in report["backends"]}
    assert rows["model.trt"]["status"].startswith("skipped:")
    fp32 = rows["model.onnx"]
    assert fp32["status"] == "ok" and fp32["agreement"] >= 0.999 and fp32["passed"]
    assert fp32["logits"]["max_abs"] < 1e-3 and set(fp32["dice_vs_reference"]) == set(report["classes"])
    assert "vs_ground_truth" in fp32 and "lesion" in fp32 and "vs_ground_truth" in report["reference"]
    assert rows["model.fp16.onnx"]["precision"] == "fp16"
    assert proc.returncode == (0 if report["passed"] else 1)
    assert (out / "parity.md").read_text().count("|") > 20 and (out / "parity.png").stat().st_size > 1000
    strict = run_cli("bench", "parity", "--ckpt", trained, "--models", exported / "model.onnx", val,
                     "--out", tmp_path / "strict", "--min-agreement", "1.01", check=False)
    assert strict.returncode == 1 and "FAIL" in strict.stdout


@pytest.mark.mmseg
@pytest.mark.slow
def test_latency_report(exported, trained, prepared, tmp_path):
    out = tmp_path / "latency"
    run_cli("bench", "latency", "--models", exported / "model.onnx", "--ckpt", trained, "--sizes", "64x96",
            "--batch-sizes", "1", "--batch-sizes", "2", "--images", prepared / "images" / "val", "--mmseg-baseline",
            "--min-seconds", "0.05", "--out", out)
    report = json.loads((out / "latency.json").read_text())
    backends = {(e["backend"], e["batch"]) for e in report["entries"]}
    assert backends == {("onnxruntime", 1), ("onnxruntime", 2), ("pytorch", 1), ("pytorch", 2)}
    for entry in report["entries"]:
        for key in ("mean_ms", "std_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "throughput_ips"):
            assert entry[key] > 0 or key == "std_ms"
        assert entry["size"] == [64, 96]
    e2e = report["end_to_end"][0]
    assert set(e2e["stages_ms"]) == {"decode", "preprocess", "infer", "postprocess"} and e2e["speedup_vs_mmseg"] > 0
    assert report["mmseg_baseline"]["mean_ms"] > 0 and report["machine"]["cores"] >= 1
    assert "speed-up vs MMSeg" in (out / "latency.md").read_text() and (out / "latency.png").is_file()
    # every compute row says how close to the machine's limit it ran: FLOPs from the ONNX graph, the peak measured here
    assert report["machine"]["fp32_matmul"]["peak_gflops"] > 0 and "avx2" in report["machine"]["cpu_flags"]
    for entry in report["entries"]:
        assert entry["gflop"] > 0 and entry["gflops_per_s"] > 0 and entry["of_fp32_peak"] > 0
    assert "GFLOP/s" in (out / "latency.md").read_text() and "CPU flags" in (out / "latency.md").read_text()


@pytest.mark.parametrize("command", ["parity", "latency"])
def test_out_overlapping_an_input_is_refused(tmp_path, command):
    """The report folder may not be an input folder, nor hold a model or checkpoint (refused before any work)."""
    from click.testing import CliRunner

    from bcdeploy.cli import cli

    images, models = tmp_path / "images", tmp_path / "models"
    images.mkdir(), models.mkdir()
    (images / "a.png").write_bytes(b"x")
    (models / "model.onnx").write_bytes(b"x")
    ckpt = tmp_path / "iter_1.pth"
    ckpt.write_bytes(b"x")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    common = ["--ckpt", str(ckpt), "--models", str(models / "model.onnx")]
    for out in (images, models, tmp_path):
        args = ["bench", command, *common, "--out", str(out)]
        args += [str(images)] if command == "parity" else ["--images", str(images)]
        result = CliRunner().invoke(cli, args)
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert result.exit_code == 1 and len(errors) == 1 and str(out) in errors[0], result.output
    assert before == {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
