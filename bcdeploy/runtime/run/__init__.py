"""The batch run loop behind `bcdeploy infer` and `bcdeploy predict` (see loop.py).

Module map: sources (where images come from: files, or any InputSource such as bcdeploy.pacs.source),
inputs (which files, which output names), identity (what a result is bound to, the resume rule),
work (one image's record and its Status), reader (read, resume rule, decode), segment (the model
step), writer (every output kind, the ledger row), driver (what a driver is given and returns),
ledger (SQLite, one transaction per image), reports (results.json and lesions.csv from the ledger),
phi (--no-phi), loop (the run around any driver; the local threaded driver; Ctrl-C, exit status).
"""

from bcdeploy.runtime.run.driver import RunSummary
from bcdeploy.runtime.run.inputs import InputFailure, InputItem, assign_names, find_inputs
from bcdeploy.runtime.run.ledger import LEDGER_NAME, Ledger
from bcdeploy.runtime.run.loop import RunOptions, execute, run
from bcdeploy.runtime.run.sources import FileSource, InputSource

__all__ = ["LEDGER_NAME", "FileSource", "InputFailure", "InputItem", "InputSource", "Ledger", "RunOptions",
           "RunSummary", "assign_names", "execute", "find_inputs", "run"]
