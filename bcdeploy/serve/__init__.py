"""Serving the runtime behind Ray Serve (dynamic batching, HTTP). Triton model repositories are written by export/triton_repo.py."""
