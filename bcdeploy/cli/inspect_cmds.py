"""`bcdeploy inspect MODEL`."""

from __future__ import annotations

from pathlib import Path

import click

from bcdeploy.cli._options import parse_hw
from bcdeploy.fileio import strict_json


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--size", default=None, help="HxW at which to count FLOPs (ONNX), e.g. 640x640.")
@click.option("--netron", "netron", is_flag=True, help="Serve the model in Netron on localhost until Ctrl-C.")
@click.option("--port", default=8080, show_default=True, type=int, help="Netron port (0: any free port).")
def inspect_cmd(model, as_json, size, netron, port) -> None:
    """Inputs/outputs, opset, metadata, operators, parameters and FLOPs of MODEL (.onnx or an engine)."""
    from bcdeploy.errors import InputError

    path = Path(model)
    if netron:
        _serve_netron(path, port)
        return
    from bcdeploy.runtime.model.backends.registry import backend_for

    hw = parse_hw(size)
    backend = backend_for(path).name
    if backend == "onnxruntime":
        from bcdeploy.inspect.onnx_info import inspect_onnx

        info = inspect_onnx(path, hw)
    elif backend == "tensorrt":
        from bcdeploy.inspect.engine_info import inspect_engine

        info = inspect_engine(path)
    else:
        raise InputError(f"{path}: inspect reads ONNX models and TensorRT engines, not {backend} models")
    click.echo(strict_json(info, indent=2) if as_json else _render(info))


def _render(info: dict) -> str:
    lines = [f"{info['file']} ({info['size_mb']} MB)"]
    if "opset" in info:
        lines.append(f"opset {info['opset']}, producer {info['producer'] or '?'}, {info['nodes']} nodes, "
                     f"{info['parameters']:,} parameters ({info['parameter_mb']} MB)")
        for kind in ("inputs", "outputs"):
            for t in info[kind]:
                lines.append(f"  {kind[:-1]:<6} {t['name']}: {t['dtype']} {t['shape']}")
        if "flops" in info:
            f = info["flops"]
            lines.append(f"  {f['gflops']} GFLOP at {f['input_size'][0]}x{f['input_size'][1]}")
        ops = ", ".join(f"{k} {v}" for k, v in info["operators"].items())
        lines.append(f"  operators: {ops}")
    if info.get("metadata"):
        m = info["metadata"]
        lines.append(f"  bcdeploy: classes {m['classes']}, input {m['input_size']} {m['channel_order']}, "
                     f"mean {m['mean']}, std {m['std']}, output {m['output_kind']}, precision {m['precision']}")
        if m.get("engine"):
            lines.append(f"  engine: {m['engine']}")
    if "inspector" in info:
        lines.append(f"  {info['inspector']}")
    return "\n".join(lines)


def _serve_netron(path: Path, port: int) -> None:
    import time

    from bcdeploy.inspect.netron_server import start_netron, stop_netron

    address = start_netron(path, "127.0.0.1", port)
    click.echo(f"Netron serving {path} at http://{address[0]}:{address[1]} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop_netron(address)
