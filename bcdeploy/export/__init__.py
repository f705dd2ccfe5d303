"""Export: the only layer that imports torch, MMSeg and onnx to convert a trained model."""
