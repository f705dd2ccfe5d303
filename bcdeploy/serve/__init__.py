"""Serving the runtime behind Ray Serve (dynamic batching, HTTP), and Triton model repositories."""
