"""One policy for a label PNG that will not read: an error naming the file, in every consumer."""

import cv2
import numpy as np
import pytest

from bcdeploy.errors import InputError
from bcdeploy.eval.labels import read_label_png


def _label(path, value=1):
    cv2.imwrite(str(path), np.full((8, 6), value, np.uint8))
    return path


def test_a_label_reads_as_its_class_map(tmp_path):
    label = read_label_png(_label(tmp_path / "a.png", 2))
    assert label.shape == (8, 6) and label.dtype == np.uint8 and set(np.unique(label)) == {2}


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "cannot read"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n truncated"), "cannot read"),
    (lambda p: cv2.imwrite(str(p), np.zeros((4, 4, 3), np.uint8)), "3 channels"),
    (lambda p: None, "not found"),
])
def test_an_unreadable_label_is_an_error_naming_the_file(tmp_path, make, message):
    path = tmp_path / "IMG001.png"
    make(path)
    with pytest.raises(InputError, match=message) as err:
        read_label_png(path)
    assert str(path) in str(err.value)


def test_parity_no_longer_drops_an_unreadable_label(tmp_path):
    """bench parity used to read it as 'no label' and report metrics over fewer images."""
    from bcdeploy.bench.parity import _labels

    labels = tmp_path / "labels"
    labels.mkdir()
    _label(labels / "good.png")
    (labels / "broken.png").write_bytes(b"not a png")
    assert _labels(str(labels), [tmp_path / "good.tif", tmp_path / "unlabelled.tif"])[1] is None
    with pytest.raises(InputError, match="broken.png"):
        _labels(str(labels), [tmp_path / "good.tif", tmp_path / "broken.tif"])


def test_confusion_names_the_unreadable_file(tmp_path):
    from bcdeploy.eval.confusion import confusion_from_dirs

    preds, labels = tmp_path / "preds", tmp_path / "labels"
    preds.mkdir(), labels.mkdir()
    _label(preds / "a.png"), _label(labels / "a.png")
    assert confusion_from_dirs(preds, labels, 3)[1, 1] == 48
    (labels / "a.png").write_bytes(b"")
    with pytest.raises(InputError, match=str(labels / "a.png")):
        confusion_from_dirs(preds, labels, 3)
