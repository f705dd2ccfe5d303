"""Export: a trained MMSeg model -> checked ONNX / FP16 / INT8 / OpenVINO / TensorRT artifacts.

api.export() runs the steps; each returns an Artifact (artifacts.py: the file, its sidecar, its
parity against PyTorch from parity.py, or the reason it is not checked). This package is where
conversion needs torch, MMSeg and onnx; it is not the only package importing them: train/ (training,
`predict`, the data-only checkpoint loader) and bench/ (the PyTorch reference of parity and latency)
import torch and MMSeg, inspect/ reads onnx. bcdeploy/runtime imports none of them, which
tests/runtime/test_import_isolation.py proves in a venv without torch.
"""
