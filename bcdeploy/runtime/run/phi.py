"""`--no-phi`: reports without patient, study, series or instance identifiers, and without paths.

The ledger keeps them: it is the run's private state, the record that binds each output to its
source (a PACS instance is known by its SOP Instance UID only), it stays in the output folder beside
the masks of the same patients, and a re-run must find what it bound. What leaves the folder is a
report, so the reports (results.json, lesions.csv) are what --no-phi cleans:
- No path at all: archives are laid out as `<PatientName>/<Accession>_L_CC.dcm`, so a path, an output
  path or a name derived from one is an identifier. Each image is named by a pseudonym derived from its
  identity instead (`report_name`): the first 16 hex digits of the SHA-256 of its SOP Instance UID for
  a DICOM image (as a PACS run names its outputs), else of the image's bytes (a PNG, or a DICOM file that
  could not be read as one); an argument that gave no file is `input-N`. Reproducible (the same image
  gets the same name in every run, on every machine), not reversible without the UID or the bytes.
- The identifying DICOM tags (IDENTIFYING_TAGS) are dropped, and every identifier value an image
  carries or the source knows is replaced by `[removed]` where it still stands in text (a failure
  message) as a whole value only: patient ID `png` leaves `x.png` alone.
Failure rows get the same treatment: a patient whose images all failed has no tags, but its rows have
no path either.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

# Tags (runtime/images/dicom.py::dicom_tags keys) that identify a patient, a study or an instance: left out of
# every report with --no-phi.
IDENTIFYING_TAGS = ("patient_id", "study_instance_uid", "series_instance_uid", "sop_instance_uid",
                    "frame_of_reference_uid", "study_date", "study_time", "content_date", "content_time")
REMOVED = "[removed]"
MIN_LENGTH = 3


def strip_identifiers(tags: dict[str, Any] | None) -> dict[str, Any] | None:
    """The tags without patient, study, series, instance or frame-of-reference identifiers (--no-phi)."""
    if tags is None:
        return None
    return {k: v for k, v in tags.items() if k not in IDENTIFYING_TAGS}


def row_identifiers(rows: Iterable[dict[str, Any]]) -> set[str]:
    """Every identifying tag value recorded in the ledger rows' image JSON."""
    found = set()
    for row in rows:
        tags = json.loads(row.get("image") or "{}").get("tags") or {}
        found.update(str(tags[k]) for k in IDENTIFYING_TAGS if tags.get(k))
    return found


def pseudonym(value: str | bytes) -> str:
    """The first 16 hex digits of the SHA-256 of `value` (a SOP Instance UID, or an image's bytes)."""
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()[:16]


def report_name(row: dict[str, Any]) -> str | None:
    """An image's name in a --no-phi report (module docstring); None when nothing of it was read."""
    tags = json.loads(row.get("image") or "{}").get("tags") or {}
    if tags.get("sop_instance_uid"):
        return pseudonym(str(tags["sop_instance_uid"]))
    return row["sha256"][:16] if row.get("sha256") else None  # == pseudonym(the bytes)


def deidentify(results: dict[str, Any], rows: list[dict[str, Any]], identifiers: set[str]) -> dict[str, Any]:
    """results.json's content (reports.py) as --no-phi shows it; `rows`: every ledger row of the folder."""
    names = _unique_names(rows)
    aliases: dict[str, str] = {}  # whole values that stand for an image (its paths and output name) -> its name
    for row in rows:
        for key in ("source", "path", "name"):
            if row.get(key) and len(str(row[key])) >= MIN_LENGTH:
                aliases[str(row[key])] = names[row["source"]]
    images = [_image_entry(entry, names[entry["file"]]) for entry in results["images"]]
    inputs = iter(range(1, len(results["failed"]) + 1))
    failed = []
    for failure in results["failed"]:
        name = aliases.get(failure["file"]) or f"input-{next(inputs)}"
        aliases.setdefault(failure["file"], name)
        failed.append({"file": name, "error": failure["error"]})
    missing = [{"name": names[e["file"]], "file": names[e["file"]]} for e in results["outputs_missing"]]
    clean = {**results, "images": images, "failed": failed, "outputs_missing": missing}
    return _replace_whole_values(clean, aliases, identifiers)


def _unique_names(rows: list[dict[str, Any]]) -> dict[str, str]:
    """source -> report name; two sources of one identity (a file copied twice) get `~2`, `~3`..."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for index, row in enumerate(sorted(rows, key=lambda r: r["name"]), 1):
        base = report_name(row) or f"unread-{index}"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}~{n}"
        taken.add(name)
        names[row["source"]] = name
    return names


def _image_entry(entry: dict[str, Any], name: str) -> dict[str, Any]:
    entry = {**entry, "name": name, "file": name,
             "source": {k: v for k, v in entry["source"].items() if k != "path"},
             "outputs": {kind: {k: v for k, v in record.items() if k != "path"}
                         for kind, record in entry["outputs"].items()}}
    if isinstance(entry.get("tags"), dict):
        entry["tags"] = strip_identifiers(entry["tags"])
    return entry


def _replace_whole_values(value: Any, aliases: dict[str, str], identifiers: set[str]) -> Any:
    """Every string of `value` (JSON data) with aliases replaced by their names and identifiers by
    REMOVED, each only where it stands as a whole value: not inside a longer word, number or UID."""
    pattern = _whole_value_pattern([*aliases, *identifiers])
    if pattern is None:
        return value

    def replace(text: str) -> str:
        return pattern.sub(lambda m: aliases.get(m.group(0), REMOVED), text)

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        return replace(item) if isinstance(item, str) else item

    return walk(value)


def _whole_value_pattern(values: list[str]) -> re.Pattern | None:
    """One regex for `values`, longest first (UIDs share prefixes), each bounded by neither a letter or
    digit nor a `.`/`-`/`^` joined to one (so `png` is not found in `x.png`, nor `1.2.3` in `1.2.3.4`)."""
    usable = sorted({v for v in values if len(v) >= MIN_LENGTH}, key=len, reverse=True)
    if not usable:
        return None
    body = "|".join(re.escape(v) for v in usable)
    return re.compile(rf"(?<![\w])(?<![\w][.\-^])(?:{body})(?![\w])(?![.\-^][\w])")
