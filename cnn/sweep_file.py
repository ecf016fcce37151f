"""A sweep as a YAML file: the training settings, the search, its space, the scheduler, the resources.

    train:                      # any TrainConfig knob (cnn/config.py): the base of every trial
      dataset: mnist
      epochs: 9
    search:
      algorithm: tpe            # random, grid or tpe (Optuna's TPE)
      num_samples: 17
      seed: 0
      startup_trials: 10        # tpe: trials sampled at random before TPE models the results
    space:                      # cnn/search_space.py: Ray Tune's domains, ties, fixed values
      learning_rate: {loguniform: [1e-4, 1e-2]}
      dense_units: {choice: [128, 256, 512]}
    baselines:                  # points always run first
      - {learning_rate: 0.001}
    seeds: 1                    # trainings of every configuration, with seeds train.seed, +1, ...
    confirm: {top: 2, seeds: 3, epochs: 9}  # then the 2 best (and the baselines) again, 3 fresh seeds each
    final: true                 # then the winner trained on train + validation data, exported (final_model/)
    scheduler: {name: asha, grace_period: 1, reduction_factor: 3}
    resources: {workers_per_trial: 1, cpus_per_worker: 1}

Every section but `space` may be left out (the defaults are cnn.sweep_settings.SweepSettings's and
TrainConfig's). The presets are such files (cnn/sweeps/). A bad file raises SweepFileError, one
line naming the file, the key and what is allowed, before anything starts. No Ray here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from cnn.config import TrainConfig
from cnn.search_space import SearchSpace, SearchSpaceError
from cnn.sweep_settings import SweepSettings, l2_grid

PRESETS_DIR = Path(__file__).with_name("sweeps")
# section -> {key in the file: SweepSettings field}
SECTIONS: dict[str, dict[str, str]] = {
    "search": {"algorithm": "search", "num_samples": "num_samples", "seed": "search_seed",
               "startup_trials": "startup_trials", "max_concurrent_trials": "max_concurrent_trials"},
    "scheduler": {"name": "scheduler", "grace_period": "grace_period", "reduction_factor": "reduction_factor"},
    "resources": {"workers_per_trial": "workers_per_trial", "cpus_per_worker": "cpus_per_worker",
                  "gpus_per_worker": "gpus_per_worker"},
    "confirm": {"top": "confirm_top", "seeds": "confirm_seeds", "epochs": "confirm_epochs"},
    "failures": {"trial_max_failures": "trial_max_failures", "worker_max_failures": "worker_max_failures"},
}
# Top-level keys that are SweepSettings fields of the same name.
# seeds: trainings of every configuration (seed, seed + 1, ...); final: export the chosen configuration's model.
TOP_LEVEL_FIELDS = ("seeds", "final")
TOP_LEVEL = ("name", "train", *SECTIONS, *TOP_LEVEL_FIELDS, "space", "baselines")


class SweepFileError(ValueError):
    """A bad sweep file: the message is one line, starting with the file."""


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads 1e-4 (no dot) as a string; a sweep file means the number. A key given twice
    is refused (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """Writes what _Loader reads back the same (a string such as "1e3" quoted)."""


_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
for _side in (_Loader, _Dumper):
    _side.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))


def preset_path(name: str) -> Path:
    return PRESETS_DIR / f"{name}.yaml"


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def load_sweep_file(path: str | Path) -> SweepSettings:
    """The sweep a file describes (SweepFileError naming the file and key if it is not a good one)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SweepFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise SweepFileError(f"{path}: not a text file (it is not UTF-8)") from None
    return load_sweep_text(text, str(path), name=path.stem)


def load_sweep_text(text: str, where: str, name: str | None = None) -> SweepSettings:
    """The sweep a file's text describes; `where` names it in errors (a path or a URI)."""
    name = name or Path(where.rsplit("/", 1)[-1]).stem
    try:
        values = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SweepFileError(f"{where}: not valid YAML{at}: {problem}") from None
    try:
        return sweep_from_dict(values, name=name)
    except (SweepFileError, SearchSpaceError, ValueError) as error:
        raise SweepFileError(f"{where}: {error}") from None


def sweep_from_dict(values: Any, name: str) -> SweepSettings:
    """The settings from a parsed sweep file (ValueError naming the key on a bad one)."""
    if not isinstance(values, Mapping):
        raise SweepFileError(f"must be a mapping of {', '.join(TOP_LEVEL)}, got {type(values).__name__}")
    _known(values, TOP_LEVEL, "the file")
    if "space" not in values:
        raise SweepFileError("space: missing; it names the knobs the sweep varies and their domains")
    train = _section(values, "train")
    try:
        base = TrainConfig.from_dict(train)
    except (TypeError, ValueError) as error:
        raise SweepFileError(f"train: {error}") from None
    fields: dict[str, Any] = {}
    for section, keys in SECTIONS.items():
        given = _section(values, section)
        _known(given, keys, section)
        fields.update({keys[key]: value for key, value in given.items()})
    fields.update({key: values[key] for key in TOP_LEVEL_FIELDS if key in values})
    baselines = values.get("baselines")
    baselines = [] if baselines is None else baselines
    if not isinstance(baselines, list):
        raise SweepFileError(f"baselines: must be a list of points, got {baselines!r}")
    try:
        space = SearchSpace.from_dict(values["space"], baselines, base)
    except SearchSpaceError as error:
        plain = error.key == "space" or error.key.startswith("baselines")
        raise SweepFileError(str(error) if plain else f"space.{error}") from None
    name = values.get("name", name)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise SweepFileError(f"name: {name!r} must be letters, digits, '_', '.' or '-' (it names folders)")
    try:
        return SweepSettings(preset=name, base=base, space=space, **fields)
    except (TypeError, ValueError) as error:
        raise SweepFileError(_in_file_terms(str(error))) from None


def sweep_to_dict(settings: SweepSettings) -> dict[str, Any]:
    """A sweep file's content with every value resolved (what is stored beside the results)."""
    stored = settings.to_dict()
    return {"name": settings.preset, "train": settings.base.to_dict(),
            **{section: {key: stored[field] for key, field in keys.items()} for section, keys in SECTIONS.items()},
            **{key: stored[key] for key in TOP_LEVEL_FIELDS}, **settings.space.to_dict()}


def dump_sweep(settings: SweepSettings) -> str:
    return yaml.dump(sweep_to_dict(settings), Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=110)


def _in_file_terms(message: str) -> str:
    """SweepSettings names its fields (`search='bayes' is out of range`); the file names the key
    (`search.algorithm: 'bayes' is out of range`)."""
    for section, keys in SECTIONS.items():
        for key, field in keys.items():
            if message.startswith(f"{field}="):
                return f"{section}.{key}: {message[len(field) + 1:]}"
    for key in TOP_LEVEL_FIELDS:
        if message.startswith(f"{key}="):
            return f"{key}: {message[len(key) + 1:]}"
    return message


def _section(values: Mapping[str, Any], section: str) -> Mapping[str, Any]:
    given = values.get(section)
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise SweepFileError(f"{section}: must be a mapping of keys to values, got {given!r}")
    return given


def _known(given: Mapping[str, Any], allowed: Any, where: str) -> None:
    unknown = [str(key) for key in given if key not in allowed]
    if unknown:
        raise SweepFileError(f"{unknown[0]}: unknown key in {where}; allowed: {', '.join(allowed)}")


PRESETS: dict[str, SweepSettings] = {name: load_sweep_file(preset_path(name)) for name in preset_names()}
# What --search switches to when it names another mode than the file's: random and tpe search the
# full preset's space (L2, dropout, augmentation over the study's ranges), grid the study's L2 grid.
STANDARD_SPACES = {"random": PRESETS["full"].space, "tpe": PRESETS["full"].space, "grid": l2_grid()}
