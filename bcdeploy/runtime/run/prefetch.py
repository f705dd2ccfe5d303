"""Decode the first image while the model opens.

Opening a model (reading and validating its sidecar, building the backend session) and decoding a
DMID-size TIFF take ~0.2 s each, one after the other: a one-image `infer` waits for both. Started
before the model opens, this decodes the first input on a thread of its own, and the run uses the
result only where it provably describes the same bytes: the reader reads and hashes the file again as
always (that read is what the ledger binds the result to), and the prefetched image is taken only
when its SHA-256 equals the one just read. Anything else (another file, changed bytes, a decode
error, a run that skips the image) discards it, and the reader decodes as it always did. Nothing is
reported from here: errors are the reader's to report, once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from bcdeploy.runtime.imageio import DecodedImage, decode_image
from bcdeploy.runtime.run.identity import SourceIdentity
from bcdeploy.runtime.run.inputs import InputItem
from bcdeploy.runtime.run.sources import FileSource

log = logging.getLogger(__name__)


class FirstImagePrefetch:
    """The first file input's decoded image, keyed by its resolved path and SHA-256."""

    def __init__(self, inputs: Sequence[str | Path], *, recursive: bool, max_pixels: int,
                 frame: int | None) -> None:
        self._source = FileSource(inputs, recursive)
        self._max_pixels, self._frame = max_pixels, frame
        self._found: tuple[str, str, DecodedImage] | None = None
        self.used = False
        self._thread = threading.Thread(target=self._decode, name="prefetch", daemon=True)
        self._thread.start()

    def _decode(self) -> None:
        try:
            items, _ = self._source.find()
            if not items:
                return
            item = items[0]
            data, identity, _ = self._source.read(item)
            image = decode_image(data, item.path, max_pixels=self._max_pixels, frame=self._frame)
            self._found = (str(item.source), identity.sha256, image)
        except Exception as err:  # noqa: BLE001 - the reader meets the same error and reports it
            log.debug("prefetch of the first image failed: %s", err)

    def take(self, item: InputItem, identity: SourceIdentity) -> DecodedImage | None:
        """The prefetched image when it was decoded from exactly these bytes (same file, same SHA-256),
        once; otherwise None. Waits for the prefetch to finish (it is the first image, so the reader would
        otherwise decode it now)."""
        self._thread.join()
        found, self._found = self._found, None
        if found is None or found[0] != str(item.source) or found[1] != identity.sha256:
            return None
        self.used = True
        return found[2]
