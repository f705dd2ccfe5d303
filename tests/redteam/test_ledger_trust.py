"""A crafted or corrupt ledger.sqlite must never make `infer` delete, read or write a file outside --out.

The ledger's rows name each image's output name and output paths; a ledger copied in from elsewhere
(or edited) could name `../victim` or `/abs/path`. The resume check hashes what the row names, a
failed re-run deletes what the row names, and a re-run writes to masks/<name>.png.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from tests.redteam.conftest import infer, write_png


def _tamper(out, **columns) -> None:
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db, db:
        for column, value in columns.items():
            db.execute(f"UPDATE images SET {column} = ?", (value,))


def _first_run(tmp_path, tiny_model):
    images, out = tmp_path / "images", tmp_path / "out"
    write_png(images / "a.png")
    code, output = infer(tiny_model, images, "--out", out)
    assert code == 0, output
    return images, out


def test_crafted_output_paths_in_the_ledger_are_never_deleted(tmp_path, tiny_model):
    images, out = _first_run(tmp_path, tiny_model)
    victim, absolute = tmp_path / "victim.txt", tmp_path / "absolute.txt"
    victim.write_text("precious")
    absolute.write_text("precious")
    _tamper(out, outputs=json.dumps({"mask": {"path": "../victim.txt", "size": 8, "sha256": "0" * 64},
                                     "vis": {"path": str(absolute), "size": 8, "sha256": "0" * 64}}))
    (images / "a.png").write_bytes(b"not a png any more")  # the re-run fails on it: its old outputs are removed
    code, output = infer(tiny_model, images, "--out", out)
    assert code != 0
    assert victim.read_text() == "precious" and absolute.read_text() == "precious"


def test_crafted_output_name_in_the_ledger_never_writes_outside_out(tmp_path, tiny_model):
    images, out = _first_run(tmp_path, tiny_model)
    _tamper(out, name="../../escaped", sha256="0" * 64)  # another hash: the re-run recomputes a.png
    code, output = infer(tiny_model, images, "--out", out)
    assert not list(tmp_path.glob("escaped*")), output
    assert not (out / "escaped.png").exists()
    assert code != 0 and "ledger" in output


def test_glob_with_dotdot_never_writes_outside_out(tmp_path, tiny_model, monkeypatch):
    # From tmp/work/sub, `*/../../../victims/*.png` matches tmp/victims/x.png; the path below the glob's
    # fixed folders is `a/../../../victims/x`, and masks/<that>.png lies outside --out.
    work = tmp_path / "work" / "sub"
    (work / "a").mkdir(parents=True)
    write_png(tmp_path / "victims" / "x.png")
    monkeypatch.chdir(work)
    code, output = infer(tiny_model, "*/../../../victims/*.png", "--out", "out")
    assert code == 0, output
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.suffix in (".png", ".jpg"))
    out = "work/sub/out"
    assert written == ["victims/x.png", f"{out}/biner/x.png", f"{out}/masks/x.png", f"{out}/vis/x.jpg"], written


@pytest.mark.parametrize("lesions", ['[{}]', "not json", '{"id": 1}', "[1]"])
def test_malformed_rows_are_one_error_line_naming_the_ledger(tmp_path, tiny_model, lesions):
    images, out = _first_run(tmp_path, tiny_model)
    _tamper(out, lesions=lesions)
    result = CliRunner().invoke(cli, ["infer", "--engine", str(tiny_model), str(images), "--out", str(out)])
    assert isinstance(result.exception, SystemExit), result.exc_info  # not a traceback
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(out / "ledger.sqlite") in errors[0], result.output


@pytest.mark.parametrize("name", ["..png", "...png", "a..png"])
def test_dot_names_are_ordinary_inputs(tmp_path, tiny_model, name):
    """`..png` has the stem `.` and `...png` the stem `..`: their output names must still be plain names
    below the folder they mirror (and ones the ledger's own check accepts on the next run)."""
    images, out = tmp_path / "images", tmp_path / "out"
    write_png(images / "sub" / name)
    for _ in range(2):
        code, output = infer(tiny_model, images, "-r", "--out", out)
        assert code == 0, output
    masks = [p.relative_to(out).as_posix() for p in (out / "masks").rglob("*") if p.is_file()]
    assert len(masks) == 1 and masks[0].startswith("masks/sub/"), masks


def test_undecodable_text_in_the_ledger_is_one_error_line(tmp_path, tiny_model):
    """A damaged page can leave bytes that are not UTF-8 in a text column: sqlite3 raises while the rows
    are read, which was a traceback."""
    images, out = _first_run(tmp_path, tiny_model)
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db, db:
        db.execute("UPDATE images SET lesions = CAST(X'5bff' AS TEXT)")
    result = CliRunner().invoke(cli, ["infer", "--engine", str(tiny_model), str(images), "--out", str(out)])
    assert isinstance(result.exception, SystemExit), result.exc_info
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1 and "cannot be read" in errors[0], result.output


def test_a_row_pointing_at_another_images_outputs_is_not_trusted(tmp_path, tiny_model):
    """Issue "Reliability round 3", defect 6: a row edited to name another image's outputs (with their
    true sizes and hashes) must not make the resume rule skip this image: outputs live where the row's
    own name puts them, and nowhere else."""
    images, out = tmp_path / "images", tmp_path / "out"
    write_png(images / "a.png", seed=1)
    write_png(images / "b.png", seed=2)
    assert infer(tiny_model, images, "--out", out)[0] == 0
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db, db:
        theirs = db.execute("SELECT outputs FROM images WHERE name = 'b'").fetchone()[0]
        db.execute("UPDATE images SET outputs = ? WHERE name = 'a'", (theirs,))
    (out / "masks" / "a.png").unlink()
    code, output = infer(tiny_model, images, "--out", out)
    assert code == 0 and "processed 1, skipped 1" in output, output
    assert (out / "masks" / "a.png").is_file()


def test_a_ledger_that_is_a_symlink_is_refused(tmp_path, tiny_model):
    images, out = tmp_path / "images", tmp_path / "out"
    write_png(images / "a.png")
    elsewhere = tmp_path / "elsewhere.sqlite"
    elsewhere.write_bytes(b"")
    out.mkdir()
    (out / "ledger.sqlite").symlink_to(elsewhere)
    code, output = infer(tiny_model, images, "--out", out)
    assert code == 1 and "symlink" in output and elsewhere.stat().st_size == 0, output


@pytest.mark.parametrize("version", ["1", "abc"])
def test_a_ledger_with_a_wrong_schema_stamp_is_migrated_or_one_clear_line(tmp_path, tiny_model, version):
    """Issue "Reliability round 3", defect 7: a ledger stamped v1 that already has v2's column failed with
    SQLite's bare `duplicate column name: spans`; a stamp that is no number is said as such."""
    images, out = _first_run(tmp_path, tiny_model)
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db, db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    code, output = infer(tiny_model, images, "--out", out)
    if version == "1":
        assert code == 0 and "skipped 1" in output, output
    else:
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert code == 1 and len(errors) == 1 and "schema version 'abc'" in errors[0], output
