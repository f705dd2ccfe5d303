"""`infer --save`: only the chosen pictures are written, reports stay complete, and changing the selection
recomputes rather than trusting outputs that were never written."""

from __future__ import annotations

import json

from tests.redteam.conftest import infer, tiny_model, write_png  # noqa: F401 - tiny_model is a fixture


def test_save_writes_only_the_chosen_pictures_and_a_new_choice_recomputes(tiny_model, tmp_path):  # noqa: F811
    scans = tmp_path / "scans"
    for i in range(2):
        write_png(scans / f"s{i}.png", seed=i, size=48)
    out = tmp_path / "out"
    code, output = infer(tiny_model, scans, "--out", out, "--save", "masks")
    assert code == 0, output
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["s0.png", "s1.png"]
    assert not (out / "vis").exists() and not (out / "biner").exists()
    results = json.loads((out / "results.json").read_text())
    assert [set(e["outputs"]) for e in results["images"]] == [{"mask"}, {"mask"}]

    code, output = infer(tiny_model, scans, "--out", out, "--save", "masks")  # same choice: nothing to redo
    assert code == 0 and "processed 0, skipped 2" in output, output
    code, output = infer(tiny_model, scans, "--out", out)  # default (all): the overlays are missing, so redo
    assert code == 0 and "processed 2, skipped 0" in output, output
    assert sorted(p.name for p in (out / "vis").iterdir()) == ["s0.jpg", "s1.jpg"]


def test_unknown_save_choice_is_one_line(tiny_model, tmp_path):  # noqa: F811
    write_png(tmp_path / "scans" / "a.png")
    code, output = infer(tiny_model, tmp_path / "scans", "--out", tmp_path / "out", "--save", "masks,heatmap")
    assert code == 1 and output.strip().splitlines() == [output.strip()] and "heatmap" in output
