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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcdeploy.errors import ConfigError
from bcdeploy.export.onnx_export import OPSET

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
    if len(inputs) != 1 or set(inputs[0]) != {"input_shapes"} or set(inputs[0]["input_shapes"]) - {input_name}:
        raise ConfigError(f"deploy config backend_config.model_inputs={inputs!r}: bcdeploy models have one input, "
                          f"{input_name!r}; give only model_inputs=[dict(input_shapes=dict({input_name}=...))]")
    shapes = inputs[0]["input_shapes"].get(input_name)
    if not shapes:
        raise ConfigError(f"deploy config model_inputs has no shapes for input {input_name!r}")
    if set(shapes) != {"min_shape", "opt_shape", "max_shape"}:
        raise ConfigError(f"deploy config input_shapes.{input_name} has {sorted(shapes)}; "
                          "give exactly min_shape, opt_shape and max_shape")
    return checked_profile({k: [int(v) for v in shapes[f"{k}_shape"]] for k in ("min", "opt", "max")}, "deploy config")


def checked_profile(profile: dict[str, list[int]] | None, origin: str) -> dict[str, list[int]] | None:
    """`profile` if it is NCHW min <= opt <= max (TensorRT refuses anything else), None if empty."""
    if not profile:
        return None
    for k in ("min", "opt", "max"):
        if len(profile.get(k) or []) != 4:
            raise ConfigError(f"{origin}: profile {k} shape {profile.get(k)} is not NCHW")
    if any(not lo <= o <= hi for lo, o, hi in zip(profile["min"], profile["opt"], profile["max"])):
        raise ConfigError(f"{origin}: profile is not ordered min <= opt <= max: {profile}")
    return profile


# What bcdeploy does with each field of a deploy config. A field is honoured (it changes the export or
# the engine), accepted only at the one value bcdeploy implements anyway, or refused: a field that
# would be read and silently ignored (as `fp16_mode` once was) is a lie about the model built.
_FIXED = {
    "onnx_config.type": "onnx",
    "onnx_config.export_params": True,
    "onnx_config.keep_initializers_as_inputs": False,
    "onnx_config.input_names": ["input"],
    "onnx_config.output_names": ["output"],
    "codebase_config.type": "mmseg",
    "codebase_config.task": "Segmentation",
}
# MMDeploy's own output file name and graph passes: neither changes the model bcdeploy writes.
_INERT = {"onnx_config.save_file", "onnx_config.optimize"}
_HONOURED = {
    "onnx_config.opset_version", "onnx_config.input_shape", "onnx_config.dynamic_axes",
    "codebase_config.with_argmax", "backend_config.type", "backend_config.common_config.fp16_mode",
    "backend_config.common_config.int8_mode", "backend_config.common_config.max_workspace_size",
    "backend_config.model_inputs",
}
_DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}
BACKENDS = ("onnxruntime", "tensorrt", "openvino")


@dataclass(frozen=True, kw_only=True)
class DeploySettings:
    """What a deploy config asks of an export, after every field was checked."""

    argmax: bool = False
    backend: str = "onnxruntime"
    fp16_mode: bool | None = None  # None: the config does not say
    int8_mode: bool = False
    workspace_bytes: int | None = None
    profile: dict[str, list[int]] | None = None
    trace_hw: tuple[int, int] | None = None  # onnx_config.input_shape is MMDeploy's (W, H)


def settings(cfg: dict[str, Any], opset: int = OPSET) -> DeploySettings:
    """Check every field of `cfg` (ConfigError naming the first one bcdeploy would not honour)."""
    for name, value in _leaves(cfg):
        if name in _FIXED and value != _FIXED[name]:
            raise ConfigError(f"deploy config {name}={value!r}: bcdeploy always uses {_FIXED[name]!r}; "
                              "remove the field or set it to that")
        if name not in _FIXED and name not in _INERT and name not in _HONOURED:
            raise ConfigError(f"deploy config field {name} is not supported by bcdeploy (it would be ignored); remove it")
    onnx_config, common = cfg.get("onnx_config", {}), cfg.get("backend_config", {}).get("common_config", {})
    if onnx_config.get("opset_version", opset) != opset:
        raise ConfigError(f"deploy config onnx_config.opset_version={onnx_config['opset_version']}: bcdeploy exports "
                          f"at opset {opset}; remove the field or set it to {opset}")
    _check_dynamic_axes(onnx_config.get("dynamic_axes") or {})
    backend = backend_type(cfg)
    if backend not in BACKENDS:
        raise ConfigError(f"deploy config backend_config.type={backend!r}: bcdeploy builds {', '.join(BACKENDS)}")
    shape = onnx_config.get("input_shape")
    if shape is not None and (len(shape) != 2 or min(int(v) for v in shape) < 1):
        raise ConfigError(f"deploy config onnx_config.input_shape={shape!r} is not [W, H]")
    return DeploySettings(
        argmax=with_argmax(cfg), backend=backend,
        fp16_mode=bool(common["fp16_mode"]) if "fp16_mode" in common else None,
        int8_mode=bool(common.get("int8_mode", False)),
        workspace_bytes=int(common["max_workspace_size"]) if common.get("max_workspace_size") else None,
        profile=input_profile(cfg), trace_hw=(int(shape[1]), int(shape[0])) if shape is not None else None)


def _leaves(cfg: dict[str, Any], prefix: str = ""):
    """(dotted name, value) of every field; model_inputs and dynamic_axes are checked as wholes."""
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in _HONOURED:
            yield from _leaves(value, name + ".")
        else:
            yield name, value


def _check_dynamic_axes(axes: dict) -> None:
    """bcdeploy's graph is always dynamic in batch, height and width; a config may name those axes only."""
    for tensor, dims in axes.items():
        if tensor not in ("input", "output") or not isinstance(dims, dict) or any(
                _DYNAMIC_AXES.get(int(k)) is None for k in dims):
            raise ConfigError(f"deploy config onnx_config.dynamic_axes[{tensor!r}]={dims!r}: bcdeploy's graphs have "
                              "dynamic batch (0), height (2) and width (3) on `input` and `output` only")
