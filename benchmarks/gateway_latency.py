"""The DICOM node end to end: from the last instance of a study to its results in the PACS, and the node's memory.

Run from the repo root:  python benchmarks/gateway_latency.py [--model export/model.onnx] [--images 4]
Starts a real Orthanc (its DICOM port, on 127.0.0.1) as the PACS and `bcdeploy gateway` as a subprocess,
sends one study of DMID-size 12-bit mammograms (4084 x 3328) with DCMTK's storescu, and reports:
- seconds from storescu's return (the last instance stored) to every SEG, SR and SC in Orthanc, and that
  minus the --study-idle wait (the node's own work: read, segment, write, send);
- the node's resident memory idle (model open, nothing received) and its peak (VmHWM) after the study.
Without --model, a tiny ONNX graph built in code (tests/tiny_models.py): the time is then the node's
own, not a network's. Prints one JSON document, with this machine's CPU model and flags.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPE = (4084, 3328)  # rows x columns of a DMID mammogram


def _memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--study-idle", type=float, default=2.0)
    args = parser.parse_args()

    from bcdeploy.runtime.model.cpu import cpu_flags, cpu_model, flags_line
    from tests.gateway.conftest import Node
    from tests.gateway.test_gateway import results_in_pacs, study_uid_of, write_study
    from tests.orthanc_server import OrthancProcess
    from tests.tiny_models import description, write_onnx, write_sidecar

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = args.model
        if model is None:
            model = write_onnx(root / "model.onnx")
            write_sidecar(model, description())
        sources = write_study(root / "in", "BENCH", images=args.images, shape=SHAPE)
        (root / "pacs").mkdir()
        pacs = OrthancProcess(root / "pacs", dicom=True).start()
        node = Node(root / "node", model.resolve(), pacs, "--study-idle", str(args.study_idle))
        try:
            node.start()
            time.sleep(2.0)
            idle = _memory_kib(node.proc.pid)
            sent = node.storescu(*sources)
            stored = time.perf_counter()
            if sent.returncode != 0:
                sys.exit(f"storescu failed: {sent.stderr}")
            study = study_uid_of(sources[0])
            while True:
                found = results_in_pacs(pacs, study)
                if all(len(found.get(m, [])) >= len(sources) for m in ("SEG", "SR", "OT")):
                    break
                if time.perf_counter() - stored > 600:
                    sys.exit(f"results did not arrive within 600 s:\n{node.log()[-3000:]}")
                time.sleep(0.1)
            seconds = time.perf_counter() - stored
            after = _memory_kib(node.proc.pid)
        finally:
            node.stop()
            pacs.stop()
        storescu_version = subprocess.run(["storescu", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(json.dumps({
        "model": str(args.model or "tiny 1x1-conv ONNX (tests/tiny_models.py)"), "images": args.images,
        "shape": list(SHAPE), "study_idle_s": args.study_idle,
        "last_instance_to_results_in_pacs_s": round(seconds, 2),
        "node_work_s": round(seconds - args.study_idle, 2),
        "idle_rss_mib": round(idle["VmRSS"] / 1024, 1), "peak_rss_mib": round(after["VmHWM"] / 1024, 1),
        "cpu": cpu_model(), "flags": flags_line(cpu_flags()), "storescu": storescu_version}, indent=1))


if __name__ == "__main__":
    main()
