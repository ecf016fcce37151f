"""The one source of defaults: every knob of a training run, its unit and its allowed range.

Defaults follow the original study (a course report training this CNN on MNIST and
CIFAR-10 with Keras' ImageDataGenerator): Adam, 5x5 convolutions 32-64-128, L2 on conv and
dense kernels, dropout after each block and before the output, and its augmentation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

FILL_MODES = ("nearest", "reflect", "wrap", "constant")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
LR_SCHEDULES = ("constant", "cosine")
COMMUNICATIONS = ("auto", "nccl", "ring")
COLOR_MODES = ("rgb", "grayscale")  # as keras.utils.image_dataset_from_directory's color_mode
DATA_LOADERS = ("auto", "memory", "stream")
# The ranges augment_strength scales: strength 1 is the original study's augmentation, 0 none.
AUGMENT_RANGES = ("rotation_degrees", "width_shift", "height_shift", "shear_degrees", "zoom")


NO_TARGET = 1.0  # target_accuracy that never stops a run: every epoch runs (the confirm stage, the final model)


def _knob(default: Any, help: str, low: float | None = None, high: float | None = None,
          high_open: bool = False, choices: tuple[str, ...] | None = None) -> Any:
    """A config field carrying its help text and allowed range as metadata."""
    return field(default=default, metadata={
        "help": help, "low": low, "high": high, "high_open": high_open, "choices": choices,
    })


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what one training run trains and how."""

    # --- data ---
    dataset: str = _knob("cifar10", "mnist, fashion_mnist, cifar10, a path to an .npz file, a folder of "
                                    "images with one subfolder per class, or a folder of .npz shards "
                                    "(train-*.npz, test-*.npz; folders local, s3:// or gs://)")
    limit: int | None = _knob(None, "train on the first N training images only (quick runs)", low=1)
    test_limit: int | None = _knob(None, "evaluate on the first N test images only (quick runs)", low=1)
    validation_fraction: float = _knob(
        0.1, "fraction of the training images held out for validation (model selection)",
        low=0.0, high=1.0, high_open=True)
    image_height: int | None = _knob(None, "image folders: resize every image to this height (pixels)", low=1)
    image_width: int | None = _knob(None, "image folders: resize every image to this width (pixels)", low=1)
    color_mode: str = _knob("rgb", "image folders: rgb (3 channels) or grayscale (1)", choices=COLOR_MODES)
    test_fraction: float = _knob(
        0.2, "folders without a test/ folder (or test-*.npz shards): fraction of the images held out as the "
             "test set",
        low=0.0, high=1.0, high_open=True)
    data_loader: str = _knob(
        "auto", "memory: the driver reads the dataset and every worker takes it from Ray's object store; stream "
                "(folders of images or .npz shards): Ray Data reads the training images and streams each worker its shard, the driver "
                "never holds them; auto: stream a folder whose training images would take more than "
                "stream_above_mb decoded", choices=DATA_LOADERS)
    stream_above_mb: float = _knob(
        4096.0, "data_loader=auto: stream a folder whose decoded training images exceed this many MB", low=0.0)

    # --- optimisation ---
    epochs: int = _knob(30, "maximum number of epochs", low=1)
    batch_size: int = _knob(128, "global batch size, split across workers", low=1)
    learning_rate: float = _knob(1e-3, "Adam learning rate", low=0.0, high=10.0)
    lr_schedule: str = _knob(
        "constant", "constant (the original study), or cosine: decay per step from learning_rate to "
        "1% of it at the last of `epochs` epochs", choices=LR_SCHEDULES)
    target_accuracy: float = _knob(
        0.995, "stop once training accuracy reaches this (the original study's callback); 1 never stops",
        low=0.0, high=1.0)
    seed: int = _knob(0, "seed for weight init, shuffling and augmentation", low=0)

    # --- speed (what a GPU user expects; none of these changes what the model is) ---
    precision: str = _knob(
        "float32", "float32, mixed_float16 (NVIDIA GPUs: float16 compute, float32 weights, loss scaling) "
        "or mixed_bfloat16 (TPUs, recent CPUs)", choices=PRECISIONS)
    jit_compile: bool = _knob(False, "compile the training step with XLA")
    communication: str = _knob(
        "auto", "how replicas all-reduce gradients: auto (NCCL on GPUs, TensorFlow's ring over gRPC on CPUs), "
                "nccl, or ring (a fallback where NCCL fails)", choices=COMMUNICATIONS)
    steps_per_execution: int = _knob(
        0, "optimizer steps per call into TensorFlow (Keras' steps_per_execution); 0 = auto: 1 on CPUs, "
           "16 on GPUs, where one step of this model takes milliseconds and per-call overhead adds up",
        low=0)
    deterministic: bool = _knob(
        False, "bit-reproducible ops (tf.config.experimental.enable_op_determinism): the same seed on the same "
               "hardware and software gives the same weights; slower on GPUs (deterministic cuDNN kernels)")
    scale_with_workers: bool = _knob(
        False, "batch_size is per replica (one per worker on CPUs, one per GPU): with N replicas the global "
               "batch is N x batch_size and the learning rate N x learning_rate (the linear scaling rule); "
               "off: batch_size is the global batch, split across replicas, and the learning rate stays as given")

    # --- model and regularisation ---
    bn_momentum: float = _knob(
        0.99, "BatchNormalization moving-average momentum (Keras' 0.99; lower it for runs of few steps)",
        low=0.0, high=1.0, high_open=True)
    dense_units: int = _knob(512, "units of the hidden dense layer", low=1)
    l2_conv: float = _knob(1e-4, "L2 penalty on conv kernels (added to the loss)", low=0.0)
    l2_dense: float = _knob(1e-4, "L2 penalty on dense kernels (added to the loss)", low=0.0)
    dropout_conv: float = _knob(0.25, "dropout rate after each conv block",
                                low=0.0, high=1.0, high_open=True)
    dropout_dense: float = _knob(0.5, "dropout rate before the output layer",
                                 low=0.0, high=1.0, high_open=True)

    # --- augmentation (training split only; one affine resampling per image) ---
    augment: bool = _knob(True, "augment the training images at all")
    augment_on_device: bool = _knob(
        False, "augment inside the model, on the GPU, instead of in the tf.data pipeline on the CPUs "
               "(pays when the CPUs per GPU cannot keep up; see bench/README.md)")
    rotation_degrees: float = _knob(15.0, "max rotation, degrees", low=0.0, high=180.0)
    width_shift: float = _knob(0.1, "max horizontal shift, fraction of width", low=0.0, high=1.0)
    height_shift: float = _knob(0.1, "max vertical shift, fraction of height", low=0.0, high=1.0)
    shear_degrees: float = _knob(
        0.2, "max shear angle, degrees (ImageDataGenerator's shear_range=0.2 meant degrees)",
        low=0.0, high=45.0)
    zoom: float = _knob(0.2, "max zoom: scale drawn from [1-zoom, 1+zoom]",
                        low=0.0, high=1.0, high_open=True)
    horizontal_flip: bool = _knob(True, "flip half the images left-right")
    fill_mode: str = _knob("nearest", "how pixels outside the image are filled", choices=FILL_MODES)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_field(f, getattr(self, f.name))
        if self.augment and self.augment_on_device and self.jit_compile:
            raise ValueError("augment_on_device cannot be combined with jit_compile: XLA has no kernel for the "
                             "affine resampling (ImageProjectiveTransformV3); drop one of the two")
        if (self.image_height is None) != (self.image_width is None):
            raise ValueError("image_height and image_width go together (--image-size HEIGHT WIDTH)")
        if self.deterministic and self.jit_compile:
            raise ValueError("deterministic cannot be combined with jit_compile: XLA has no deterministic "
                             "MaxPool gradient (TensorFlow refuses the step) and its dropout ignores the seed; "
                             "drop one of the two")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Build a config from a mapping; unknown keys raise ValueError."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)}; "
                             f"known keys: {', '.join(f.name for f in dataclasses.fields(cls))}")
        return cls(**values)

    def replace(self, **changes: Any) -> "TrainConfig":
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def for_replicas(self, replicas: int) -> "TrainConfig":
        """The config one run actually trains with on `replicas` replicas in sync (workers x GPUs per
        worker): with scale_with_workers, the global batch and the learning rate grow with the replica
        count; otherwise unchanged."""
        if not self.scale_with_workers or replicas == 1:
            return self
        return self.replace(batch_size=self.batch_size * replicas, learning_rate=self.learning_rate * replicas,
                            scale_with_workers=False)

    def with_augment_strength(self, strength: float) -> "TrainConfig":
        """The original study's augmentation ranges scaled by `strength` (0 switches augmentation off)."""
        defaults = TrainConfig()
        return self.replace(augment=strength > 0,
                            **{key: getattr(defaults, key) * strength for key in AUGMENT_RANGES})

    @property
    def augment_strength(self) -> float:
        """The inverse of with_augment_strength: 0 when off, else the rotation range over the study's."""
        if not self.augment:
            return 0.0
        return round(self.rotation_degrees / TrainConfig().rotation_degrees, 9)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(height, width) that image-folder images are resized to, or None to keep their size."""
        return None if self.image_height is None else (self.image_height, int(self.image_width or 0))

    @property
    def train_images(self) -> str:
        return "all" if self.limit is None else str(self.limit)


def _check_field(f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    base = base_type(f)
    if value is None and "None" in str(f.type):
        return
    if base is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{f.name} must be true or false, got {value!r}")
        return
    if base is str:
        if not isinstance(value, str):
            raise ValueError(f"{f.name} must be a string, got {value!r}")
        if meta["choices"] and value not in meta["choices"]:
            raise ValueError(f"{f.name} must be one of {', '.join(meta['choices'])}, got {value!r}")
        return
    numeric_ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ValueError(f"{f.name} must be an integer, got {value!r}")
    if base is float and (not numeric_ok or not math.isfinite(value)):
        raise ValueError(f"{f.name} must be a finite number, got {value!r}")
    low, high, high_open = meta["low"], meta["high"], meta["high_open"]
    too_low = low is not None and value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise ValueError(f"{f.name}={value!r} is out of range; allowed: {_range_text(low, high, high_open)}")


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def base_type(f: dataclasses.Field) -> type:
    text = str(f.type)
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if text.startswith(name):
            return kind
    raise TypeError(f"unsupported config field type {f.type!r}")


def _range_text(low: float | None, high: float | None, high_open: bool) -> str:
    if high is None:
        return f">= {low}"
    return f"[{low}, {high}{')' if high_open else ']'}"


def field_help(name: str) -> str:
    """The help text of a config field, for command-line flags."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}[name]
