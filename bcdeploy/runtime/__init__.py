"""Torch-free runtime: read mammograms, run an exported model, write masks and lesion reports.

Only numpy, OpenCV (headless) and the chosen backend are imported here; see
tests/runtime/test_import_isolation.py.
"""
