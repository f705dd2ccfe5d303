"""Whatever a decoder raises on a file is that file's failure, panics included.

Decoders written in Rust (pylibjpeg-rle, through pyo3) turn a panic on hostile data into
`pyo3_runtime.PanicException`, which derives from BaseException precisely so that `except Exception`
does not swallow it. In a run that one file ended the run before the next image; in the DICOM node it
ended the process at every restart. A file's bytes cannot legitimately stop the program, so every
decoder entry point runs inside `decoding()`, which lets through only what a person or the interpreter
raises (Ctrl-C, SystemExit, a generator closing) and turns everything else into one InputError line.

A native crash (SIGSEGV in C) cannot be caught in-process at all: the node counts the runs that never
returned and quarantines what crashed it (gateway/spool.py), rather than paying a process per image.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from bcdeploy.errors import BcDeployError, InputError

# Raised by a person or by the interpreter itself, never by a file's contents: these keep their meaning.
INTERRUPTS: tuple[type[BaseException], ...] = (KeyboardInterrupt, SystemExit, GeneratorExit)
log = logging.getLogger(__name__)


def is_interrupt(err: BaseException) -> bool:
    return isinstance(err, INTERRUPTS)


def one_line(err: BaseException, limit: int = 200) -> str:
    """`Type: message` on one line, at most `limit` characters: pydicom's summary of its plugins' failures
    spans lines, and a panic's message can be long."""
    text = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@contextlib.contextmanager
def failures_become(convert: Callable[[BaseException], BcDeployError]) -> Iterator[None]:
    """Our own errors and interrupts pass as they are; anything else raised inside, a panic too, is raised
    as `convert(err)`: the one line a user reads, the original kept in the debug log."""
    try:
        yield
    except BcDeployError:
        raise
    except BaseException as err:
        if is_interrupt(err):
            raise
        log.debug("converted to a one-line error", exc_info=err)
        raise convert(err) from None


def decoding(origin: str | Path, what: str) -> contextlib.AbstractContextManager[None]:
    """Run a decoder; any failure but an interrupt becomes `InputError("<origin>: cannot decode <what>: <Type>: ...")`."""
    return failures_become(lambda err: InputError(f"{origin}: cannot decode {what}: {one_line(err)}"))
