"""Import optional dependencies with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from bcdeploy.errors import DependencyError

_EXTRA_FOR = {
    "torch": "export",
    "mmengine": "export",
    "mmseg": "export",
    "mmcv": "export",
    "onnx": "export",
    "onnxslim": "export",
    "onnxruntime": "ort",
    "openvino": "openvino",
    "tensorrt": "trt",
    "cuda": "trt",
    "openpyxl": "data",
    "matplotlib": "bench",
    "highdicom": "dicom",
    "dicomweb_client": "pacs",
    "pynetdicom": "gateway",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` or raise DependencyError saying which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        extra = _EXTRA_FOR.get(top)
        hint = f"pip install 'bcdeploy[{extra}]'" if extra else f"pip install {top}"
        raise DependencyError(f"{purpose} needs the '{top}' package ({err}); install it with: {hint}") from err
