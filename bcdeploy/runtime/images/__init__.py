"""Images: turning a file into pixels, and nothing else.

imageio (read any supported file: TIFF/PNG/JPEG/DICOM, by content, sizes checked before decoding),
headers (dimensions from a header without decoding), dicom (DICOM datasets and their pixel data),
intensity (windowing 16-bit scans to what the model saw), decoder_guard (any decoder failure becomes
that file's one InputError line). Imports nothing from model/, results/ or run/.
"""
