"""cnn/sweep_file.py: a sweep as a YAML file, the presets as such files, one line for a bad one."""

from pathlib import Path

import pytest

from cnn.config import NO_TARGET
from cnn.sweep_settings import REPLICATE_KEY
from cnn.sweep_file import PRESETS, PRESETS_DIR, SweepFileError, dump_sweep, load_sweep_file, preset_names

# The README's example: the learning rate and the dense width, Optuna's TPE and ASHA.
MY_SWEEP = """\
train:
  dataset: mnist
  limit: 4000
  epochs: 9
  bn_momentum: 0.9
  horizontal_flip: false
search: {algorithm: tpe, num_samples: 12, seed: 3}
space:
  learning_rate: {loguniform: [1e-4, 1e-2]}
  dense_units: {choice: [128, 256, 512]}
  dropout_dense: 0.4
baselines:
  - {learning_rate: 1e-3, dense_units: 512}
scheduler: {name: asha, grace_period: 1, reduction_factor: 3}
resources: {workers_per_trial: 1, cpus_per_worker: 1}
"""


def write(tmp_path: Path, text: str, name: str = "my_sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_person_s_sweep_file_becomes_settings(tmp_path):
    settings = load_sweep_file(write(tmp_path, MY_SWEEP))
    assert settings.preset == "my_sweep" and settings.search == "tpe" and settings.num_samples == 12
    assert settings.search_seed == 3 and settings.scheduler == "asha" and settings.grace_period == 1
    assert settings.base.epochs == 9 and settings.base.limit == 4000 and not settings.base.horizontal_flip
    # 1e-4 without a dot is a number here (plain YAML 1.1 would read a string).
    assert settings.space.domains["learning_rate"].values == (1e-4, 1e-2)
    config = settings.trial_config({"learning_rate": 5e-4, "dense_units": 128})
    assert (config.learning_rate, config.dense_units, config.dropout_dense) == (5e-4, 128, 0.4)
    assert settings.space.baseline_samples(settings.base) == [{"learning_rate": 1e-3, "dense_units": 512}]


def test_the_presets_are_files_shipped_with_the_package():
    assert preset_names() == ["full", "local", "smoke"]
    assert PRESETS["local"].space.grid_size == 4 and PRESETS["local"].scheduler == "fifo"
    assert PRESETS["smoke"].workers_per_trial == 2 and PRESETS["smoke"].cpus_per_worker == 0.5
    assert PRESETS["full"].gpus_per_worker == "auto" and PRESETS["full"].num_samples == 32


@pytest.mark.parametrize("name", ["smoke", "local", "full"])
def test_a_stored_sweep_file_runs_the_same_sweep_again(tmp_path, name):
    """sweep.yaml, stored beside the results with every value resolved, reads back as the same sweep."""
    stored = write(tmp_path, dump_sweep(PRESETS[name]), f"{name}.yaml")
    assert load_sweep_file(stored) == PRESETS[name]


@pytest.mark.parametrize("text, says", [
    (MY_SWEEP + "colour: blue\n", "colour: unknown key in the file; allowed: name, train, search"),
    (MY_SWEEP.replace("name: asha", "name: asha, patience: 3"), "patience: unknown key in scheduler; allowed: name"),
    (MY_SWEEP.replace("dense_units:", "dense_unit:"), "space.dense_unit: is no knob; knobs: "),
    (MY_SWEEP.replace("space:\n", "space:\n  target_accuracy: 0.9\n"),
     "space.target_accuracy: is the same for every trial (set it under `train:`)"),
    (MY_SWEEP.replace("dropout_dense: 0.4", "dropout_conv: {uniform: [0, 1.5]}"),
     "space.dropout_conv: uniform [0, 1.5]: dropout_conv=1.5 is out of range; allowed: [0.0, 1.0)"),
    (MY_SWEEP.replace("[1e-4, 1e-2]", "[0, 1e-2]"), "space.learning_rate: loguniform [0, 0.01]: a log domain needs low > 0"),
    (MY_SWEEP.replace("algorithm: tpe", "algorithm: grid"),
     "search.algorithm: grid runs grid domains only, and this space samples learning_rate, dense_units"),
    (MY_SWEEP.replace("algorithm: tpe", "algorithm: bayes"),
     "search.algorithm: 'bayes' is out of range; allowed: one of random, grid, tpe"),
    (MY_SWEEP.replace("{choice: [128, 256, 512]}", "{grid: [128, 256, 512]}"),
     "search.algorithm: tpe cannot search grid domains (dense_units): make them choice domains"),
    (MY_SWEEP.replace("{loguniform: [1e-4, 1e-2]}", "{qloguniform: [1e-4, 1e-2, 1e-4]}"),
     "search.algorithm: tpe cannot search qloguniform domains (learning_rate): Optuna cannot keep the step"),
    (MY_SWEEP.replace("seed: 3}", "seed: 3, startup_trials: -1}"), "search.startup_trials: -1 is out of range"),
    (MY_SWEEP.replace("epochs: 9", "epochs: 9\n  validation_fraction: 0"),
     "search.algorithm: 'tpe' is out of range; allowed: random or grid when validation_fraction is 0"),
    (MY_SWEEP.replace("epochs: 9", "epochs: nine"), "train: epochs must be an integer, got 'nine'"),
    (MY_SWEEP.replace("  - {learning_rate: 1e-3, dense_units: 512}", "  - {learning_rate: -1}"),
     "baselines[0].learning_rate: baseline: learning_rate=-1 is out of range"),
    (MY_SWEEP.replace("space:\n", "space: [\n"), "not valid YAML at line"),
    ("- just\n- a list\n", "must be a mapping of name, train, search"),
    ("train: {dataset: mnist}\n", "space: missing"),
    (MY_SWEEP.replace("  dropout_dense: 0.4", "  dropout_dense: 0.4\n  dropout_dense: 0.3"),
     "the key 'dropout_dense' is given twice"),
    ("name: ../../elsewhere\n" + MY_SWEEP, "name: '../../elsewhere' must be letters, digits"),
    ("train: []\nsearch:" + MY_SWEEP.split("search:", 1)[1], "train: must be a mapping"),
    ("space: {learning_rate: 0.001}\n", ": space: samples no knob"),
    (MY_SWEEP.replace("num_samples: 12", "num_samples: '12'"), "search.num_samples: '12' is out of range"),
    (MY_SWEEP + "seeds: 0\n", "seeds: 0 is out of range; allowed: a whole number >= 1"),
    (MY_SWEEP.replace("algorithm: tpe", "algorithm: random").replace("{choice: [128, 256, 512]}", "{grid: [128, 256]}")
     + "seeds: 2\n", "search.algorithm: random with seeds=2 cannot search grid domains (dense_units)"),
    (MY_SWEEP.replace("algorithm: tpe", "algorithm: random").replace("epochs: 9", "epochs: 9\n  validation_fraction: 0")
     + "seeds: 2\n", "seeds: 2 is out of range; allowed: 1 with search=random when validation_fraction is 0"),
    (MY_SWEEP + "confirm: {top: 2, seeds: 1}\n",
     "confirm.seeds: 1 is out of range; allowed: a whole number >= 2 (one replicate gives no interval)"),
    (MY_SWEEP + "confirm: {top: 2, repeats: 3}\n", "repeats: unknown key in confirm; allowed: top, seeds, epochs"),
    (MY_SWEEP + "confirm: {top: 2, epochs: 0}\n", "confirm.epochs: 0 is out of range; allowed: a whole number >= 1"),
    (MY_SWEEP.replace("algorithm: tpe", "algorithm: random").replace("epochs: 9", "epochs: 9\n  validation_fraction: 0")
     + "confirm: {top: 2}\n", "confirm.top: 2 is out of range; allowed: 0 when validation_fraction is 0"),
])
def test_a_bad_sweep_file_gets_one_line_naming_the_file_and_the_key(tmp_path, text, says):
    path = write(tmp_path, text)
    with pytest.raises(SweepFileError) as caught:
        load_sweep_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and says in message, message
    assert "\n" not in message


def test_a_file_that_is_not_text_gets_one_line(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SweepFileError, match="not a text file"):
        load_sweep_file(path)


def test_a_name_that_yaml_would_read_as_a_number_round_trips(tmp_path):
    settings = load_sweep_file(write(tmp_path, MY_SWEEP, "1e3.yaml"))
    assert settings.preset == "1e3"
    assert load_sweep_file(write(tmp_path, dump_sweep(settings), "again.yaml")).preset == "1e3"


# The job's flags on top of a file (jobs/sweep.py; no Ray is started by settings_from_args).

def settings_for(argv: list[str]):
    from jobs import sweep

    return sweep.settings_from_args(sweep.parse_args(argv))


def test_a_flag_overrides_the_files_fixed_value(tmp_path):
    settings = settings_for(["--config", str(write(tmp_path, MY_SWEEP)), "--dropout-dense", "0.3"])
    assert "dropout_dense" not in settings.space.fixed
    assert settings.trial_config({"learning_rate": 1e-3, "dense_units": 128}).dropout_dense == 0.3


def test_the_confirm_stage_trains_fresh_seeds_for_its_epochs_under_fifo(tmp_path):
    settings = settings_for(["--config", str(write(tmp_path, MY_SWEEP + "seeds: 2\nconfirm: {top: 3, epochs: 4}\n")),
                             "--confirm-seeds", "5"])
    assert (settings.confirm_top, settings.confirm_seeds, settings.confirm_epochs) == (3, 5, 4)
    stage = settings.confirm_stage()
    assert (stage.base.epochs, stage.scheduler, stage.confirm_top) == (4, "fifo", 0)
    # No early stop of any kind: no scheduler, and no target accuracy (the search's 0.995 stays its own).
    assert (settings.base.target_accuracy, stage.base.target_accuracy) == (0.995, NO_TARGET)
    # The search trained seeds 0 and 1 (train.seed 0, two seeds); the confirm stage the next five.
    sample = {"learning_rate": 1e-3, "dense_units": 128}
    seeds = [stage.trial_config({**sample, REPLICATE_KEY: settings.confirm_replicate(i)}).seed for i in range(5)]
    assert seeds == [2, 3, 4, 5, 6]
    # The final model trains the chosen configuration for exactly the epochs the confirm stage chose.
    final = settings.final_config({**sample, "dense_units": 64}, epochs=7)
    assert (final.epochs, final.target_accuracy, final.dense_units, final.seed) == (7, NO_TARGET, 64, 0)
    assert "confirm: {top: 3, seeds: 5, epochs: 4}" in dump_sweep(settings)
    assert load_sweep_file(write(tmp_path, dump_sweep(settings), "again.yaml")) == settings
    assert settings_for(["--config", str(write(tmp_path, MY_SWEEP))]).confirm_top == 0, "no confirm stage unless asked"
    # A random search without a validation split is valid, and so is its (unused) confirm stage's settings.
    plain = MY_SWEEP.replace("algorithm: tpe", "algorithm: random").replace("epochs: 9", "epochs: 9\n  validation_fraction: 0")
    assert settings_for(["--config", str(write(tmp_path, plain, "plain.yaml"))]).confirm_stage().scheduler == "fifo"


def test_seeds_from_the_file_or_the_flag_multiply_the_trials(tmp_path):
    from_file = settings_for(["--config", str(write(tmp_path, MY_SWEEP + "seeds: 2\n"))])
    assert (from_file.seeds, from_file.num_trials()) == (2, 24)
    from_flag = settings_for(["--config", str(write(tmp_path, MY_SWEEP + "seeds: 2\n")), "--seeds", "3"])
    assert (from_flag.seeds, from_flag.num_trials()) == (3, 36)
    assert "seeds: 3" in dump_sweep(from_flag), "the stored file says how many seeds ran"


def test_a_flag_cannot_fix_a_knob_the_file_varies(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        settings_for(["--config", str(write(tmp_path, MY_SWEEP)), "--learning-rate", "0.01"])
    assert stopped.value.code == 2
    assert "--learning-rate: the sweep file varies it (space: learning_rate)" in capsys.readouterr().err


def test_grid_flags_change_only_the_l2_and_augmentation_grids_of_a_grid_file(tmp_path):
    grid = ("train: {dataset: mnist, epochs: 2}\nsearch: {algorithm: grid}\n"
            "space:\n  dense_units: {grid: [128, 256]}\n  l2_conv: {grid: [0.0]}\n  dropout_dense: 0.4\n")
    settings = settings_for(["--config", str(write(tmp_path, grid)), "--grid-l2", "0", "1e-3"])
    assert settings.space.domains["dense_units"].values == (128, 256)
    assert settings.space.domains["l2_conv"].values == (0.0, 1e-3) and settings.space.tied == {"l2_dense": "l2_conv"}
    assert settings.space.fixed == {"dropout_dense": 0.4} and settings.num_trials() == 4


def test_resume_without_a_file_continues_the_sweep_as_it_was_stored(tmp_path):
    stored = load_sweep_file(write(tmp_path, MY_SWEEP))
    (tmp_path / "results" / "mine").mkdir(parents=True)
    (tmp_path / "results" / "mine" / "sweep.yaml").write_text(dump_sweep(stored))
    resumed = settings_for(["--storage-path", str(tmp_path / "results"), "--name", "mine", "--resume"])
    assert resumed == stored


@pytest.mark.parametrize("name", ["smoke", "local", "full"])
def test_the_readme_shows_each_preset_file_as_it_is(name):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = readme.split(f"<code>cnn/sweeps/{name}.yaml</code>")[1].split("```yaml\n")[1].split("```")[0]
    lines = [line for line in (PRESETS_DIR / f"{name}.yaml").read_text().splitlines() if not line.startswith("#")]
    assert shown.strip("\n") == "\n".join(lines).strip("\n"), f"README's {name} preset differs from the file"


def test_the_readme_s_example_is_the_file_these_tests_read():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme.split("with Optuna's TPE and ASHA:\n\n```yaml\n")[1].split("```")[0]
    assert [line.split("  #")[0].rstrip() for line in example.splitlines()] == MY_SWEEP.splitlines()
