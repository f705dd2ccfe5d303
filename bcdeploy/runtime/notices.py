"""Warnings said once per run: an archive with one defect in every file says so once, not once per file.

Keyed explicitly by what the warning is about (a tuple such as ("pixel spacing", keyword) or ("repair",
attribute, action)), never by parsing the message. The set is cleared when a run starts
(runtime/run/loop.execute calls `new_run`), so a process that runs for months (the DICOM node) says a
defect again in the run that meets it again. Threads of one run share it (a lock guards it).
"""

from __future__ import annotations

import logging
import threading

_said: set[tuple[str, ...]] = set()
_lock = threading.Lock()


def say_once(logger: logging.Logger, key: tuple[str, ...], message: str) -> bool:
    """Log `message` as a warning unless a warning with `key` was said in this run; True if it was said now."""
    with _lock:
        if key in _said:
            return False
        _said.add(key)
    logger.warning("%s", message)
    return True


def new_run() -> None:
    with _lock:
        _said.clear()
