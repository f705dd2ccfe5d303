import os
import stat

import pytest

from bcdeploy.fileio import atomic_path, staged_dir, write_json, write_text


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_outputs_get_normal_permissions(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    mode = stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_staged_files_arrive_together_or_not_at_all(tmp_path):
    out = tmp_path / "export"
    write_text(out / "model.onnx", "old model")
    write_text(out / "model.bcdeploy.json", "old sidecar")
    with pytest.raises(RuntimeError):
        with staged_dir(out) as stage:
            write_text(stage / "model.onnx", "new model")
            raise RuntimeError("parity failed")
    assert sorted(p.name for p in out.iterdir()) == ["model.bcdeploy.json", "model.onnx"]
    assert (out / "model.onnx").read_text() == "old model"

    with staged_dir(out) as stage:
        write_text(stage / "model.onnx", "new model")
        write_text(stage / "model.bcdeploy.json", "new sidecar")
        write_text(stage / "model.fp16.onnx", "fp16")
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "model.onnx": "new model", "model.bcdeploy.json": "new sidecar", "model.fp16.onnx": "fp16"}


@pytest.mark.parametrize("relation", ["same", "inside", "contains", "symlink"])
def test_refuse_overlap_names_both_paths(tmp_path, relation):
    from bcdeploy.errors import InputError
    from bcdeploy.fileio import refuse_overlap

    data = tmp_path / "dmid"
    (data / "TIFF Images").mkdir(parents=True)
    output = {"same": data, "inside": data / "TIFF Images", "contains": tmp_path,
              "symlink": tmp_path / "link"}[relation]
    if relation == "symlink":
        output.symlink_to(data)
    with pytest.raises(InputError) as err:
        refuse_overlap(output, [None, data / "TIFF Images" if relation == "contains" else data])
    assert str(output) in str(err.value) and "dmid" in str(err.value)


def test_refuse_overlap_allows_siblings(tmp_path):
    from bcdeploy.fileio import refuse_overlap

    (tmp_path / "in").mkdir()
    refuse_overlap(tmp_path / "in-out", [tmp_path / "in", None])  # a shared name prefix is not nesting


def test_replaced_dir_swaps_the_whole_folder_or_nothing(tmp_path):
    from bcdeploy.errors import InputError
    from bcdeploy.fileio import replaced_dir

    target = tmp_path / "ds"
    with replaced_dir(target) as stage:
        (stage / "a.txt").write_text("1")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    with pytest.raises(RuntimeError), replaced_dir(target, overwrite=True) as stage:
        (stage / "b.txt").write_text("2")
        raise RuntimeError("failed half-way")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]  # the old folder, untouched
    with pytest.raises(InputError, match="--overwrite"), replaced_dir(target) as stage:
        (stage / "b.txt").write_text("2")
    with replaced_dir(target, overwrite=True) as stage:
        (stage / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # nothing of the old one survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no staging or old folder left
