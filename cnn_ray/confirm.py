"""The confirm stage: after the search, the best configurations and the baselines trained again.

The search stage is cheap (ASHA, one seed, few epochs) and its winner partly lucky: on a small
validation set one image is a quarter of a point. The confirm stage trains the `confirm_top` best
configurations by mean validation accuracy, plus the baseline points, `confirm_seeds` times each
with seeds the search did not use, for `confirm_epochs` epochs under FIFO: every replicate runs
its epochs, so their results are comparable, and configs.csv gives each a mean with an interval.

It is a Tune experiment of its own inside the sweep's folder (<experiment>/confirm, with its own
train_runs/), so `--resume` continues it like the search. Its trials are the chosen samples, handed
to Tune's BasicVariantGenerator as points to evaluate, each knob a choice over the chosen values
(Tune checks a point's keys against the param space).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from ray import tune
from ray.tune.schedulers import FIFOScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from analysis.configs import choose_for_confirm, config_table
from cnn.sweep_results import CONFIRM_DIR, STAGE_SEARCH, config_id, knob_columns, samples_by_config
from cnn.sweep_settings import REPLICATE_KEY, SweepSettings
from cnn_ray.run_record import stage_trials
from cnn_ray.trial import TrialData, TrialPlan, trainable
from cnn_ray.tuner import METRIC, MODE, stage_run_config


def confirm_path(experiment: str) -> str:
    return f"{experiment}/{CONFIRM_DIR}"


def chosen_configurations(experiment: str, settings: SweepSettings) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The search stage's configs.csv rows of the configurations the confirm stage trains (in that
    order), and each one's sample without its replicate index."""
    trials, _, samples = stage_trials(experiment, settings, STAGE_SEARCH)
    table = config_table(pd.DataFrame(trials), knob_columns(settings.space.knobs))
    baselines = [config_id(point) for point in settings.space.baseline_samples(settings.base)]
    chosen = choose_for_confirm(table, settings.confirm_top, baselines)
    by_config = samples_by_config(samples.values())
    rows = table[table["config_id"].isin(chosen)].set_index("config_id").loc[chosen].reset_index()
    return rows, {c: by_config[c] for c in chosen}


def confirm_points(settings: SweepSettings, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every confirm trial's sample: each configuration with each of its fresh replicate indices."""
    return [{**sample, REPLICATE_KEY: settings.confirm_replicate(index)}
            for sample in samples for index in range(settings.confirm_seeds)]


def points_space(points: list[dict[str, Any]]) -> dict[str, Any]:
    """A param space that holds the points: each key a choice over the values they give it."""
    keys = dict.fromkeys(key for point in points for key in point)
    return {key: tune.choice(list(dict.fromkeys(point[key] for point in points))) for key in keys}


def build_confirm_tuner(plan: TrialPlan, data: TrialData, points: list[dict[str, Any]],
                        max_concurrent: int) -> tune.Tuner:
    """`plan` is the confirm stage's (its settings SweepSettings.confirm_stage(), its experiment
    path <experiment>/confirm)."""
    storage_path, name = plan.experiment_path.rsplit("/", 1)
    return tune.Tuner(
        trainable(data, plan),
        param_space=points_space(points),
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, scheduler=FIFOScheduler(),
                                    search_alg=BasicVariantGenerator(points_to_evaluate=points,
                                                                     max_concurrent=max_concurrent),
                                    num_samples=len(points)),
        run_config=stage_run_config(plan, storage_path, name, len(points)),
    )
