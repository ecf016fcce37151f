"""cnn/search_space.py: a search space as data, checked against each knob's own allowed values."""

import pytest

from cnn.config import TrainConfig
from cnn.search_space import Domain, SearchSpace, SearchSpaceError

SPACE = {
    "l2_conv": {"loguniform": [1e-6, 1e-2]},
    "l2_dense": {"same_as": "l2_conv"},
    "dropout_conv": {"uniform": [0.0, 0.5]},
    "dense_units": {"choice": [256, 512]},
    "batch_size": {"randint": [32, 129]},
    "augment_strength": {"grid": [0.0, 1.0]},
    "learning_rate": 0.002,
}


def test_a_space_is_parsed_into_domains_ties_fixed_values_and_baselines():
    space = SearchSpace.from_dict(SPACE, baselines=[{"l2_conv": 0.0}])
    assert space.domains["l2_conv"] == Domain("loguniform", (1e-6, 1e-2)) and space.domains["l2_conv"].is_log
    assert space.tied == {"l2_dense": "l2_conv"} and space.fixed == {"learning_rate": 0.002}
    assert space.knobs == ("l2_conv", "dropout_conv", "dense_units", "batch_size", "augment_strength", "l2_dense")
    assert space.grid_size == 2 and space.has_grid
    # The round trip a sweep file and sweep.json rely on.
    again = SearchSpace.from_dict(space.to_dict()["space"], space.to_dict()["baselines"])
    assert again == space
    assert space.describe()["l2_dense"] == "tied: the same value as l2_conv"
    assert space.describe()["batch_size"] == "randint [32, 129)"


def test_a_sample_becomes_a_config_with_ties_fixed_values_and_the_derived_augmentation():
    space = SearchSpace.from_dict(SPACE)
    config = space.apply(TrainConfig(), {"l2_conv": 3e-4, "dropout_conv": 0.1, "dense_units": 256,
                                         "batch_size": 64, "augment_strength": 0.0})
    assert (config.l2_conv, config.l2_dense, config.dropout_conv, config.dense_units) == (3e-4, 3e-4, 0.1, 256)
    assert config.learning_rate == 0.002 and config.augment is False


def test_baselines_become_full_samples_with_the_base_configs_other_values():
    base = TrainConfig(dropout_conv=0.3, dense_units=512, batch_size=64)
    space = SearchSpace.from_dict(SPACE, baselines=[{"l2_conv": 0.0}, {"l2_conv": 0.0, "augment_strength": 0.0}],
                                  base=base)
    first, second = space.baseline_samples(base)
    assert first == {"l2_conv": 0.0, "dropout_conv": 0.3, "dense_units": 512, "batch_size": 64,
                     "augment_strength": 1.0}
    assert second["augment_strength"] == 0.0
    assert space.apply(base, first).l2_dense == 0.0  # the tie holds for baselines too


@pytest.mark.parametrize("space, baselines, key, says", [
    ({"l2_cnv": {"uniform": [0, 1]}}, None, "l2_cnv", "is no knob; knobs: "),
    ({"epochs": {"choice": [5, 10]}}, None, "epochs", "set it under `train:`"),
    ({"dropout_conv": {"uniform": [0, 1.5]}}, None, "dropout_conv", "dropout_conv=1.5 is out of range; allowed: [0.0, 1.0)"),
    ({"l2_conv": {"loguniform": [0, 1e-2]}}, None, "l2_conv", "a log domain needs low > 0"),
    ({"learning_rate": {"qloguniform": [-1, 1e-2, 1e-4]}}, None, "learning_rate", "a log domain needs low > 0"),
    ({"l2_conv": {"uniform": [1e-2, 1e-4]}}, None, "l2_conv", "low must be below high"),
    ({"l2_conv": {"uniform": [0, "x"]}}, None, "l2_conv", "uniform takes [low, high] as numbers"),
    ({"l2_conv": {"quniform": [0, 1]}}, None, "l2_conv", "quniform takes [low, high, q]"),
    ({"dense_units": {"uniform": [64, 512]}}, None, "dense_units", "is a whole number: use randint, choice or grid"),
    ({"precision": {"choice": ["float32", "float64"]}}, None, "precision", "must be one of float32"),
    ({"lr_schedule": {"uniform": [0, 1]}}, None, "lr_schedule", "takes str values: use choice or grid"),
    ({"l2_conv": {"normal": [0, 1]}}, None, "l2_conv", "a domain is one of {uniform, loguniform"),
    ({"l2_conv": {"choice": []}}, None, "l2_conv", "choice takes a list"),
    ({"l2_conv": {"grid": [0.1, 0.1]}}, None, "l2_conv", "the values repeat"),
    ({"l2_dense": {"same_as": "l2_conv"}}, None, "l2_dense", "'l2_conv' must be a sampled knob"),
    ({"augment_strength": {"uniform": [0, 6]}}, None, "augment_strength", "augment_strength=6 is out of range; allowed: from 0 to below 5 (there the study's zoom leaves"),
    ({"learning_rate": 0.001}, None, "space", "samples no knob"),
    ({"dropout_conv": 1.0}, None, "dropout_conv", "value: dropout_conv=1.0 is out of range"),
    ({"l2_conv": {"uniform": [0, 1]}}, [{"l2_conv": -1}], "baselines[0].l2_conv", "l2_conv=-1 is out of range"),
    ({"l2_conv": {"uniform": [0, 1]}}, [{"dropout_conv": 0.1}], "baselines[0].dropout_conv", "is not sampled here"),
    ({"l2_conv": {"uniform": [0, 1]}, "l2_dense": {"same_as": "l2_conv"}}, [{"l2_dense": 0}],
     "baselines[0].l2_dense", "is tied to l2_conv"),
    ([], None, "space", "must map one or more knobs"),
    ({"l2_conv": {"uniform": [0, 1]}, "l2_dense": {"same_as": ["l2_conv"]}}, None, "l2_dense",
     "same_as takes the name of a sampled knob"),
    ({"augment_strength": {"grid": [0, 1]}, "zoom": 0.1}, None, "augment_strength", "sets zoom itself"),
    ({"learning_rate": {"quniform": [0.0005, 0.01, 0.001]}}, None, "learning_rate", "multiples of q"),
    ({"l2_conv": {"grid": [0, 0.0]}}, None, "l2_conv", "the values repeat"),
    ({"augment_strength": {"choice": [True]}}, None, "augment_strength", "augment_strength must be a number"),
])
def test_a_bad_space_names_its_key_and_what_is_allowed(space, baselines, key, says):
    with pytest.raises(SearchSpaceError) as caught:
        SearchSpace.from_dict(space, baselines)
    assert caught.value.key == key
    assert says in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_baseline_may_lie_outside_its_domain_but_inside_the_knobs_range():
    space = SearchSpace.from_dict({"l2_conv": {"loguniform": [1e-6, 1e-2]}}, baselines=[{"l2_conv": 0}])
    assert space.baselines == ({"l2_conv": 0},)


def test_augment_strength_up_to_its_limit_and_not_past_it():
    assert SearchSpace.from_dict({"augment_strength": {"uniform": [0, 4.9]}})
    with pytest.raises(SearchSpaceError, match="from 0 to below 5"):
        SearchSpace.from_dict({"augment_strength": {"uniform": [0, 5]}})


def test_the_corners_cover_every_list_value_and_both_ends_of_each_range():
    space = SearchSpace.from_dict({"dropout_conv": {"uniform": [0.1, 0.4]}, "dense_units": {"randint": [64, 129]},
                                   "precision": {"choice": ["float32", "mixed_bfloat16"]}},
                                  baselines=[{"dropout_conv": 0.0}])
    corners = space.corners(TrainConfig())
    assert len(corners) == 2 * 2 * 2 + 1 and corners[-1]["dropout_conv"] == 0.0
    assert {c["dense_units"] for c in corners[:-1]} == {64, 128}  # randint's high is exclusive


def test_a_domain_knows_which_values_a_sample_of_it_could_take():
    space = SearchSpace.from_dict({"l2_conv": {"loguniform": [1e-6, 1e-2]}, "dense_units": {"choice": [128, 256]},
                                   "batch_size": {"randint": [32, 64]}, "dropout_conv": {"quniform": [0.0, 0.5, 0.1]}})
    inside = {"l2_conv": 1e-3, "dense_units": 256, "batch_size": 63, "dropout_conv": 0.3}
    assert space.contains(inside)
    for knob, outside in (("l2_conv", 0.0), ("dense_units", 512), ("batch_size", 64), ("batch_size", 40.5),
                          ("dropout_conv", 0.25),
                          ("dense_units", "256")):
        assert not space.contains({**inside, knob: outside}), (knob, outside)
    assert not space.contains({"l2_conv": 1e-3}), "a sample names every sampled knob"
