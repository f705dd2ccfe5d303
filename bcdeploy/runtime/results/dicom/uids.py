"""New DICOM UIDs without pydicom: `2.25.` followed by a random UUID as an integer (PS3.5 B.2).

The run loop names a new series per DICOM output kind while the reader thread may be importing pydicom
for the first file (it is read while the model opens); importing pydicom's UID module on a second
thread at that moment fails inside pydicom's own import cycle ("partially initialized module"). A UUID
UID needs no import, no registered root, and is what PS3.5 B.2 provides for exactly this.
"""

from __future__ import annotations

import uuid


def new_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"
