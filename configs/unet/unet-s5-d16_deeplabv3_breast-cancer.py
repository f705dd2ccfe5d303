# The reference model: UNet-S5-D16 + ASPP, 3 classes (background, benign, malignant), 640x640,
# CE + Dice, SGD 0.01, PolyLR to 1e-4, 40k iterations, a checkpoint every 4k.
_base_ = [
    '../_base_/models/unet-s5-d16_deeplabv3.py',
    '../_base_/datasets/breast-cancer.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_40k.py',
]
