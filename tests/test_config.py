import dataclasses

import pytest

from cnn.config import TrainConfig


def test_defaults_follow_the_original_study():
    config = TrainConfig()
    assert config.dataset == "cifar10"
    assert config.rotation_degrees == 15 and config.width_shift == 0.1 and config.height_shift == 0.1
    assert config.shear_degrees == 0.2 and config.zoom == 0.2 and config.horizontal_flip
    assert config.fill_mode == "nearest" and config.target_accuracy == 0.995


@pytest.mark.parametrize("key, value, words", [
    ("dropout_conv", 1.0, ["dropout_conv", "[0.0, 1.0)"]),
    ("dropout_dense", -0.1, ["dropout_dense", "[0.0, 1.0)"]),
    ("l2_conv", -1e-4, ["l2_conv", ">= 0.0"]),
    ("epochs", 0, ["epochs", ">= 1"]),
    ("validation_fraction", 1.0, ["validation_fraction", "[0.0, 1.0)"]),
    ("target_accuracy", 1.5, ["target_accuracy", "[0.0, 1.0]"]),
    ("learning_rate", float("nan"), ["learning_rate", "finite"]),
    ("epochs", 2.5, ["epochs", "integer"]),
    ("augment", "yes", ["augment", "true or false"]),
    ("fill_mode", "mirror", ["fill_mode", "nearest"]),
    ("lr_schedule", "step", ["lr_schedule", "constant, cosine"]),
])
def test_out_of_range_values_name_the_key_and_the_range(key, value, words):
    with pytest.raises(ValueError) as error:
        TrainConfig().replace(**{key: value})
    for word in words:
        assert word in str(error.value)


def test_unknown_keys_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown config key.*dropuot"):
        TrainConfig.from_dict({"dropuot": 0.3})


def test_round_trip_and_frozen():
    config = TrainConfig(dataset="mnist", l2_conv=0.0, limit=100)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3  # type: ignore[misc]


def test_scaling_with_workers_grows_the_global_batch_and_the_learning_rate_linearly():
    per_worker = TrainConfig(batch_size=64, learning_rate=1e-3, scale_with_workers=True)
    on_four = per_worker.for_replicas(4)
    assert (on_four.batch_size, on_four.learning_rate) == (256, 4e-3)
    assert per_worker.for_replicas(1) == per_worker
    fixed = TrainConfig(batch_size=128, learning_rate=1e-3)  # the default: a global batch split across workers
    assert fixed.for_replicas(4) == fixed


def test_deterministic_ops_cannot_be_combined_with_xla():
    with pytest.raises(ValueError, match="deterministic cannot be combined with jit_compile"):
        TrainConfig(deterministic=True, jit_compile=True)
    assert TrainConfig(deterministic=True).deterministic
