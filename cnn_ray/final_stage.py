"""The final stage: train the chosen configuration on training + validation data and export it
(cnn/final_model.py says what is chosen and what is written).

One Ray Train run at <experiment>/final/train, on the sweep's resources per trial. Run again
(`--resume`), it continues that run from its latest checkpoint; an export already written is kept.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs
import ray

from analysis.configs import config_table, scored
from analysis.evidence import ranking_verdict, stage_rows
from cnn.data import Dataset, DataSummary, names_a_folder, resolve_dataset, sha256_of
from cnn.final_model import (FINAL_MODEL_DIR, FINAL_RUN_DIR, MODEL_CARD, final_epochs, folded_summary, model_card,
                             training_plus_validation)
from cnn.sweep_results import (CONFIRM_DIR, STAGE_CONFIRM, STAGE_SEARCH, checkpoint_states, filesystem,
                               knob_columns, samples_by_config, write_text)
from cnn_ray.run_record import git_commit, package_versions, stage_trials
from cnn_ray.job_data import JobData
from cnn_ray.streaming import Stream
from cnn_ray.trainer import make_trainer
from cnn_ray.trial import TrialPlan

RUN_NAME = "train"


def final_model_path(experiment: str) -> str:
    return f"{experiment}/{FINAL_MODEL_DIR}"


def exported(experiment: str) -> bool:
    fs, path = filesystem(f"{final_model_path(experiment)}/{MODEL_CARD}")
    return fs.get_file_info(path).type == pafs.FileType.File


def choose(plan: TrialPlan) -> tuple[pd.Series, dict[str, Any], int, str]:
    """The configuration to train (its configs.csv row), its sample, the epochs to train it for, and
    the ranking's verdict (a winner, or the first of configurations tied within their intervals)."""
    settings, experiment = plan.settings, plan.experiment_path
    trials, _, samples = stage_trials(experiment, settings, STAGE_SEARCH)
    if settings.confirm_top and ray.tune.Tuner.can_restore(f"{experiment}/{CONFIRM_DIR}"):
        confirm_trials, _, confirm_samples = stage_trials(f"{experiment}/{CONFIRM_DIR}", settings.confirm_stage(),
                                                          STAGE_CONFIRM)
        trials, samples = trials + confirm_trials, {**samples, **confirm_samples}
    frame = pd.DataFrame(trials)
    table = config_table(frame, knob_columns(settings.space.knobs))
    # The confirm stage's evidence, unless none of it has a result.
    stage = STAGE_CONFIRM if not stage_rows(table, STAGE_CONFIRM).empty else STAGE_SEARCH
    ranked = stage_rows(table, stage)
    if ranked.empty:
        raise ValueError("no configuration has a result: nothing to train a final model of")
    chosen = ranked.iloc[0]
    by_config = samples_by_config(samples.values())
    ids = [t for t in str(chosen["trial_ids"]).split(";") if t]
    counted = scored(frame[frame["trial_id"].isin(ids)])  # as configs.csv's n: failed replicates left out
    epochs = final_epochs(counted, list(counted["trial_id"]))
    return chosen, by_config[chosen["config_id"]], epochs, ranking(table, stage)


def ranking(table: pd.DataFrame, stage: str) -> str:
    """model_card.json's word on the choice: a winner, a tie within intervals, or untested (one seed each)."""
    rows = stage_rows(table, stage)
    if len(rows) > 1 and not (rows["n"] >= 2).any():
        return ("One seed per configuration: first by a single run's validation accuracy, not tested against "
                "seed-to-seed noise.")
    verdict, _ = ranking_verdict(table, stage, lambda row: f"configuration {row['config_id']}")
    return verdict[0].upper() + verdict[1:]


def run_final_stage(plan: TrialPlan, data: JobData, data_dir: str | None) -> str:
    """Train and export the final model; its folder. Prints what it does."""
    experiment = plan.experiment_path
    if exported(experiment):
        print(f"== final model: already exported at {final_model_path(experiment)}", flush=True)
        return final_model_path(experiment)
    chosen, sample, epochs, verdict = choose(plan)
    config = plan.settings.final_config(sample, epochs)
    trained, ref, stream = final_data(data)
    print(f"== final model: configuration {chosen['config_id']} ({chosen['stage']} stage, mean validation accuracy "
          f"{100 * chosen['val_accuracy_mean']:.2f}% over {int(chosen['n'])} seed(s)), trained for {epochs} epochs on "
          f"{trained.train} training + validation images, in {experiment}/{FINAL_RUN_DIR}", flush=True)
    trainer = make_trainer(config, ref, plan.resources, storage_path=f"{experiment}/{FINAL_RUN_DIR}",
                           name=RUN_NAME, max_failures=plan.settings.worker_max_failures, stream=stream,
                           verbose=plan.verbose)
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    states = checkpoint_states(f"{experiment}/{FINAL_RUN_DIR}/{RUN_NAME}")
    checkpoint, state = max(states, key=lambda s: s[1].epochs_done)
    card = model_card(config=state.config or config.to_dict(), data=trained, folded_validation=data.summary.validation,
                      dataset_sha256=dataset_sha256(config.dataset, data_dir),
                      chosen=chosen.to_dict(), ranking=verdict, final_test_accuracy=state.history[-1]["test_accuracy"],
                      epochs_run=state.epochs_done, experiment=experiment, git_commit=git_commit(),
                      packages=package_versions())
    return _export(checkpoint, card, final_model_path(experiment))


def final_data(data: JobData) -> tuple[DataSummary, ray.ObjectRef, Stream | None]:
    """What the final model trains on: the training and validation images together (the arrays put
    in the object store, or a stream of both files), the test images to evaluate, and their counts."""
    if data.trial.stream is None:
        merged = training_plus_validation(data.arrays())
        return merged.summary(), ray.put(merged), None
    stream = ray.get(data.reader.training_stream.remote(with_validation=True))
    return folded_summary(data.summary), _without_validation.remote(data.trial.ref), stream


@ray.remote(num_cpus=0)
def _without_validation(data: Dataset) -> Dataset:
    """The test images alone, on the cluster (the driver of a stream holds no images)."""
    return dataclasses.replace(data, x_val=data.x_val[:0], y_val=data.y_val[:0])


def dataset_sha256(dataset: str, data_dir: str | None) -> str | None:
    """The checksum of the .npz the model was trained from; None for Keras' download and for image
    folders (many files: the model card names the folder and its file count instead)."""
    if names_a_folder(dataset):
        return None
    _, path = resolve_dataset(dataset, data_dir)
    return sha256_of(path) if path is not None else None


def _export(checkpoint: str, card: dict[str, Any], target: str) -> str:
    """Export the checkpoint's model (downloaded first if it is in a bucket) to `target`; in a bucket,
    model_card.json goes up last, so that its presence means the export is whole."""
    from cnn.final_model import export_model
    from cnn.model_io import load_model

    with tempfile.TemporaryDirectory(prefix="cnn-final-") as scratch:
        if "://" in checkpoint:
            local = Path(scratch) / "checkpoint"
            pafs.copy_files(checkpoint, str(local))
            checkpoint = str(local)
        model = load_model(checkpoint)
        if "://" not in target:
            return str(export_model(model, Path(target), card))
        folder = export_model(model, Path(scratch) / FINAL_MODEL_DIR, card)
        card_text = (folder / MODEL_CARD).read_text()
        (folder / MODEL_CARD).unlink()
        pafs.copy_files(str(folder), target)
        write_text(f"{target}/{MODEL_CARD}", card_text)
        return target
