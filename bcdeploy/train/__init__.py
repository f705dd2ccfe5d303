"""Training and evaluation through MMSegmentation/MMEngine as they are (configs in configs/).

Importing this package prepares MMSeg for mmcv-lite and torch >= 2.6 (see mmseg_compat), so every
module below can import mmseg freely.
"""

from bcdeploy.train import mmseg_compat

mmseg_compat.install()
