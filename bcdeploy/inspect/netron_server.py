"""Serve a model with Netron on localhost (the `netron` package), and stop it again."""

from __future__ import annotations

from pathlib import Path

from bcdeploy._imports import require
from bcdeploy.errors import InputError


def start_netron(path: str | Path, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
    """Start serving `path` in a background thread; returns (host, port)."""
    netron = require("netron", "--netron")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model file not found")
    address = netron.serve(str(path), None, address=(host, port), browse=False)
    return address[0], int(address[1])


def stop_netron(address: tuple[str, int]) -> None:
    netron = require("netron", "--netron")
    netron.stop(address)
