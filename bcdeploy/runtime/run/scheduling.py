"""Who gets the cores during a directory run: inference first, decode and write in the gaps.

On an edge box with few cores the three stages compete. The backend splits each layer over its
intra-op threads and waits for the slowest: when the decode or write thread takes one of those
cores for a while, the whole layer waits for it (measured on 2 cores, INT8: 398 ms alone, 635 ms
beside decode and write). Two things fix that without giving up the overlap:

* the reader and writer threads run at a lower scheduling priority (a higher nice value, Linux
  threads are scheduled one by one), so they take a core when inference leaves one idle - between
  layers, during pre- and postprocessing, while it waits for the next image - and yield it as soon
  as inference wants it back. Threads they start (tifffile's strip decoders) inherit the priority.
* the backend does not spin: onnxruntime's intra-op threads by default busy-wait after each
  parallel section, burning the very core the decoder could have used (`BackendOptions`' spin
  default for the run loop is off; `bench latency` keeps the backend's default).

Nothing here changes a mask; it changes only which thread runs when.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

# CFS weight of nice 10 is ~1/10 of nice 0: enough to yield to inference, not starved when it idles.
BACKGROUND_NICE = 10


def background_thread() -> None:
    """ThreadPoolExecutor initializer: lower this thread's priority (Linux; elsewhere a no-op)."""
    if not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, max(current, BACKGROUND_NICE))
    except OSError as err:  # a container without the right to renice: run as before
        log.debug("cannot lower the priority of thread %s: %s", threading.current_thread().name, err)
