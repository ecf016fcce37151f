"""trials.csv and epochs.csv rows from what a trial's checkpoints store (no Ray, no training)."""

from __future__ import annotations

from pathlib import Path

from cnn.checkpoint_state import STOP_MAX_EPOCHS, CheckpointState
from cnn.sweep_results import EPOCH_COLUMNS, SWEPT_KEYS, config_id, samples_by_config, tables_text, trial_rows
from cnn.sweep_file import PRESETS
from cnn.sweep_settings import REPLICATE_KEY


def epoch_row(epoch: int, val_accuracy: float, config) -> dict:
    metrics = {"train_loss": 1.0 / epoch, "train_accuracy": 0.5, "val_loss": 1.0, "val_accuracy": val_accuracy,
               "test_loss": 1.0, "test_accuracy": val_accuracy - 0.01}
    return {"epoch": epoch, **metrics, "train_seconds": 2.0, "epoch_seconds": 3.0, "images_per_second": 100.0,
            "global_batch_size": config.batch_size, "learning_rate": config.learning_rate, "node_id": "n1",
            "fit_started_at": 0.0, "stop_reason": STOP_MAX_EPOCHS if epoch == 2 else ""}


def write_run(run: Path, config) -> None:
    """Two checkpoints as a worker leaves them: epoch 1 (the best) and epoch 2 (the latest)."""
    state = CheckpointState()
    for epoch, accuracy in ((1, 0.9), (2, 0.8)):
        state = state.after_epoch(epoch_row(epoch, accuracy, config), config.to_dict())
        folder = run / f"checkpoint_00000{epoch}"
        folder.mkdir(parents=True)
        state.write(folder)


def test_the_row_holds_the_config_the_worker_trained_with_not_the_requested_one(tmp_path):
    settings = PRESETS["smoke"].replace(base=PRESETS["smoke"].base.replace(scale_with_workers=True, epochs=2))
    sample = {"l2_conv": 1e-3, "augment_strength": 0.5}
    requested = settings.trial_config(sample)
    trained = requested.for_replicas(2)  # what a 2-worker trial trains with: batch and rate doubled
    write_run(tmp_path / "run", trained)

    row, epochs = trial_rows("t1", sample, requested, str(tmp_path / "run"), {"time_total_s": 9.0}, None, 2)
    assert (row["config_batch_size"], row["config_learning_rate"]) == (2 * requested.batch_size,
                                                                        2 * requested.learning_rate)
    assert (row["l2_conv"], row["l2_dense"], row["augment_strength"]) == (1e-3, 1e-3, 0.5)
    assert set(SWEPT_KEYS) <= set(row), "every swept knob has its column, whatever the search"
    assert (row["status"], row["best_epoch"], row["best_val_accuracy"]) == ("finished", 1, 0.9)
    assert [e["global_batch_size"] for e in epochs] == [trained.batch_size] * 2
    assert [e["learning_rate"] for e in epochs] == [trained.learning_rate] * 2
    _, epochs_csv = tables_text([row], epochs)
    assert epochs_csv.splitlines()[0].split(",") == list(EPOCH_COLUMNS)


def test_a_trial_without_a_checkpoint_reports_the_requested_config(tmp_path):
    requested = PRESETS["local"].trial_config({"l2_conv": 1e-4, "augment_strength": 0.0})
    row, epochs = trial_rows("t2", {}, requested, str(tmp_path / "never_started"), {}, "ValueError: boom", 5)
    assert row["status"] == "failed" and row["stop_reason"] == "error: ValueError: boom" and epochs == []
    assert (row["l2_conv"], row["l2_dense"], row["augment_strength"], row["config_augment"]) == (1e-4, 1e-4, 0.0,
                                                                                                 False)


def test_every_knob_the_sweep_varies_has_a_column_of_its_own(tmp_path):
    requested = PRESETS["local"].base.replace(dense_units=128, learning_rate=3e-4)
    write_run(tmp_path / "run", requested)
    row, _ = trial_rows("t3", {"dense_units": 128, "learning_rate": 3e-4}, requested, str(tmp_path / "run"), {},
                        None, 2, swept=("dense_units", "learning_rate"))
    assert (row["dense_units"], row["learning_rate"]) == (128, 3e-4)
    assert set(SWEPT_KEYS) <= set(row)


def test_replicates_of_a_configuration_share_its_config_id_and_record_their_seed(tmp_path):
    settings = PRESETS["smoke"].replace(seeds=2)
    rows = []
    for index, l2 in ((0, 1e-3), (1, 1e-3), (0, 1e-4)):
        sample = {"l2_conv": l2, "augment_strength": 0.5, REPLICATE_KEY: index}
        config = settings.trial_config(sample)
        write_run(tmp_path / f"run{len(rows)}", config)
        row, _ = trial_rows(f"t{len(rows)}", sample, config, str(tmp_path / f"run{len(rows)}"), {}, None, 2)
        rows.append(row)
    base_seed = settings.base.seed
    assert [row["seed"] for row in rows] == [base_seed, base_seed + 1, base_seed]
    assert rows[0]["config_id"] == rows[1]["config_id"] != rows[2]["config_id"]
    trials_csv, _ = tables_text(rows, [])
    assert trials_csv.splitlines()[0].split(",")[:4] == ["trial_id", "stage", "config_id", "seed"]


def test_samples_by_config_keeps_one_sample_per_configuration_without_its_replicate_index():
    samples = [{"l2_conv": 0.0, REPLICATE_KEY: 0}, {"l2_conv": 0.0, REPLICATE_KEY: 1},
               {"l2_conv": 1e-3, REPLICATE_KEY: 0}]
    by_config = samples_by_config(samples)
    assert by_config == {config_id({"l2_conv": 0.0}): {"l2_conv": 0.0},
                         config_id({"l2_conv": 1e-3}): {"l2_conv": 1e-3}}
