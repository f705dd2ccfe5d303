"""Per-study outputs: the Mammography CAD SR of each study a run touched, written when the run is done.

A CAD SR describes a whole study (every view, failed ones included), so it is made from the ledger, not
from one image in memory: at the end of a run (`infer` over a folder or a PACS, `infer --ray`, and each
run the DICOM node makes of a study once it fell idle), every study with an image settled by this run
gets its CAD SR (re)written from all of that study's rows in the ledger, earlier runs' included. Each
row carries what the report needs (dicom_tags, and the study's checked Patient/Study header, which
results.json never shows). The file is `cad/<Study Instance UID>.dcm`; the ledger's `studies` table
binds it to its study and its hash, and the outbox sends it where the run's results go.

A study whose CAD SR cannot be made is one failure line of the run; the run's other results stand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcdeploy.errors import OutputError
from bcdeploy.fileio import write_bytes
from bcdeploy.runtime.run.ledger import Ledger
from bcdeploy.runtime.run.outbox import inside
from bcdeploy.runtime.run.work import describe_error

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class OperatingPoint:
    """The lesion score at which CAD marks become 'Presentation Required', and where it came from."""

    threshold: float
    origin: str  # "--cad-threshold" | "the model's sidecar (...)" | "the default"

    @classmethod
    def choose(cls, asked: float | None, sidecar: dict[str, Any] | None) -> OperatingPoint:
        """--cad-threshold, else the threshold `bcdeploy test --cad-fp-per-image` wrote into the model's
        sidecar (checked by its schema when the model was loaded: sidecar_schema.OperatingPointSchema),
        else 0.5, said as such."""
        if asked is not None:
            return cls(float(asked), "--cad-threshold")
        point = (sidecar or {}).get("cad")
        if point:
            return cls(float(point["threshold"]), f"the model's sidecar ({point['fp_per_image']} false marks per "
                                                  f"image on {point['images']} images)")
        return cls(DEFAULT_THRESHOLD, "the default (no operating point in the model's sidecar)")


def file_name(study_uid: str) -> str:
    """A study's file name: its UID where it is one (digits and dots), else a hash of it (a header can
    hold anything, and a name must stay inside the output folder)."""
    if _UID.match(study_uid) and len(study_uid) <= 64:
        return study_uid
    return "study-" + hashlib.sha256(study_uid.encode()).hexdigest()[:16]


def write_study_outputs(out: Path, ledger: Ledger, run_id: int, *, algorithm: Any, point: OperatingPoint,
                        series_uid: str, sources: set[str]) -> list[str]:
    """The CAD SR of each study with an image among this run's `sources` (ledger keys; skipped ones
    too); returns one line per study that could not be made. A study whose report would be made from
    exactly what its current one was made from (same rows, operating point and model: `basis`), and
    whose file is intact, keeps it: a re-run sends a PACS no second report of the same findings."""
    from bcdeploy.runtime.results.dicom.cad import CadImage, cad_bytes
    from bcdeploy.runtime.results.dicom.source import header_dataset
    from bcdeploy.runtime.results.dicom.uids import new_uid

    studies: dict[str, list[dict[str, Any]]] = {}
    touched: set[str] = set()
    for row in ledger.rows():
        image = json.loads(row.get("image") or "{}")
        study = (image.get("tags") or {}).get("study_instance_uid")
        if study:
            studies.setdefault(study, []).append({**row, "image": image})
            if row["source"] in sources:
                touched.add(study)
    current = {r["study_uid"]: r for r in ledger.studies() if r["kind"] == "cad"}
    failures = []
    for study in sorted(touched):
        rows = studies[study]
        try:
            images = [image for image in (CadImage.from_record(r["image"], json.loads(r.get("lesions") or "[]"),
                                                              r["error"] if r["status"] == "failed" else None)
                                          for r in rows) if image is not None]
            if not images:
                continue
            basis = _basis(rows, point, algorithm)
            if _unchanged(out, current.get(study), basis):
                continue
            header = header_dataset(next((r["image"].get("study_header") for r in rows
                                          if r["image"].get("study_header")), None))
            sop_uid = new_uid()
            data = cad_bytes(images, header, study_uid=study, algorithm=algorithm, threshold=point.threshold,
                             uids=(series_uid, sop_uid))
            relative = f"cad/{file_name(study)}.dcm"
            write_bytes(out / relative, data)
            ledger.save_study({"study_uid": study, "kind": "cad", "path": relative,
                               "sha256": hashlib.sha256(data).hexdigest(), "sop_uid": sop_uid,
                               "images": len(images), "failed": sum(i.error is not None for i in images),
                               "run_id": run_id, "written": time.time(), "basis": basis})
        except OSError as err:  # a disk that cannot take the file stops the run's closing, as for an image
            raise OutputError(f"{out / 'cad'}: cannot write the CAD SR of study {study} "
                              f"({err.strerror or err})") from None
        except Exception as err:  # noqa: BLE001 - one study's report is one failure line
            line = describe_error(f"study {study}", err, "writing its CAD SR")
            ledger.add_failure(run_id, f"study {study}", line)
            failures.append(line)
    return failures


def _basis(rows: list[dict[str, Any]], point: OperatingPoint, algorithm: Any) -> str:
    """What a study's report is made from, as one hash: each row's source, bytes, model, lesions, case
    score and failure, the operating point and the algorithm."""
    facts = sorted([r["source"], r["sha256"], r["model_sha256"], r["status"], r.get("lesions"), r.get("error"),
                    r["image"].get("case_score")] for r in rows)
    text = json.dumps([facts, point.threshold, [algorithm.name, algorithm.version, algorithm.checkpoint_sha256]],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _unchanged(out: Path, record: dict[str, Any] | None, basis: str) -> bool:
    if record is None or record["basis"] != basis or not inside(record["path"]):
        return False  # (a path an edited ledger points outside the folder is never read: made anew)
    try:
        return hashlib.sha256((out / record["path"]).read_bytes()).hexdigest() == record["sha256"]
    except OSError:
        return False
