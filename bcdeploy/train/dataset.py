"""`BreastCancerDataset`, registered in MMSeg's DATASETS through MMEngine's custom_imports.

Configs say `custom_imports = dict(imports=['bcdeploy.train.dataset'])`, so stock MMSeg tools
(tools/train.py, tools/test.py) work with our configs unchanged.
"""

from __future__ import annotations

from bcdeploy.train import mmseg_compat

mmseg_compat.install()

from mmseg.datasets import BaseSegDataset  # noqa: E402 - the shim must come first
from mmseg.registry import DATASETS  # noqa: E402

CLASSES_3 = ("background", "benign", "malignant")
PALETTE_3 = [[0, 0, 0], [0, 255, 0], [255, 0, 0]]


@DATASETS.register_module(force=True)
class BreastCancerDataset(BaseSegDataset):
    """DMID prepared by `bcdeploy prepare`: images/{train,val}/*.jpg|png, annotations/*/*.png.

    Class indices are 0 background, 1 benign, 2 malignant (or 0/1 background/tumor with
    `metainfo=dict(classes=('background', 'tumor'), ...)` in the config).
    """

    METAINFO = dict(classes=CLASSES_3, palette=PALETTE_3)

    def __init__(self, img_suffix: str = ".jpg", seg_map_suffix: str = ".png", reduce_zero_label: bool = False, **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, reduce_zero_label=reduce_zero_label, **kwargs)
