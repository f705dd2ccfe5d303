"""The model file and its sidecars in Ray's object store, shared by `serve` replicas and `infer --ray`
actors: workers on any node open the same bytes (checked by SHA-256 on arrival), so no node needs a
copy of the model file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcdeploy.errors import InputError


@dataclass(frozen=True)
class ModelBlob:
    name: str
    files: dict[str, Any]  # file name -> ObjectRef of its bytes
    sha256: dict[str, str]

    @classmethod
    def put(cls, model_path: Path) -> "ModelBlob":
        """Put the model and its sidecars in the object store of the Ray this process is connected to
        (the driver owns them: keep the blob alive while workers may still start)."""
        import ray

        from bcdeploy.runtime.model.sidecar import sidecar_candidates

        paths = [model_path] + [p for p in sidecar_candidates(model_path) if p.is_file()]
        data = {p.name: p.read_bytes() for p in paths}
        return cls(model_path.name, {n: ray.put(b) for n, b in data.items()},
                   {n: hashlib.sha256(b).hexdigest() for n, b in data.items()})

    def materialize(self, folder: Path) -> Path:
        """Write the files into `folder` (private to the worker) after checking their hashes."""
        import ray

        for name, ref in self.files.items():
            data = ray.get(ref)
            if hashlib.sha256(data).hexdigest() != self.sha256[name]:
                raise InputError(f"{name}: bytes from the object store do not match the driver's SHA-256")
            (folder / name).write_bytes(data)
        return folder / self.name
