"""bcdeploy: ship MMSegmentation breast-cancer segmentation models to the edge.

Importing the package imports nothing heavy; each layer (data, export, runtime, bench) imports
its own dependencies where they are used, so `bcdeploy --help` works with the runtime alone.
"""

__version__ = "0.1.0"
