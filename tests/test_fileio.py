import os
import stat

import pytest

from bcdeploy.fileio import atomic_path, write_json


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
