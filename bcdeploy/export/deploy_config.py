"""Read MMDeploy-format deploy configs (`onnx_config`, `codebase_config`, `backend_config`) without
MMDeploy or MMEngine, and without executing them.

MMDeploy configs are Python files of `name = dict(...)` assignments with `_base_` inheritance. We
evaluate only that subset: literals, dict(...) calls, lists/tuples, names assigned earlier in the same
file, and integer arithmetic such as `1 << 30`. Anything else is a ConfigError, never code run.
Existing MMDeploy mmseg configs read as they are.
"""

from __future__ import annotations

import ast
import operator
from pathlib import Path
from typing import Any

from bcdeploy.errors import ConfigError

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow, ast.LShift: operator.lshift, ast.Mod: operator.mod}


def load_deploy_config(path: str | Path) -> dict[str, Any]:
    """The merged config dict of `path` and its `_base_` chain (children override bases)."""
    return _load(Path(path), seen=())


def _load(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if not path.is_file():
        raise ConfigError(f"{path}: deploy config not found")
    if path in seen:
        raise ConfigError(f"{path}: _base_ inheritance loops back to itself")
    own = _evaluate_file(path)
    bases = own.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else list(bases)
    merged: dict[str, Any] = {}
    for base in bases:
        merged = _merge(merged, _load(path.parent / base, seen + (path,)))
    return _merge(merged, own)


def _evaluate_file(path: Path) -> dict[str, Any]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not a readable deploy config ({err})") from None
    scope: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            value = _eval(node.value, scope, path)
            for target in node.targets:
                scope[target.id] = value
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # docstring
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            raise ConfigError(f"{path}:{node.lineno}: imports are not allowed in a deploy config")
        else:
            raise ConfigError(f"{path}:{node.lineno}: only `name = value` assignments are allowed")
    return scope


def _eval(node: ast.AST, scope: dict[str, Any], path: Path) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_eval(e, scope, path) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {_eval(k, scope, path): _eval(v, scope, path) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _eval(kw.value, scope, path) for kw in node.keywords}
    if isinstance(node, ast.Name):
        if node.id in scope:
            return scope[node.id]
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval(node.left, scope, path), _eval(node.right, scope, path))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, scope, path)
    raise ConfigError(f"{path}:{getattr(node, 'lineno', '?')}: unsupported expression {ast.dump(node)[:80]}")


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not value.get("_delete_", False):
            out[key] = _merge(out[key], value)
        else:
            out[key] = {k: v for k, v in value.items() if k != "_delete_"} if isinstance(value, dict) else value
    return out


def backend_type(cfg: dict[str, Any]) -> str:
    return str(cfg.get("backend_config", {}).get("type", "onnxruntime"))


def fp16_mode(cfg: dict[str, Any]) -> bool:
    return bool(cfg.get("backend_config", {}).get("common_config", {}).get("fp16_mode", False))


def with_argmax(cfg: dict[str, Any]) -> bool:
    return bool(cfg.get("codebase_config", {}).get("with_argmax", False))


def workspace_bytes(cfg: dict[str, Any], default: int = 4 << 30) -> int:
    size = cfg.get("backend_config", {}).get("common_config", {}).get("max_workspace_size", 0)
    return int(size) if size else default


def input_profile(cfg: dict[str, Any], input_name: str = "input") -> dict[str, list[int]] | None:
    """{min, opt, max} NCHW shapes of the first model input, or None if the config has none."""
    inputs = cfg.get("backend_config", {}).get("model_inputs") or []
    if not inputs:
        return None
    shapes = inputs[0].get("input_shapes", {}).get(input_name)
    if not shapes:
        raise ConfigError(f"deploy config model_inputs has no shapes for input {input_name!r}")
    profile = {k: [int(v) for v in shapes[f"{k}_shape"]] for k in ("min", "opt", "max")}
    for k, shape in profile.items():
        if len(shape) != 4:
            raise ConfigError(f"deploy config {k}_shape {shape} is not NCHW")
    if any(lo > hi for lo, hi in zip(profile["min"], profile["max"])) or any(
        not lo <= o <= hi for lo, o, hi in zip(profile["min"], profile["opt"], profile["max"])
    ):
        raise ConfigError(f"deploy config profile is not ordered min <= opt <= max: {profile}")
    return profile
