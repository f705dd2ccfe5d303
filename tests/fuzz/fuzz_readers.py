"""Coverage-guided fuzzing of the readers that take bytes from outside (atheris, libFuzzer's engine):
`decode_image` on any bytes (TIFF, PNG, JPEG, DICOM and whatever else arrives) must return an image or
raise one BcDeployError; anything else is a finding. Run by `scripts/test.sh --fuzz [SECONDS]` with a
corpus seeded from generated files (seed_corpus); what it finds becomes a regression test.

    python tests/fuzz/fuzz_readers.py CORPUS_DIR -max_total_time=60
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["bcdeploy"]):
    from bcdeploy.errors import BcDeployError
    from bcdeploy.runtime.images.imageio import decode_image

MAX_PIXELS = 4_000_000  # small: the fuzzer is after logic errors, not memory limits


def test_one_input(data: bytes) -> None:
    try:
        image = decode_image(data, "fuzz.bin", max_pixels=MAX_PIXELS)
    except BcDeployError:
        return
    if image.bgr.ndim != 3 or image.bgr.shape[2] != 3:
        raise AssertionError(f"decode_image returned {image.bgr.shape}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
