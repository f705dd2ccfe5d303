"""Load an MMSeg config with bcdeploy's command-line overrides applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bcdeploy.errors import ConfigError


def load_config(config: str | Path, data_root: str | None = None, cfg_options: dict[str, Any] | None = None):
    """Config.fromfile plus `--data-root` (all three dataloaders) and `--cfg-options`. MMEngine imports a
    config's `custom_imports` while it loads the file, so those given through `--cfg-options` (a module
    that registers a loss, e.g. bcdeploy.train.losses) are imported here, or the model could not be built."""
    from bcdeploy.train import mmseg_compat

    mmseg_compat.install()
    from mmengine.config import Config

    path = Path(config)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        cfg = Config.fromfile(str(path))
    except Exception as err:  # noqa: BLE001 - mmengine raises anything from a bad config
        raise ConfigError(f"{path}: cannot load config ({type(err).__name__}: {err})") from None
    if data_root is not None:
        root = Path(data_root)
        if not (root / "images").is_dir():
            raise ConfigError(f"{root}: not a prepared data set (no images/ folder); run `bcdeploy prepare` first")
        for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
            if cfg.get(key) is not None:
                cfg[key].dataset.data_root = str(root)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
        if "custom_imports" in cfg_options:
            from mmengine.utils import import_modules_from_strings

            try:
                import_modules_from_strings(**cfg.custom_imports)
            except (ImportError, TypeError) as err:
                raise ConfigError(f"--cfg-options custom_imports: {err}") from None
    return cfg


def parse_cfg_options(items: tuple[str, ...]) -> dict[str, Any]:
    """`key=value` pairs as MMEngine's DictAction parses them (values as Python literals if possible)."""
    import ast

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--cfg-options expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def single_device(cfg) -> None:
    """SyncBN needs a process group; on one device it must be plain BN (mmengine reverts modules,
    but the config should say so too, so the dumped config is what actually ran)."""
    def walk(node):
        if isinstance(node, dict):
            if node.get("type") in ("SyncBN", "MMSyncBN"):
                node["type"] = "BN"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(cfg.model)
