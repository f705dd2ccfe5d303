"""A 0-byte, foreign or corrupt checkpoint (issue "Reliability round 3", defect 6) is one line saying so,
never a traceback and never the advice to pass --trust-checkpoint, which cannot help such a file."""

from __future__ import annotations

import zipfile

import pytest

from bcdeploy.errors import InputError

pytest.importorskip("torch")


@pytest.mark.parametrize("content", [b"", b"\x00" * 5000, b"not a checkpoint at all\n" * 100], ids=["empty", "zeros", "text"])
def test_empty_or_foreign_files_are_named_as_such(tmp_path, content):
    from bcdeploy.train.checkpoint import load_checkpoint_file

    path = tmp_path / "iter_1.pth"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        load_checkpoint_file(path)
    assert str(path) in str(err.value) and "--trust-checkpoint" not in str(err.value)


def test_a_truncated_torch_checkpoint_is_corrupt_not_untrusted(tmp_path):
    import torch

    from bcdeploy.train.checkpoint import load_checkpoint_file

    whole = tmp_path / "whole.pth"
    torch.save({"state_dict": {"w": torch.ones(64, 64)}}, whole)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert zipfile.is_zipfile(whole)
    with pytest.raises(InputError) as err:
        load_checkpoint_file(cut)
    assert "not a readable PyTorch checkpoint" in str(err.value) and "--trust-checkpoint" not in str(err.value)
