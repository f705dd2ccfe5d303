"""More callables a hostile data.pkl can name, each prepended to a genuine (tiny) checkpoint: all are
refused without --trust-checkpoint, with one line that names the global, and no side effect."""

from __future__ import annotations

import collections

import pytest

from bcdeploy.errors import InputError
from tests.hostile_checkpoints import call_prepended

torch = pytest.importorskip("torch")

CALLS = [("os", "system"), ("posix", "system"), ("subprocess", "getoutput"), ("builtins", "eval"),
         ("builtins", "exec"), ("builtins", "print"), ("functools", "partial"), ("copyreg", "_reconstructor"),
         ("torch", "load"), ("torch.serialization", "add_safe_globals"), ("mmengine.config", "Config"),
         ("numpy", "frombuffer"), ("numpy.random", "__RandomState_ctor")]


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "genuine.pth"
    torch.save({"state_dict": collections.OrderedDict(w=torch.zeros(2)), "meta": {}}, path)
    return path


@pytest.mark.parametrize(("module", "name"), CALLS, ids=[f"{m}.{n}" for m, n in CALLS])
def test_refused_naming_the_global_without_side_effect(genuine, tmp_path, module, name):
    from bcdeploy.train.checkpoint import load_checkpoint_file

    marker = tmp_path / "marker"
    argument = f"touch {marker}" if name in ("system", "getoutput") else f"open({str(marker)!r}, 'w')"
    hostile = call_prepended(genuine, tmp_path / "hostile.pth", module, name, argument)
    with pytest.raises(InputError) as err:
        load_checkpoint_file(hostile)
    message = str(err.value)
    assert "\n" not in message and "--trust-checkpoint" in message
    assert f"{module}.{name}" in message or f"GLOBAL {name}" in message, message
    assert not marker.exists()
