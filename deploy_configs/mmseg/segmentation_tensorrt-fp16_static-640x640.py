_base_ = ['./segmentation_static.py', '../_base_/backends/tensorrt-fp16.py']
onnx_config = dict(input_shape=[640, 640])
backend_config = dict(
    model_inputs=[
        dict(
            input_shapes=dict(
                input=dict(
                    min_shape=[1, 3, 640, 640],
                    opt_shape=[1, 3, 640, 640],
                    max_shape=[1, 3, 640, 640])))
    ])
