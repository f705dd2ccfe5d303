"""Load checkpoints without letting them run code.

torch's weights-only unpickler calls only allow-listed globals, but it is only as safe as its least
safe entry: an allow-listed `getattr` reaches `exec`, and a class whose `__setstate__` or constructor
touches module globals lets a pickle rewire them. So nothing generic is allowed here.

MMEngine Runner checkpoints (what `bcdeploy train` writes) pickle, besides tensors and containers:
the message hub's `HistoryBuffer`s, numpy arrays, dtypes and scalars, and `getattr(HistoryBuffer,
'min')` for the buffers' statistics methods. Each of those globals is mapped to a data-only stand-in
(torch accepts `(substitute, "module.Name")` pairs): a stand-in checks its arguments, stores them and
calls nothing. After unpickling, `_realize` builds real objects from the checked data alone: numpy
arrays by `np.frombuffer` with a plain numeric dtype, history buffers through their constructor.

Export and inference need only `state_dict` and `meta`; the rest (message hub, optimizer, schedulers)
is dropped there. `train --resume` gets the full checkpoint through `mmengine_loads_data_only()`, which
routes MMEngine's own local loads through this module as well.
"""

from __future__ import annotations

import contextlib
import logging
import math
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bcdeploy.errors import InputError

log = logging.getLogger(__name__)
_NUMBER_CODES = frozenset("b1 i1 i2 i4 i8 u1 u2 u4 u8 f2 f4 f8 c8 c16".split())
_BYTE_ORDERS = frozenset("<>|=")
_STATISTICS = frozenset({"min", "max", "current", "mean"})  # HistoryBuffer's built-in statistics
_INFERENCE_KEYS = ("state_dict", "meta")


def _refuse(message: str) -> None:
    raise pickle.UnpicklingError(message)


class _DTypeData:
    """Stands in for `numpy.dtype(code, align, copy)` + BUILD: plain number types only."""

    __slots__ = ("code", "byteorder")

    def __init__(self, code: Any = None, align: Any = False, copy: Any = True) -> None:
        if not isinstance(code, str) or code not in _NUMBER_CODES:
            _refuse(f"numpy dtype {code!r} is not a plain number type")
        self.code, self.byteorder = code, "="

    def __setstate__(self, state: Any) -> None:
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[1] in _BYTE_ORDERS
                and state[2] is None and state[3] is None and state[4] is None):
            _refuse("numpy dtype state is not that of a plain number type")
        self.byteorder = state[1]

    def realize(self):
        import numpy as np

        return np.dtype(self.code).newbyteorder(self.byteorder)


class _ArrayData:
    """Stands in for `numpy.ndarray` (as `_reconstruct`'s first argument) and the array BUILD."""

    __slots__ = ("shape", "dtype", "fortran", "raw")

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            _refuse("numpy array state is not (version, shape, dtype, fortran, bytes)")
        _, shape, dtype, fortran, raw = state
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)
                and isinstance(dtype, _DTypeData) and isinstance(fortran, bool) and isinstance(raw, bytes)):
            _refuse("numpy array state must hold a shape, a plain number dtype and raw bytes (no objects)")
        self.shape, self.dtype, self.fortran, self.raw = shape, dtype, fortran, raw

    def realize(self):
        import numpy as np

        flat = np.frombuffer(self.raw, dtype=self.dtype.realize())
        if flat.size != math.prod(self.shape):
            _refuse(f"numpy array of shape {self.shape} holds {flat.size} values")
        return flat.reshape(self.shape, order="F" if self.fortran else "C").copy()


class _ScalarData:
    __slots__ = ("dtype", "raw")

    def __init__(self, dtype: Any, raw: Any) -> None:
        if not isinstance(dtype, _DTypeData) or not isinstance(raw, bytes):
            _refuse("numpy scalar must be a plain number dtype and raw bytes")
        self.dtype, self.raw = dtype, raw

    def realize(self):
        import numpy as np

        values = np.frombuffer(self.raw, dtype=self.dtype.realize())
        if values.size != 1:
            _refuse(f"numpy scalar holds {values.size} values")
        return values[0]


def _reconstruct_array(cls: Any, shape: Any = (0,), typecode: Any = b"b") -> _ArrayData:
    """Stands in for `numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')`."""
    if cls is not _ArrayData:
        _refuse(f"numpy _reconstruct may only build arrays, not {cls!r}")
    return _ArrayData()


class _HistoryBufferData:
    """Stands in for mmengine's HistoryBuffer: keeps its state dict; the real `__setstate__` would
    write the pickle's values into the class-wide statistics table and the instance `__dict__`."""

    __slots__ = ("state",)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            _refuse("HistoryBuffer state is not a dict")
        self.state = state

    def realize(self):
        from mmengine.logging.history_buffer import HistoryBuffer

        state = getattr(self, "state", {})
        logs, counts = _realize(state.get("_log_history")), _realize(state.get("_count_history"))
        max_length = state.get("max_length", 1_000_000)
        if type(max_length) is not int or max_length < 1 or not all(_is_numbers(a) for a in (logs, counts)):
            _refuse("HistoryBuffer state must hold two 1-D number arrays and an int max_length")
        if len(logs) != len(counts):
            _refuse("HistoryBuffer log and count histories differ in length")
        return HistoryBuffer(logs, counts, max_length)


def _is_numbers(value: Any) -> bool:
    import numpy as np

    return isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "biufc"


def _statistics_method(owner: Any, name: Any) -> str:
    """Stands in for `builtins.getattr`: only `getattr(HistoryBuffer, 'min'|'max'|'current'|'mean')`,
    which is how HistoryBuffer pickles its statistics methods; yields the name, never the attribute."""
    if owner is not _HistoryBufferData or name not in _STATISTICS:
        label = dict(_substitutes()).get(owner) or getattr(owner, "__name__", type(owner).__name__)
        _refuse(f"getattr({label}, {name!r}) is not allowed; "
                "only HistoryBuffer's statistics methods may be named")
    return f"HistoryBuffer.{name}"


def _substitutes() -> list[tuple[Any, str]]:
    pairs: list[tuple[Any, str]] = [
        (_HistoryBufferData, "mmengine.logging.history_buffer.HistoryBuffer"),
        (_statistics_method, "builtins.getattr"),
        (_ArrayData, "numpy.ndarray"),
        (_DTypeData, "numpy.dtype"),
    ]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1.x and 2.x writers
        pairs += [(_reconstruct_array, f"{module}._reconstruct"), (_ScalarData, f"{module}.scalar")]
    return pairs


_STAND_INS = (_ArrayData, _ScalarData, _DTypeData, _HistoryBufferData)


def _realize(obj: Any) -> Any:
    """Replace the stand-ins by real objects built from their checked data.

    A container without stand-ins is returned as it is, so a state dict keeps its identity and its
    `_metadata` attribute (module versions that `load_state_dict` reads).
    """
    if isinstance(obj, _STAND_INS):
        return obj.realize()
    if isinstance(obj, dict):  # dict, OrderedDict, Counter
        items = [(_realize(k), _realize(v)) for k, v in obj.items()]
        if all(new_k is k and new_v is v for (new_k, new_v), (k, v) in zip(items, obj.items())):
            return obj
        out = type(obj)()
        out.update(items)
        if hasattr(obj, "__dict__"):  # OrderedDict's attributes, e.g. a state dict's _metadata
            out.__dict__.update(obj.__dict__)
        return out
    if isinstance(obj, (list, tuple, set)):
        values = [_realize(v) for v in obj]
        return obj if all(new is old for new, old in zip(values, obj)) else type(obj)(values)
    return obj


def load_checkpoint_file(path: str | Path, trust: bool = False, *, training_state: bool = False,
                         map_location: Any = "cpu") -> dict:
    """Load a checkpoint on CPU without running code from it, unless `trust` (`--trust-checkpoint`).

    By default only `state_dict` and `meta` are returned (all export and inference need); with
    `training_state` (resume) the message hub, optimizer and schedulers come back as real objects.
    """
    import torch

    from bcdeploy.train.mmseg_compat import install

    install()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    _check_format(path)
    try:
        if trust:
            return _as_dict(path, torch.load(path, map_location=map_location, weights_only=False))
        with _only_our_globals():
            raw = _as_dict(path, torch.load(path, map_location=map_location, weights_only=True))
        if not training_state and "state_dict" in raw:
            raw = {key: raw[key] for key in _INFERENCE_KEYS if key in raw}
        return _realize(raw)
    except (pickle.UnpicklingError, TypeError, ValueError, AttributeError, KeyError, IndexError,
            RecursionError) as err:
        raise InputError(
            f"{path}: refused to load: it holds more than weights and plain data ({_reason(err)}); "
            "if you trust this file, pass --trust-checkpoint"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({first[:200]})") from None


def _check_format(path: Path) -> None:
    """Refuse what cannot be a checkpoint before unpickling anything: torch.save writes a zip archive
    (PK), the legacy format is a pickle (protocol 2+, 0x80). An empty or foreign file is named as such;
    advising --trust-checkpoint for it would be advice that cannot help."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if not head:
        raise InputError(f"{path}: empty file (0 bytes), not a checkpoint")
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise InputError(f"{path}: not a PyTorch checkpoint (neither torch's zip archive nor a pickle; "
                         f"the file starts with {head.hex()})")


@contextlib.contextmanager
def _only_our_globals() -> Iterator[None]:
    """torch's allow-list is process-wide: whatever any import added to it (a real HistoryBuffer, a
    getattr) is set aside while we load, so only the stand-ins answer to those names."""
    import torch.serialization as serialization

    saved = serialization.get_safe_globals()
    serialization.clear_safe_globals()
    try:
        with serialization.safe_globals(_substitutes()):
            yield
    finally:
        serialization.add_safe_globals(saved)


def _reason(err: Exception) -> str:
    """The one informative sentence of torch's multi-paragraph weights-only message (or ours)."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # A global from a blocked module (os.system) comes without the marker, after torch's paragraph on
    # the weights_only default: the line that names the global is the one to show.
    named = [line for line in lines if "GLOBAL" in line]
    reason = (named or lines or [type(err).__name__])[0]
    return reason.split(". Please use `torch.serialization", 1)[0][:200]


def _as_dict(path: Path, ckpt: Any) -> dict:
    if not isinstance(ckpt, dict):
        raise InputError(f"{path}: checkpoint holds a {type(ckpt).__name__}, expected a dict with 'state_dict'")
    return ckpt


def load_from_local_data_only(filename: str, map_location: Any = None) -> dict:
    """MMEngine's local checkpoint loader, data-only (resume, `load_from`, `Pretrained` init).

    `meta['config']` is dropped: MMEngine's `resume` runs it as a Python config (`Config.fromstring`)
    only to compare GPU counts, which a single-device `bcdeploy train` never needs.
    """
    ckpt = load_checkpoint_file(filename, training_state=True, map_location=map_location)
    meta = ckpt.get("meta")
    if isinstance(meta, dict) and meta.pop("config", None) is not None:
        log.warning("%s: ignored meta['config'] (Python that MMEngine would run on resume)", filename)
    return ckpt


def load_from_http_data_only(filename: str, map_location: Any = None, model_dir: str | None = None) -> dict:
    """MMEngine's http(s) loader, data-only: MMEngine's own goes through torch.hub's
    `load_state_dict_from_url`, which unpickles with `weights_only=False`."""
    from urllib.parse import urlparse

    from torch.hub import download_url_to_file, get_dir

    folder = Path(model_dir or Path(get_dir()) / "checkpoints")
    folder.mkdir(parents=True, exist_ok=True)
    cached = folder / (Path(urlparse(filename).path).name or "checkpoint.pth")
    if not cached.is_file():
        download_url_to_file(filename, str(cached), progress=False)
    return load_from_local_data_only(str(cached), map_location)


@contextlib.contextmanager
def mmengine_loads_data_only() -> Iterator[None]:
    """Within the block, MMEngine loads local and http(s) checkpoints through this module.

    MMEngine calls `torch.load` itself (resume, `load_from`, `Pretrained` init); registering our loaders
    (MMEngine's public `CheckpointLoader.register_scheme`) covers those without widening torch's
    global allow-list. MMEngine's other schemes (open-mmlab://, torchvision://) are left as they are.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    ours = {"": load_from_local_data_only, "http://": load_from_http_data_only, "https://": load_from_http_data_only}
    previous = {prefix: CheckpointLoader._get_checkpoint_loader(prefix + "host/file.pth") for prefix in ours}
    for prefix, loader in ours.items():
        CheckpointLoader.register_scheme(prefixes=prefix, loader=loader, force=True)
    try:
        yield
    finally:
        for prefix, loader in previous.items():
            CheckpointLoader.register_scheme(prefixes=prefix, loader=loader, force=True)
