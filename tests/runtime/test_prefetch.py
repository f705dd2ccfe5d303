"""The first image decoded while the model opens (runtime/run/prefetch.py) is used only when it was
decoded from the very bytes the run reads and binds its result to; otherwise the run decodes as always.
Real runs with a real onnxruntime model; outputs compared byte for byte with runs without prefetch."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bcdeploy.fileio import sha256_file
from bcdeploy.runtime.run import RunOptions, run
from bcdeploy.runtime.run.prefetch import FirstImagePrefetch
from bcdeploy.runtime.segmenter import Segmenter
from tests.runtime.tiny_models import description, write_onnx, write_sidecar


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    path = write_onnx(tmp_path / "model.onnx")
    write_sidecar(path, description())
    return path


def picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def outputs(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): sha256_file(p) for p in sorted((out / "masks").rglob("*.png"))}


def segment(model: Path, images: Path, out: Path, prefetch: FirstImagePrefetch | None = None):
    with Segmenter(model) as segmenter:
        return run(segmenter, [images], RunOptions(out=out, prefetch=prefetch))


def test_prefetched_first_image_gives_the_same_outputs(model: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f"case{i}.png"), picture(i))
    prefetch = FirstImagePrefetch([images], recursive=False, max_pixels=10**6, frame=None)
    with_prefetch = segment(model, images, tmp_path / "a", prefetch)
    without = segment(model, images, tmp_path / "b")
    assert prefetch.used and with_prefetch.processed == without.processed == 3
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b") and len(outputs(tmp_path / "a")) == 3


def test_bytes_changed_after_the_prefetch_are_decoded_again(model: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    first = images / "case0.png"
    cv2.imwrite(str(first), picture(1))
    prefetch = FirstImagePrefetch([images], recursive=False, max_pixels=10**6, frame=None)
    prefetch._thread.join()  # the prefetch has decoded the old bytes
    cv2.imwrite(str(first), picture(2))  # another scan under the same name
    segment(model, images, tmp_path / "a", prefetch)
    reference = tmp_path / "fresh"
    reference.mkdir()
    cv2.imwrite(str(reference / "case0.png"), picture(2))
    segment(model, reference, tmp_path / "b")
    assert not prefetch.used
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")


def test_an_undecodable_first_file_is_one_failure_as_without_prefetch(model: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "a_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    cv2.imwrite(str(images / "b_fine.png"), picture(3))
    prefetch = FirstImagePrefetch([images], recursive=False, max_pixels=10**6, frame=None)
    with_prefetch = segment(model, images, tmp_path / "a", prefetch)
    without = segment(model, images, tmp_path / "b")
    assert not prefetch.used
    assert with_prefetch.processed == without.processed == 1
    assert [f["file"] for f in with_prefetch.failed] == [f["file"] for f in without.failed] and len(without.failed) == 1
