"""The DMID data layer: a DMID-like generator, metadata readers and MMSeg preparation."""
