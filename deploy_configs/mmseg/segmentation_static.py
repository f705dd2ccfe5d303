_base_ = ['../_base_/onnx_config.py']
# bcdeploy keeps logits by default: MMSeg resizes logits before the argmax (exact masks).
codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=False)
