_base_ = ['./segmentation_dynamic.py', '../_base_/backends/tensorrt.py']
onnx_config = dict(input_shape=[640, 640])
backend_config = dict(
    model_inputs=[
        dict(
            input_shapes=dict(
                input=dict(
                    min_shape=[1, 3, 512, 512],
                    opt_shape=[1, 3, 640, 640],
                    max_shape=[4, 3, 2048, 2048])))
    ])
