"""Talking to a hospital's PACS: DICOMweb (QIDO-RS, WADO-RS, STOW-RS)."""
