import hashlib

import cv2
import numpy as np
import pytest

from bcdeploy.data.metadata import group_by_image, read_metadata
from bcdeploy.data.synth import synthesize
from bcdeploy.errors import InputError


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_figshare_layout_matches_dmid_form(dmid):
    images = sorted((dmid / "TIFF Images").glob("*.tif"))
    masks = sorted((dmid / "ROI Masks").glob("*.tif"))
    assert len(images) == 16 and (dmid / "Info.txt").is_file() and (dmid / "Metadata.xlsx").is_file()
    rows = group_by_image(read_metadata(dmid / "Info.txt"))
    abnormal = {i for i, r in rows.items() if not r[0].is_normal}
    assert {m.stem for m in masks} == abnormal, "normal images must have no mask file"
    img = cv2.imread(str(images[0]), cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint8 and img.shape[2] == 4
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    mask = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    assert mask.shape[2] == 4 and set(np.unique(mask)) <= {0, 255}
    assert mask.shape[:2] == cv2.imread(str(dmid / "TIFF Images" / masks[0].name), cv2.IMREAD_UNCHANGED).shape[:2]


def test_xlsx_and_info_txt_agree(dmid):
    txt = read_metadata(dmid / "Info.txt")
    xlsx = read_metadata(dmid / "Metadata.xlsx")
    key = lambda r: (r.image_id, r.abnormality, r.severity, r.x, r.y, r.radius)  # noqa: E731
    assert sorted(map(key, txt), key=str) == sorted(map(key, xlsx), key=str)
    assert all(r.view for r in xlsx)


@pytest.mark.parametrize("layout", ["original", "seed"])  # `seed`: the old name, kept for old command lines
def test_original_layout(tmp_path, layout):
    synthesize(tmp_path, count=6, min_size=300, max_size=340, layout=layout, seed=3, workers=1)
    assert len(list((tmp_path / "tiff_images").glob("*.tif"))) == 6
    rows = read_metadata(tmp_path / "metadata" / "metadata.csv")
    with_lesion = {r.image_id for r in rows if not r.is_normal}
    assert {p.stem for p in (tmp_path / "ground_truth").glob("*.png")} == with_lesion


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize(a, count=3, min_size=300, max_size=320, seed=7, workers=1)
    synthesize(b, count=3, min_size=300, max_size=320, seed=7, workers=2)
    synthesize(c, count=3, min_size=300, max_size=320, seed=8, workers=1)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_size_range_is_respected(tmp_path):
    cases = synthesize(tmp_path, count=4, min_size=300, max_size=310, workers=1)
    assert all(300 <= c.height <= 310 and c.width < c.height for c in cases)


@pytest.mark.parametrize("kwargs", [dict(layout="dicom"), dict(min_size=100), dict(max_size=200, min_size=300)])
def test_bad_options(tmp_path, kwargs):
    with pytest.raises(InputError):
        synthesize(tmp_path, **{"count": 1, **kwargs})


def test_metadata_xlsx_does_not_carry_the_time_of_writing():
    """openpyxl stamps the save time into docProps/core.xml; two writes a second apart must still be equal."""
    import time

    from bcdeploy.data.synth import metadata_xlsx

    first = metadata_xlsx([], "top")
    time.sleep(1.1)
    assert metadata_xlsx([], "top") == first
