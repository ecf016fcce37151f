"""cnn-sweep's Ray-free core: config, data, augmentation, input pipeline, model, one epoch of
training, devices and replicas, checkpoint format and the results schema.

Nothing here imports Ray (tests/test_layout.py checks it), so the model and data code can be
used from a notebook; everything that talks to Ray is in `cnn_ray`.
"""
