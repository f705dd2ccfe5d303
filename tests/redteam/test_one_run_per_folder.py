"""Two `infer` runs into one --out (two terminals, an overlapping cron job) interleave their writes: a
row can then describe the other run's mask file. The second run must refuse with one line."""

from __future__ import annotations

from bcdeploy.runtime.run.ledger import Ledger
from tests.redteam.conftest import infer, write_png


def test_a_second_run_into_the_same_folder_is_refused(tmp_path, tiny_model):
    images, out = tmp_path / "images", tmp_path / "out"
    write_png(images / "a.png")
    running = Ledger(out)  # what a run in progress holds from start to end
    try:
        code, output = infer(tiny_model, images, "--out", out)
        assert code == 1, output
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "another bcdeploy run" in errors[0] and str(out) in errors[0], output
        assert not (out / "masks").exists()
    finally:
        running.close()
    code, output = infer(tiny_model, images, "--out", out)  # the lock goes with the run that held it
    assert code == 0, output
