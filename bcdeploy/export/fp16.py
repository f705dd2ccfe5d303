"""FP16 ONNX for TensorRT 11's strongly typed networks (and TensorRT 10 alike).

TensorRT 11 removed weakly typed networks and the FP16 builder flag: the precision must be in the
ONNX itself. We rewrite the graph so that activations run in FP16 while three things stay FP32:
* the precision-sensitive tail and reductions: Resize of logits, Softmax/ArgMax, global pooling
  (ASPP's image pool averages a whole feature map) - `FP32_OPS`;
* shape arithmetic (Shape -> Cast -> Mul -> Resize sizes): FP16 holds integers exactly only up to
  2048, so a 4096-px input would get wrong sizes; only tensors that depend on the image data through
  non-shape ops become FP16;
* the graph's inputs and outputs, so every precision is fed and read the same way.
Casts are inserted where an FP16 producer meets an FP32 consumer or the reverse, once per tensor.

(onnxconverter-common's converter does the same job but stalled for minutes on our UNet graphs;
this one is a single pass over the nodes.)
"""

from __future__ import annotations

from pathlib import Path

from bcdeploy.fileio import atomic_path

FP32_OPS = frozenset({"Resize", "Softmax", "ArgMax", "GlobalAveragePool", "ReduceMean", "LayerNormalization",
                      "Upsample", "Range", "ConstantOfShape", "Constant"})
_SHAPE_OPS = frozenset({"Shape", "Size"})


def convert_to_fp16(src: str | Path, dst: str | Path, keep_fp32_ops: frozenset[str] = FP32_OPS) -> Path:
    import onnx

    model = onnx.load(str(src))
    _convert_graph(model, keep_fp32_ops)
    onnx.checker.check_model(model)
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
    return dst


def _convert_graph(model, keep_fp32_ops) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    elem_type = {v.name: v.type.tensor_type.elem_type for v in
                 list(inferred.graph.value_info) + list(graph.input) + list(graph.output)}
    initializers = {t.name: t for t in graph.initializer}
    for name, tensor in initializers.items():
        elem_type[name] = tensor.data_type
    is_float = lambda name: elem_type.get(name) == TensorProto.FLOAT  # noqa: E731

    # 1. which tensors carry image data (activations), and which nodes run in FP16
    activation = {i.name for i in graph.input if i.name not in initializers}
    fp16_nodes = set()
    for index, node in enumerate(graph.node):
        if node.op_type in _SHAPE_OPS or not any(i in activation for i in node.input):
            continue
        activation.update(node.output)
        if node.op_type not in keep_fp32_ops:
            fp16_nodes.add(index)

    # 2. precision each float tensor is stored in: FP16 node outputs and initializers only FP16 nodes read
    readers: dict[str, list[int]] = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            readers.setdefault(name, []).append(index)
    half = {out for i in fp16_nodes for out in graph.node[i].output if is_float(out)}
    for name, tensor in initializers.items():
        if tensor.data_type == TensorProto.FLOAT and readers.get(name) and all(r in fp16_nodes for r in readers[name]):
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), name))
            half.add(name)

    # 3. casts where a tensor's precision differs from what its reader computes in
    new_nodes, casts = [], {}

    def cast(name: str, to_half: bool) -> str:
        key = (name, to_half)
        if key not in casts:
            casts[key] = f"{name}__to_{'fp16' if to_half else 'fp32'}"
            new_nodes.append(helper.make_node("Cast", [name], [casts[key]], to=TensorProto.FLOAT16 if to_half else TensorProto.FLOAT,
                                              name=f"bcdeploy_cast_{len(casts)}"))
        return casts[key]

    for index, node in enumerate(graph.node):
        wants_half = index in fp16_nodes
        for k, name in enumerate(node.input):
            if name and (is_float(name) or name in half) and (name in half) != wants_half:
                node.input[k] = cast(name, wants_half)
        if wants_half and node.op_type == "Cast" and node.attribute[0].i == TensorProto.FLOAT:
            node.attribute[0].i = TensorProto.FLOAT16
        new_nodes.append(node)
    for output in graph.output:  # outputs stay FP32: rename the producer's tensor and cast back
        if output.name in half:
            inner = f"{output.name}__fp16"
            for node in new_nodes:
                node.output[:] = [inner if o == output.name else o for o in node.output]
                node.input[:] = [inner if i == output.name else i for i in node.input]
            new_nodes.append(helper.make_node("Cast", [inner], [output.name], to=TensorProto.FLOAT, name="bcdeploy_cast_output"))
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]  # stale types; runtimes infer them again
