"""The model: an exported network and everything to run it exactly as MMSeg did.

sidecar and sidecar_schema (the model's own description, checked before use), checks (is this
export what it says), preprocess / postprocess / sliding_window (MMSeg's test pipeline), predictor
(one image in, one label map out), segmenter (the user-facing object), variants and speed_record
(which export of a folder to run), cpu (what the CPU has), backends/ (one runner per file suffix).
Never imports results/ or run/.
"""
