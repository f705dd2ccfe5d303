"""The batch run loop behind `bcdeploy infer` and `bcdeploy predict` (see loop.py).

Module map: inputs (which files, which output names), identity (what a result is bound to, the
resume rule), ledger (SQLite, one transaction per image), stages (load / segment / finish of one
image), reports (results.json and lesions.csv from the ledger), loop (threads, Ctrl-C, exit status).
"""

from bcdeploy.runtime.run.inputs import InputFailure, InputItem, assign_names, find_inputs
from bcdeploy.runtime.run.ledger import LEDGER_NAME, Ledger
from bcdeploy.runtime.run.loop import RunOptions, RunSummary, run

__all__ = ["LEDGER_NAME", "InputFailure", "InputItem", "Ledger", "RunOptions", "RunSummary", "assign_names",
           "find_inputs", "run"]
