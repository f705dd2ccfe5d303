"""Metrics computed in numpy, shared by `bcdeploy test`, the parity benchmark and the runtime."""
