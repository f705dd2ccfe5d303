# MMDeploy's ONNX export settings, as bcdeploy reads them (opset 17: bcdeploy's pinned exporter).
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=17,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['output'],
    input_shape=None,
    optimize=True)
