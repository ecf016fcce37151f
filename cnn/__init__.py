"""cnn-sweep: the model and its training (config, data, augmentation, model, train loop).

Nothing in this package but `cnn.train_worker` imports Ray, so the model and data code can
be used from a notebook.
"""
