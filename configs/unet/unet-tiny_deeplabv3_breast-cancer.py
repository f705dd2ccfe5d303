# The reference architecture, narrow (8 base channels) at 192x192: trains on 2 CPU cores in minutes
# on generated DMID-like data. The demo, export tests and benchmarks use it as a real checkpoint.
_base_ = ['./unet-s5-d16_deeplabv3_breast-cancer.py']
img_scale = (192, 192)
crop_size = (192, 192)
norm_cfg = dict(type='BN', requires_grad=True)
# MMSeg's DiceLoss flattens all classes together, so with lesions at ~1 % of the pixels it pulls a
# short schedule towards all-background; a class-weighted CE alone finds the lesions in a few hundred
# steps (bcdeploy's WeightedCrossEntropyLoss: MMSeg 1.2.2's CE crashes on class_weight with ignored
# pixels). PhotoMetricDistortion is left out for the same reason: the tiny model has minutes, not hours.
custom_imports = dict(imports=['bcdeploy.train.dataset', 'bcdeploy.train.losses'], allow_failed_imports=False)
# Benign weighed 3x: benign lesions are fewer and smaller than malignant ones (a fifth of the lesion pixels
# in the demo data), and at 1x the tiny model calls every lesion malignant (benign Dice 0.00); at 3x, with
# benign masses drawn fat-containing or low density (data/synth.py), the demo's test table (500
# iterations, seed 0, scripts/demo.sh on a fresh clone): benign Dice 29.6, malignant 60.0, 7/8 lesions found.
class_weight = [0.03, 3.0, 1.0]
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(base_channels=8, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=8, channels=8, dilations=(1, 3, 6, 9), norm_cfg=norm_cfg,
        loss_decode=[
            dict(type='WeightedCrossEntropyLoss', loss_name='loss_ce', class_weight=class_weight, loss_weight=1.0),
        ]),
    auxiliary_head=dict(
        in_channels=16, channels=8, norm_cfg=norm_cfg,
        loss_decode=[
            dict(type='WeightedCrossEntropyLoss', loss_name='loss_ce', class_weight=class_weight, loss_weight=0.4),
        ]),
    test_cfg=dict(mode='whole'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=4, num_workers=1, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# AdamW instead of the reference's SGD: a narrow net must learn in a few hundred iterations.
optimizer = dict(_delete_=True, type='AdamW', lr=0.005, weight_decay=0.01)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=500, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=500, val_interval=500)
# A fixed seed: the figures quoted above (and the demo's test table) are then one run's, not a draw.
randomness = dict(seed=0)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=200, max_keep_ckpts=2))
