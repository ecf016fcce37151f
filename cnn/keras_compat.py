"""Which Keras this project trains with, and why: Keras 2 (`tf_keras`), imported as `keras`.

Keras 3's `model.fit` fails under `tf.distribute.MultiWorkerMirroredStrategy` as soon as
there are two workers ("Attempt to convert a value (PerReplica:{...})", keras-team/keras#20585,
ray-project/ray#47464, tensorflow/tensorflow#72388); with one worker it works, which hides the
bug until a run is scaled out. `tf_keras` 2.21, the Keras 2 that TensorFlow still ships,
trains correctly with fit, BatchNormalization, L2 and Dropout on 2+ workers, with both
workers ending on identical weights (tests/test_distributed.py checks exactly that).
Setting TF_USE_LEGACY_KERAS=1 is not enough: Ray sets it on workers after TensorFlow is
imported, so `tf.keras` stays Keras 3 there. Importing `tf_keras` directly is reliable.

Every module imports Keras from here, so the choice lives in one place.
"""

import tf_keras as keras
from tf_keras import layers, regularizers

__all__ = ["keras", "layers", "regularizers"]
