# Two classes: background / tumor (data prepared with `bcdeploy prepare --binary`).
_base_ = ['./unet-s5-d16_deeplabv3_breast-cancer.py']
metainfo = dict(classes=('background', 'tumor'), palette=[[0, 0, 0], [255, 0, 0]])
model = dict(
    decode_head=dict(num_classes=2),
    auxiliary_head=dict(num_classes=2))
train_dataloader = dict(dataset=dict(metainfo=metainfo))
val_dataloader = dict(dataset=dict(metainfo=metainfo))
test_dataloader = val_dataloader
