"""A PACS as the input source of a run (`bcdeploy infer --dicomweb URL`): the same run loop, inputs
fetched over DICOMweb instead of read from files; the DICOM results go back through the outbox.

- Names: `<StudyUID>/<SeriesUID>/<SOPUID>`, so masks/, vis/ and seg/ mirror the PACS hierarchy. With
  --no-phi each UID is replaced by the first 16 hex digits of its SHA-256 (stable, not reversible
  without the UID), so no output name carries an identifier.
- Identity: the ledger key is `dicomweb:<SOP Instance UID>` (an instance is the same object on any
  server, by DICOM's definition), bound to the SHA-256 of the fetched bytes; a re-run fetches again,
  and skips when the bytes and the outputs are unchanged. The modification time is 0 (a PACS has none
  to give): the hash alone decides.
- Delivery is not the source's: every DICOM object written for an image (seg/, sr/, sc/<name>.dcm; a PACS
  run always writes the SEG) is queued in the outbox with the image's row (runtime/run/outbox.py) and
  stored with STOW-RS after the run (pacs/sender.py): a PACS that refuses or is down fails no image, and
  the same command run again sends what is still due without segmenting anything again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from bcdeploy.pacs.dicomweb import DicomWebPacs, InstanceRef, plan_fetch
from bcdeploy.runtime.run.identity import SourceIdentity
from bcdeploy.runtime.run.inputs import InputFailure, InputItem
from bcdeploy.runtime.run.phi import pseudonym
from bcdeploy.runtime.spans import StageSpan, stage_span

KEY_PREFIX = "dicomweb:"


class PacsSource:
    """The mammograms of `study_uids` (None: every study holding MG images) on the DICOMweb server `url`."""

    def __init__(self, url: str, study_uids: Sequence[str] | None = None, *, no_phi: bool = False,
                 timeout: float = 30.0) -> None:
        self.url, self.study_uids, self.no_phi = url, list(study_uids or []) or None, no_phi
        self._fetcher = DicomWebPacs(url, timeout=timeout)
        self._refs: dict[str, InstanceRef] = {}

    def plan(self) -> list[InstanceRef]:
        """What a run fetches (`--dry-run` prints it)."""
        return plan_fetch(self._fetcher, self.study_uids)

    def find(self) -> tuple[list[InputItem], list[InputFailure]]:
        refs = self.plan()
        failures = []
        if self.study_uids:
            found = {r.study_uid for r in refs}
            failures = [InputFailure(self._show(uid), f"{self.url}: study {self._show(uid)} holds no mammogram (MG) instance")
                        for uid in self.study_uids if uid not in found]
        items = []
        for ref in refs:
            key = KEY_PREFIX + ref.sop_uid
            self._refs[key] = ref
            name = "/".join(map(self._show, (ref.study_uid, ref.series_uid, ref.sop_uid)))
            display = f"dicomweb/{name}" if self.no_phi else ref.path()
            items.append(InputItem(PurePosixPath(display), key, PurePosixPath(name), self.url))
        return items, failures

    def read(self, item: InputItem) -> tuple[bytes, SourceIdentity, list[StageSpan]]:
        spans: list[StageSpan] = []
        with stage_span("read", spans):  # the fetch from the PACS is this source's read
            data = self._fetcher.fetch(self._refs[str(item.source)])
        with stage_span("hash", spans):
            digest = hashlib.sha256(data).hexdigest()
        return data, SourceIdentity(str(item.source), len(data), 0, digest), spans

    def local_paths(self) -> Sequence[str | Path]:
        return []

    def identifiers(self) -> set[str]:
        return {uid for ref in self._refs.values() for uid in (ref.study_uid, ref.series_uid, ref.sop_uid)}

    def describe(self) -> str:
        studies = f" (studies {', '.join(map(self._show, self.study_uids))})" if self.study_uids else ""
        return f"{self.url}{studies}"

    def _show(self, uid: str) -> str:
        return pseudonym(uid) if self.no_phi else uid
