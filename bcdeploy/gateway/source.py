"""A study's spooled instances as the input source of a run: the gateway drives the same run pipeline
as `infer` (reader, model, writer, ledger, resume rule), with these instead of files on the command line.

Names mirror the DICOM hierarchy (`<study>/<series>/<instance>`), like a DICOMweb run's; the ledger key
is `dimse:<SOP Instance UID>`, bound to the SHA-256 of the bytes received, so an instance sent again
with other bytes is segmented again and one sent again unchanged is not. Delivery is not the run's
job: the run queues the results in the outbox in the transaction that commits the row
(runtime/run/outbox.py), and the sender sends them, so a PACS that is down never fails an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from bcdeploy.gateway.spool import Instance
from bcdeploy.runtime.run.identity import SourceIdentity, read_source
from bcdeploy.runtime.run.inputs import InputFailure, InputItem
from bcdeploy.runtime.spans import StageSpan

KEY_PREFIX = "dimse:"


def source_key(sop_uid: str) -> str:
    return KEY_PREFIX + sop_uid


class SpoolSource:
    def __init__(self, study_uid: str, instances: Sequence[Instance]) -> None:
        self.study_uid, self.instances = study_uid, list(instances)

    def find(self) -> tuple[list[InputItem], list[InputFailure]]:
        return [InputItem(i.path, source_key(i.sop_uid), PurePosixPath(i.study_uid, i.series_uid, i.sop_uid),
                          f"study {i.study_uid}") for i in self.instances], []

    def read(self, item: InputItem) -> tuple[bytes, SourceIdentity, list[StageSpan]]:
        data, identity, spans = read_source(item.path, item.source)
        # The spool file's mtime is when it arrived, not what it is: the hash alone decides (a study sent
        # twice is not segmented twice).
        return data, SourceIdentity(identity.path, identity.size, 0, identity.sha256), spans

    def local_paths(self) -> Sequence[str | Path]:
        return [i.path for i in self.instances]

    def identifiers(self) -> set[str]:
        return {uid for i in self.instances for uid in (i.study_uid, i.series_uid, i.sop_uid)}

    def describe(self) -> str:
        return f"study {self.study_uid}"
