"""Export: a trained MMSeg model -> checked ONNX / FP16 / INT8 / OpenVINO / TensorRT artifacts.

Conversion imports torch, MMSeg and onnx here (train/ and bench/ import torch too); the runtime never does.
"""
