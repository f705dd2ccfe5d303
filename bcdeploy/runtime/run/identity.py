"""What a result is bound to, and the one rule that lets a re-run skip an image.

A result is bound to its source (resolved path, size, modification time, SHA-256 of the bytes that
were decoded), to the model (its file's SHA-256) and to every option that changes masks
(`describe()["mask_options"]` of the predictor), plus the overlay's target label. A re-run skips an
image only when all of these match its ledger row AND each output file still has the size and
SHA-256 recorded when it was written. Anything else (a 0-byte leftover, another patient's file under
the same name, another model) is recomputed.

Hashing costs almost nothing: the bytes are in memory anyway, because they are decoded from there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcdeploy.fileio import read_input, sha256_file
from bcdeploy.runtime.spans import StageSpan, stage_span


@dataclass(frozen=True)
class SourceIdentity:
    path: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class ModelIdentity:
    sha256: str
    mask_options: str  # canonical JSON

    @classmethod
    def of(cls, description: dict[str, Any]) -> "ModelIdentity":
        return cls(str(description.get("sha256", "")), canonical(description.get("mask_options", {})))


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def read_source(path: Path, source: Path) -> tuple[bytes, SourceIdentity, list[StageSpan]]:
    """The file's bytes, identity and the read and hash spans; size and mtime come from the open file, so
    they describe the bytes that were read even if the file is replaced meanwhile."""
    spans: list[StageSpan] = []
    with stage_span("read", spans):
        data, st = read_input(path)
    with stage_span("hash", spans):
        digest = hashlib.sha256(data).hexdigest()
    return data, SourceIdentity(str(source), len(data), st.st_mtime_ns, digest), spans


def output_record(relative: str, data: bytes, *, sop_uid: str | None = None) -> dict[str, Any]:
    """What the ledger keeps of one written output; a DICOM result also carries the SOP Instance UID the
    writer minted for it, which is what a receiver (the outbox, a PACS) needs, so no one parses it back."""
    record = {"path": relative, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return record if sop_uid is None else {**record, "sop_uid": sop_uid}


def outputs_intact(out: Path, outputs: dict[str, dict] | None, name: str | None = None) -> bool:
    """Every recorded output exists with its recorded size and SHA-256, at the path `name` gives its
    kind (a row edited to name another image's outputs, with their true hashes, does not pass)."""
    from bcdeploy.runtime.results.outputs import KINDS_BY_KEY

    if not outputs:
        return False
    for kind, record in outputs.items():
        if name is not None and (kind not in KINDS_BY_KEY or record["path"] != KINDS_BY_KEY[kind].relative(name)):
            return False
        path = out / record["path"]
        try:
            if path.stat().st_size != record["size"]:
                return False
            if sha256_file(path) != record["sha256"]:
                return False
        except OSError:
            return False
    return True


def can_skip(row: dict[str, Any] | None, source: SourceIdentity, model: ModelIdentity, target: str | None,
             out: Path) -> bool:
    """The resume rule (module docstring)."""
    if row is None or row["status"] != "ok":
        return False
    same = (row["source"] == source.path and row["size"] == source.size and row["mtime_ns"] == source.mtime_ns
            and row["sha256"] == source.sha256 and row["model_sha256"] == model.sha256
            and row["mask_options"] == model.mask_options and row["target"] == target)
    return same and outputs_intact(out, json.loads(row["outputs"] or "null"), row["name"])
