"""Everything of cnn-sweep that talks to Ray: the training workers' loop, the Ray Train
trainer, the Ray Tune tuner and its search space, cluster sizing, a private local Ray,
the storage watch and the tables written from Tune's results.

The model, data and results schema it uses are in the Ray-free `cnn` package.
"""
