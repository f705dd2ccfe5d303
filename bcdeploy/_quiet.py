"""Quiet by default: a command's user sees bcdeploy's own lines (`error: ...`, progress, tables, our
log records) and nothing the libraries print; `bcdeploy --verbose ...` or BCDEPLOY_VERBOSE=1 shows
their output again.

What prints, and how each is silenced:
* OpenCV's `[ WARN:0@...]` / `[ERROR:0@...]` lines: OPENCV_LOG_LEVEL=SILENT, which OpenCV reads when
  it first logs (set in the environment, so Ray workers started by `serve` inherit it too).
* libpng's `libpng error: ...` / `libpng warning: ...`, libtiff, onnxruntime's and OpenVINO's C++
  logs, absl/gRPC's `WARNING: All log messages before absl::InitializeLog()...`: C code writing to
  file descriptor 2 with no switch that reaches all of them. While a command runs, descriptor 2 goes
  to /dev/null and Python's `sys.stderr` moves to a duplicate of the real stderr, so everything
  bcdeploy prints (and any traceback of a bug) still shows. Only for a real process: under a test
  runner that captured stderr, nothing is redirected.
* mmcv/mmseg/mmengine UserWarnings that every torch command prints (mmcv-lite's missing
  MultiScaleDeformableAttention, mmseg's `build_loss` deprecation, ...), onnxruntime's and
  OpenVINO's Python warnings, highdicom's and pydicom's (a person name in one component, a value
  invalid for its VR; pydicom's logger too): ignored by the module that issues them; numpy's
  RuntimeWarnings (attributed to the calling line) by category. bcdeploy checks
  DICOM attributes by its own rules and says in one line what it repaired (runtime/results/dicom/source.py).
"""

from __future__ import annotations

import faulthandler
import io
import logging
import os
import sys
import warnings
from collections.abc import Callable

VERBOSE_ENV = "BCDEPLOY_VERBOSE"
_LIBRARY_MODULES = r"(mmcv|mmseg|mmengine|onnxruntime|openvino|highdicom|pydicom)(\.|$)"
_QUIET_ENV = {"OPENCV_LOG_LEVEL": "SILENT", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "2",
              "TF_CPP_MIN_LOG_LEVEL": "2"}


def verbose_requested(flag: int | bool) -> bool:
    """`--verbose`, or BCDEPLOY_VERBOSE set to anything but empty/0/false/no."""
    env = os.environ.get(VERBOSE_ENV, "").strip().lower()
    return bool(flag) or env not in ("", "0", "false", "no")


def silence_libraries() -> Callable[[], None]:
    """Silence what the libraries print for the rest of this command; returns the undo."""
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)  # a user's own setting wins
    warnings.filterwarnings("ignore", module=_LIBRARY_MODULES)
    # numpy's RuntimeWarnings (overflow, invalid value) are attributed to the calling line, ours: by
    # category, then. What they warn of is handled where it matters (non-finite values are refused or
    # written as null), and a user reads `RuntimeWarning: invalid value encountered` as a crash.
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    # pydicom also logs what it warns about ("WARNING pydicom: Invalid value for VR ..."): files are
    # checked by bcdeploy's own rules (runtime/results/dicom/source.py), which say what they repaired. It logs a
    # traceback at ERROR for each decoding plugin that failed on a corrupt image, before raising one
    # summary of them all: that summary is the image's failure line, so ERROR is silenced too.
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    # Ray 2.60 announces its token authentication on every start of a private local Ray: information
    # for cluster operators, not for someone segmenting a folder
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    if "cv2" in sys.modules and hasattr(sys.modules["cv2"], "setLogLevel"):
        sys.modules["cv2"].setLogLevel(0)  # already imported: the environment is read too late
    return _redirect_c_stderr()


def _redirect_c_stderr() -> Callable[[], None]:
    try:
        if sys.stderr is None or sys.stderr.fileno() != 2:
            return _nothing  # a test runner or an embedding application owns stderr: leave it alone
        sys.stderr.flush()
        real = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return _nothing
    saved = sys.stderr
    sys.stderr = io.TextIOWrapper(os.fdopen(real, "wb", buffering=0), encoding=saved.encoding,
                                  errors=saved.errors, line_buffering=True, write_through=True)
    crash_report = faulthandler.is_enabled()
    faulthandler.enable(file=sys.stderr)  # a crash inside C still says where it happened
    os.dup2(devnull, 2)
    os.close(devnull)

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(real, 2)
        sys.stderr = saved
        if crash_report:
            faulthandler.enable(file=saved)
        else:
            faulthandler.disable()

    return restore


def _nothing() -> None:
    return None
