"""Results: what is written for each image, from its label map.

outputs (the output kinds and their files), lesions (connected components, per-lesion rows),
geometry (lesion outlines and areas in pixels and mm), drawing (overlays), dicom/ (SEG, SR, SC,
the source repair, UIDs). Never imports model/ or run/.
"""
