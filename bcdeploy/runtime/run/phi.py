"""`--no-phi`: reports without patient, study, series or instance identifiers.

The ledger keeps them: it is the record that binds each output to its source (a PACS instance is
known by its SOP Instance UID only), it stays in the output folder beside the masks of the same
patients, and a re-run must find what it bound. What leaves the folder is a report, so the reports
(results.json, lesions.csv) are what --no-phi cleans: the identifying DICOM tags are dropped, and
every identifier value any image carries (or the input source knows, e.g. the UIDs a PACS names
instances by) is replaced by `[removed]` wherever else it appears: a file path, a failure line, an
output name. Values shorter than MIN_LENGTH are left alone (a one-character patient ID would
otherwise blank every digit); a PACS run under --no-phi names outputs by hashes of the UIDs instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

# Tags (runtime/dicom.py::dicom_tags keys) that identify a patient, a study or an instance: left out of
# every report with --no-phi.
IDENTIFYING_TAGS = ("patient_id", "study_instance_uid", "series_instance_uid", "sop_instance_uid",
                    "frame_of_reference_uid")
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


def scrub(value: Any, identifiers: set[str]) -> Any:
    """`value` (JSON data) with identifying tags dropped and identifier values replaced, recursively."""
    if isinstance(value, dict):
        if "tags" in value and isinstance(value["tags"], dict):
            value = {**value, "tags": strip_identifiers(value["tags"])}
        return {k: scrub(v, identifiers) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, identifiers) for v in value]
    if isinstance(value, str):
        for identifier in sorted(identifiers, key=len, reverse=True):  # longest first: UIDs share prefixes
            if len(identifier) >= MIN_LENGTH:
                value = value.replace(identifier, REMOVED)
    return value
