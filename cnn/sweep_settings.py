"""What a sweep runs: its base config, search space and mode, scheduler and resources per trial (no Ray
here). The presets are sweep files (cnn/sweeps/, read by cnn/sweep_file.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cnn.config import NO_TARGET, TrainConfig, is_number
from cnn.replicas import WorkerResources
from cnn.search_space import SearchSpace, SearchSpaceError

SEARCH_MODES = ("random", "grid", "tpe")
# A replicate's index among its configuration's seeds (0 .. seeds-1), in the trial's sample: the name
# Ray Tune's Repeater gives it (ray.tune.search.repeater.TRIAL_INDEX), kept here so that no Ray is needed.
REPLICATE_KEY = "__trial_index__"
SCHEDULERS = ("asha", "fifo")
AUTO = "auto"


def l2_grid(l2: tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2), augment_strength: tuple[float, ...] = (1.0,)
            ) -> SearchSpace:
    """The original study's L2 experiment as a grid: one L2 strength on conv and dense kernels alike
    (l2_dense tied to l2_conv), crossed with augmentation strengths (0 = off, 1 = the study's)."""
    return SearchSpace.from_dict({"l2_conv": {"grid": list(l2)}, "l2_dense": {"same_as": "l2_conv"},
                                  "augment_strength": {"grid": list(augment_strength)}})


@dataclass(frozen=True)
class SweepSettings:
    """One sweep: the base training config, what varies, how trials are stopped and sized."""

    preset: str
    base: TrainConfig
    space: SearchSpace              # what varies (cnn/search_space.py)
    search: str = "random"          # random: sample num_samples configs; grid: every grid point;
                                    # tpe: Optuna's TPE proposes num_samples configs from the results so far
    num_samples: int = 16           # random and tpe: trials, the baselines included
    startup_trials: int = 10        # tpe: trials sampled at random before TPE models the results (Optuna's default)
    scheduler: str = "asha"
    grace_period: int = 2           # ASHA: epochs every trial gets before it can be stopped
    reduction_factor: int = 3       # ASHA: keep the top 1/reduction_factor at each rung
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | str = AUTO   # auto: 1 if the cluster has GPUs, else 0
    max_concurrent_trials: int | None = None  # None: as many as fit in the cluster at once
    search_seed: int = 0
    seeds: int = 1                  # trainings of every configuration, with seeds base.seed, base.seed + 1, ...
    confirm_top: int = 0            # confirm stage: the best K configurations (plus the baselines) trained again; 0: none
    confirm_seeds: int = 3          # confirm stage: trainings of each, with seeds the search did not use
    confirm_epochs: int | None = None  # confirm stage: epochs of each (FIFO, no early stop); None: base.epochs
    final: bool = False             # then train the chosen configuration on train + validation data and export it
    trial_max_failures: int = 1     # Tune retries of a whole trial
    worker_max_failures: int = 2    # Ray Train restarts of a trial's worker group

    def __post_init__(self) -> None:
        _check(self.search in SEARCH_MODES, "search", self.search, f"one of {', '.join(SEARCH_MODES)}")
        _check(self.scheduler in SCHEDULERS, "scheduler", self.scheduler, f"one of {', '.join(SCHEDULERS)}")
        # A sweep file can hand any YAML value to any of these: whole numbers are checked as such.
        for key, low in (("num_samples", 1), ("startup_trials", 0), ("grace_period", 1), ("reduction_factor", 2), ("workers_per_trial", 1),
                         ("search_seed", 0), ("seeds", 1), ("confirm_top", 0), ("confirm_seeds", 2),
                         ("trial_max_failures", -1), ("worker_max_failures", -1)):
            value = getattr(self, key)
            _check(_is_whole(value) and value >= low, key, value, f"a whole number >= {low}"
                   + (" (-1: without limit)" if low == -1 else "")
                   + (" (one replicate gives no interval)" if key == "confirm_seeds" else "")
                   + (" (0: no confirm stage)" if key == "confirm_top" else ""))
        _check(self.confirm_epochs is None or (_is_whole(self.confirm_epochs) and self.confirm_epochs >= 1),
               "confirm_epochs", self.confirm_epochs, "a whole number >= 1, or null for train.epochs")
        _check(isinstance(self.final, bool), "final", self.final, "true or false")
        if self.final:  # the final model's configuration and epochs are chosen on validation accuracy
            _check(self.base.validation_fraction > 0, "final", self.final,
                   "false when validation_fraction is 0 (the configuration and its epochs are chosen on validation)")
        if self.confirm_top:  # the confirm stage chooses on validation accuracy
            _check(self.base.validation_fraction > 0, "confirm_top", self.confirm_top,
                   "0 when validation_fraction is 0 (the confirm stage chooses on validation accuracy)")
        _check(is_number(self.cpus_per_worker), "cpus_per_worker", self.cpus_per_worker, "a number > 0")
        _check(self.gpus_per_worker == AUTO or is_number(self.gpus_per_worker),
               "gpus_per_worker", self.gpus_per_worker, f">= 0 or {AUTO!r}")
        _check(self.grace_period <= self.base.epochs, "grace_period", self.grace_period,
               f"[1, epochs={self.base.epochs}]")
        _check(self.max_concurrent_trials is None or (_is_whole(self.max_concurrent_trials)
                                                      and self.max_concurrent_trials >= 1),
               "max_concurrent_trials", self.max_concurrent_trials, "a whole number >= 1")
        _check(self.search == "grid" or self.num_samples >= len(self.space.baselines), "num_samples",
               self.num_samples, f">= the {len(self.space.baselines)} baseline points, which count among the trials")
        if self.search == "tpe" or (self.search == "random" and self.seeds > 1):
            self._check_tpe_space()
        if self.search == "tpe":
            _check(self.base.validation_fraction > 0, "search", self.search,
                   "random or grid when validation_fraction is 0 (TPE learns from validation accuracy)")
        elif self.search == "random" and self.seeds > 1:  # Repeater averages validation accuracy for Optuna
            _check(self.base.validation_fraction > 0, "seeds", self.seeds,
                   "1 with search=random when validation_fraction is 0, or search=grid")
        if self.search == "grid":
            sampled = [k for k, d in self.space.domains.items() if not d.is_grid]
            if sampled:
                raise ValueError(f"search=grid runs grid domains only, and this space samples {', '.join(sampled)}; "
                                 "make them grids or use search=random")
            if self.space.baselines:
                raise ValueError("search=grid runs every grid point already: add the baselines' values to the grid")
        # Every trial's config must be valid on this base: the space was checked on its own knobs' ranges.
        try:
            SearchSpace.from_dict(self.space.to_dict()["space"], self.space.to_dict()["baselines"], self.base)
        except SearchSpaceError as error:
            raise ValueError(f"space.{error}") from None
        resources = self.resources_for(cluster_gpus=0.0)
        resources.check_batch(self.base)  # the resource rules: cnn.replicas
        # Values are checked one knob at a time above; knobs that only clash together (deterministic
        # with jit_compile, a sampled batch the replicas cannot split) show at the corners of the space.
        for sample in self.space.corners(self.base):
            try:
                resources.check_batch(self.space.apply(self.base, sample))
            except ValueError as error:
                raise ValueError(f"space: the trial {sample} would be refused: {error}") from None

    def _check_tpe_space(self) -> None:
        """What Optuna's distributions cannot hold: a grid (TPE samples every knob) and a quantized
        log domain (Ray's OptunaSearch drops the step with only a log warning). A random search with
        seeds > 1 samples through Optuna too (Tune's own random search cannot repeat a configuration)."""
        what = "search=tpe" if self.search == "tpe" else f"search=random with seeds={self.seeds}"
        for kind, instead in (("grid", "make them choice domains, which Optuna samples, or use search=grid"),
                              ("qloguniform", "Optuna cannot keep the step of a log domain: use loguniform or choice")):
            knobs = [k for k, d in self.space.domains.items() if d.kind == kind]
            if knobs:
                raise ValueError(f"{what} cannot search {kind} domains ({', '.join(knobs)}): {instead}")

    def resources_for(self, cluster_gpus: float) -> WorkerResources:
        """Each trial's workers on a cluster with this many GPUs: auto is 1 GPU per worker if it has
        any (so one replica per worker, as on CPUs), else none."""
        gpus = self.gpus_per_worker
        if gpus == AUTO:
            gpus = 1.0 if cluster_gpus >= 1 else 0.0
        return WorkerResources(self.workers_per_trial, self.cpus_per_worker, float(gpus))

    def trial_config(self, sample: dict[str, Any]) -> TrainConfig:
        """The base config with one trial's sampled values applied (augment_strength scales the
        original study's augmentation ranges; every other key is a TrainConfig knob; tied knobs
        follow theirs; the space's fixed values too). A replicate trains with the base seed plus its
        index among its configuration's seeds."""
        sample = dict(sample)
        replicate = int(sample.pop(REPLICATE_KEY, 0))
        config = self.space.apply(self.base, sample)
        return config if replicate == 0 else config.replace(seed=config.seed + replicate)

    def confirm_stage(self) -> "SweepSettings":
        """The settings of the confirm stage's trials: the same space (ties and fixed values apply
        alike), confirm_epochs epochs each under FIFO, no confirm or final stage of its own. Its
        trials' samples carry their replicate index (cnn_ray.confirm), so its own `seeds` stays 1:
        the search's rules for seeds (cnn_ray.tuner's Repeater) do not apply to it. No target accuracy
        stops them either: every replicate trains all its epochs, so that its epoch is chosen on
        validation over the same span as its siblings'."""
        epochs = self.confirm_epochs or self.base.epochs
        base = self.base.replace(epochs=epochs, target_accuracy=NO_TARGET)
        return self.replace(base=base, scheduler="fifo", seeds=1, grace_period=min(self.grace_period, epochs),
                            confirm_top=0, final=False)

    def final_config(self, sample: dict[str, Any], epochs: int) -> TrainConfig:
        """The final model's config: the chosen configuration's, for exactly `epochs` epochs (the
        confirm stage's choice; no target accuracy cuts them short, as none cut the confirm stage's)."""
        return self.trial_config(sample).replace(epochs=epochs, target_accuracy=NO_TARGET)

    def confirm_replicate(self, index: int) -> int:
        """The replicate index (REPLICATE_KEY) of a confirm trial's index-th seed: after the search's
        seeds, so that no confirm trial repeats a search trial's seed (the winner was chosen partly
        for its seeds' luck; fresh seeds measure the configuration, not the luck)."""
        return self.seeds + index

    def num_trials(self) -> int:
        """Trials the sweep runs: every grid point; a random search runs its baseline points once
        each, then num_samples minus their count samples of every grid point (Tune's
        BasicVariantGenerator); TPE runs num_samples, the baselines among them. Each configuration
        is trained `seeds` times."""
        return self.num_configurations() * self.seeds

    def num_configurations(self) -> int:
        if self.search == "tpe":
            return self.num_samples
        if self.search == "grid":
            return self.space.grid_size
        baselines = len(self.space.baselines)
        return baselines + (self.num_samples - baselines) * self.space.grid_size

    def describe_search(self) -> dict[str, str]:
        """The search space in words, for the printed plan and sweep.json."""
        described = self.space.describe()
        for point in self.space.baselines:
            for knob, value in point.items():
                described[knob] += f", plus a baseline of {value!r}"
        return described

    def replace(self, **changes: Any) -> "SweepSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "base": self.base.to_dict(), "space": self.space.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SweepSettings":
        """The inverse of to_dict (as stored in sweep.json). A sweep.json written before spaces were
        data (grid_l2 and grid_augment_strength) reads back as the same space."""
        values = dict(values)
        values["base"] = TrainConfig.from_dict(values["base"])
        old_grid = {key: tuple(values.pop(key)) for key in ("grid_l2", "grid_augment_strength") if key in values}
        if "space" in values:
            values["space"] = SearchSpace.from_dict(values["space"]["space"], values["space"]["baselines"])
        else:
            from cnn.sweep_file import STANDARD_SPACES  # the presets are files, read by sweep_file

            values["space"] = l2_grid(old_grid["grid_l2"], old_grid["grid_augment_strength"]) \
                if values.get("search") == "grid" else STANDARD_SPACES["random"]
        return cls(**values)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{key}={value!r} is out of range; allowed: {allowed}")

