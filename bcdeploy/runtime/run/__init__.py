"""The batch run loop behind `bcdeploy infer` and `bcdeploy predict` (see loop.py).

Module map: sources (where images come from: files, or any InputSource such as bcdeploy.pacs.source),
inputs (which files, which output names), identity (what a result is bound to, the resume rule),
ledger (SQLite, one transaction per image), stages (load / segment / finish of one image),
seg_output (--dicom-seg), reports (results.json and lesions.csv from the ledger), phi (--no-phi),
loop (threads, Ctrl-C, exit status).
"""

from bcdeploy.runtime.run.inputs import InputFailure, InputItem, assign_names, find_inputs
from bcdeploy.runtime.run.ledger import LEDGER_NAME, Ledger
from bcdeploy.runtime.run.loop import RunOptions, RunSummary, run
from bcdeploy.runtime.run.sources import FileSource, InputSource

__all__ = ["LEDGER_NAME", "FileSource", "InputFailure", "InputItem", "InputSource", "Ledger", "RunOptions",
           "RunSummary", "assign_names", "find_inputs", "run"]
