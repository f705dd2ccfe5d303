"""DICOM results: Segmentation (seg), Comprehensive SR (sr), Secondary Capture (sc), all made with
highdicom from a source repaired by one rule set (source), with UIDs minted in one place (uids).
"""
