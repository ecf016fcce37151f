"""What a sweep varies, as data: a domain per knob, knobs tied to another's value, baseline points.

The domains are Ray Tune's (cnn_ray/search_space.py turns them into Tune's objects), written as a
sweep file writes them (issue 15):

    l2_conv: {loguniform: [1.0e-6, 1.0e-2]}
    l2_dense: {same_as: l2_conv}            # tied: takes l2_conv's sampled value
    dropout_conv: {uniform: [0.0, 0.5]}
    dense_units: {choice: [256, 512, 1024]}
    learning_rate: 0.001                    # a fixed value
    augment_strength: {grid: [0.0, 1.0]}    # derived knob: scales the original study's augmentation

Every knob is a TrainConfig field, or `augment_strength`. A domain is checked once, here, against
the knob's own allowed range and type (cnn/config.py), so a sweep never starts a trial its config
would refuse. No Ray here: the checks run before Ray starts.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any, Mapping

from cnn.config import AUGMENT_RANGES, TrainConfig, base_type, is_number

AUGMENT_STRENGTH = "augment_strength"  # derived: TrainConfig.with_augment_strength
# Domains with bounds: name -> number of values ([low, high] or [low, high, q]).
RANGE_DOMAINS = {"uniform": 2, "loguniform": 2, "quniform": 3, "qloguniform": 3, "randint": 2}
LIST_DOMAINS = ("choice", "grid")
TIE = "same_as"
DOMAINS = (*RANGE_DOMAINS, *LIST_DOMAINS)
# Knobs that define what every trial is compared on: the data, its split and the epoch budget (the
# epochs, and the target training accuracy that ends a run sooner; the confirm stage and the final
# model switch the target off, which a value in the space would undo).
NOT_SWEPT = ("dataset", "limit", "test_limit", "validation_fraction", "epochs", "target_accuracy", "seed")


class SearchSpaceError(ValueError):
    """A bad search space: `key` is where it is (e.g. "dropout_conv"), the message what is allowed."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class Domain:
    """One knob's domain: `kind` is one of DOMAINS, `values` its bounds (and q) or its list."""

    kind: str
    values: tuple[Any, ...]

    @property
    def is_log(self) -> bool:
        return self.kind in ("loguniform", "qloguniform")

    @property
    def is_grid(self) -> bool:
        return self.kind == "grid"

    @property
    def is_categorical(self) -> bool:
        return self.kind in LIST_DOMAINS

    def describe(self) -> str:
        if self.is_categorical:
            return f"{self.kind} {list(self.values)}"
        low, high, *q = self.values
        upper = ")" if self.kind == "randint" else "]"
        return f"{self.kind} [{low}, {high}{upper}" + (f" step {q[0]}" if q else "")

    def to_dict(self) -> dict[str, list[Any]]:
        return {self.kind: list(self.values)}

    def contains(self, value: Any) -> bool:
        """Whether a sample of this domain could be `value` (a baseline may lie outside: L2 = 0)."""
        if self.is_categorical:
            return any(value == v and (is_number(value) == is_number(v)) for v in self.values)
        if not is_number(value):
            return False
        low, high, *q = self.values
        if self.kind == "randint":
            return low <= value < high and float(value).is_integer()
        inside = low <= value <= high
        return inside and (not q or math.isclose(value / q[0], round(value / q[0]), rel_tol=0, abs_tol=1e-9))


@dataclass(frozen=True)
class SearchSpace:
    """Sampled knobs (`domains`), fixed knobs, tied knobs (knob -> the knob whose value it takes)
    and baseline points (partial assignments, always run first; unnamed knobs take the base config's
    value)."""

    domains: Mapping[str, Domain]
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tied: Mapping[str, str] = dataclasses.field(default_factory=dict)
    baselines: tuple[Mapping[str, Any], ...] = ()

    @property
    def knobs(self) -> tuple[str, ...]:
        """Every knob a trial's sample names (sampled, then tied)."""
        return (*self.domains, *self.tied)

    @property
    def grid_size(self) -> int:
        """Points of the grid domains' product (1 without any)."""
        return math.prod(len(d.values) for d in self.domains.values() if d.is_grid)

    @property
    def has_grid(self) -> bool:
        return any(d.is_grid for d in self.domains.values())

    def apply(self, base: TrainConfig, sample: Mapping[str, Any]) -> TrainConfig:
        """The base config with the fixed values, one trial's sample and the tied knobs applied."""
        values = {**self.fixed, **sample}
        values.update({knob: values[source] for knob, source in self.tied.items() if source in values})
        strength = values.pop(AUGMENT_STRENGTH, None)
        config = base.replace(**values)
        return config if strength is None else config.with_augment_strength(float(strength))

    def corners(self, base: TrainConfig, most: int = 512) -> list[dict[str, Any]]:
        """Samples at the edges of the space (each list in full, each range at both ends) and the
        baselines, up to `most` of them, in order: where knobs that are fine alone can clash."""
        edges = [[(knob, value) for value in _bounds(domain)] for knob, domain in self.domains.items()]
        found = [dict(combination) for combination in itertools.islice(itertools.product(*edges), most)]
        return found + self.baseline_samples(base)

    def baseline_samples(self, base: TrainConfig) -> list[dict[str, Any]]:
        """Each baseline point as a full sample over the sampled knobs (the rest from the base config)."""
        defaults = {knob: _value_of(base, knob) for knob in self.domains}
        return [{**defaults, **{k: v for k, v in point.items() if k in self.domains}} for point in self.baselines]

    def contains(self, sample: Mapping[str, Any]) -> bool:
        """Whether every sampled knob's value in `sample` lies in its domain."""
        return all(knob in sample and domain.contains(sample[knob]) for knob, domain in self.domains.items())

    def describe(self) -> dict[str, str]:
        """The space in words, for the printed plan and sweep.json."""
        return {**{knob: domain.describe() for knob, domain in self.domains.items()},
                **{knob: f"tied: the same value as {source}" for knob, source in self.tied.items()},
                **{knob: f"fixed {value!r}" for knob, value in self.fixed.items()}}

    def to_dict(self) -> dict[str, Any]:
        """The space as a sweep file writes it (from_dict's inverse)."""
        return {"space": {**{k: d.to_dict() for k, d in self.domains.items()},
                          **{k: {TIE: s} for k, s in self.tied.items()}, **dict(self.fixed)},
                "baselines": [dict(point) for point in self.baselines]}

    @classmethod
    def from_dict(cls, space: Mapping[str, Any], baselines: list[Mapping[str, Any]] | None = None,
                  base: TrainConfig | None = None) -> "SearchSpace":
        """Parse and check a space (and baseline points) against each knob's allowed values on `base`."""
        base = base or TrainConfig()
        if not isinstance(space, Mapping) or not space:
            raise SearchSpaceError("space", "must map one or more knobs to a domain or a value")
        domains, fixed, tied = {}, {}, {}
        for knob, spec in space.items():
            _check_knob(knob)
            if isinstance(spec, Mapping):
                kind, values = _single_entry(knob, spec)
                if kind == TIE:
                    if not isinstance(values, str):
                        raise SearchSpaceError(knob, f"{TIE} takes the name of a sampled knob, got {values!r}")
                    tied[knob] = values
                else:
                    domains[knob] = _domain(knob, kind, values, base)
            else:
                _check_value(knob, spec, base, "value")
                fixed[knob] = spec
        for knob, source in tied.items():
            if source not in domains:
                raise SearchSpaceError(knob, f"{TIE}: {source!r} must be a sampled knob of this space "
                                             f"({', '.join(domains) or 'none'})")
            for value in _bounds(domains[source]):
                _check_value(knob, value, base, f"{TIE} {source}")
        named = set(domains) | set(fixed) | set(tied)
        overwritten = sorted(named & {"augment", *AUGMENT_RANGES}) if AUGMENT_STRENGTH in named else []
        if overwritten:
            raise SearchSpaceError(AUGMENT_STRENGTH, f"sets {', '.join(overwritten)} itself (it scales the study's "
                                                     "augmentation): vary those knobs or augment_strength, not both")
        if not domains:
            raise SearchSpaceError("space", "samples no knob: give at least one knob a domain "
                                            f"({', '.join(DOMAINS)})")
        checked = tuple(_baseline(i, point, domains, tied, base) for i, point in enumerate(baselines or []))
        return cls(domains=domains, fixed=fixed, tied=tied, baselines=checked)


def _check_knob(knob: Any) -> None:
    known = [f.name for f in dataclasses.fields(TrainConfig)] + [AUGMENT_STRENGTH]
    if knob in NOT_SWEPT:
        raise SearchSpaceError(str(knob), "is the same for every trial (set it under `train:`); "
                                          f"a sweep cannot vary {', '.join(NOT_SWEPT)}")
    if knob not in known:
        raise SearchSpaceError(str(knob), f"is no knob; knobs: {', '.join(k for k in known if k not in NOT_SWEPT)}")


def _single_entry(knob: str, spec: Mapping[str, Any]) -> tuple[str, Any]:
    if len(spec) != 1 or next(iter(spec)) not in (*DOMAINS, TIE):
        raise SearchSpaceError(knob, f"a domain is one of {{{', '.join(DOMAINS)}: ...}} or {{{TIE}: knob}}, "
                                     f"got {dict(spec)!r}")
    return next(iter(spec.items()))


def _domain(knob: str, kind: str, values: Any, base: TrainConfig) -> Domain:
    where = f"{kind} {values!r}"
    if not isinstance(values, (list, tuple)) or not values:
        raise SearchSpaceError(knob, f"{kind} takes a list, got {values!r}")
    values = tuple(values)
    if kind in LIST_DOMAINS:
        if any(a == b and type(a) is type(b) or (is_number(a) and is_number(b) and a == b)
               for i, a in enumerate(values) for b in values[i + 1:]):
            raise SearchSpaceError(knob, f"{where}: the values repeat")
        for value in values:
            _check_value(knob, value, base, where)
        return Domain(kind, values)
    if len(values) != RANGE_DOMAINS[kind] or not all(is_number(v) for v in values):
        shape = "[low, high, q]" if RANGE_DOMAINS[kind] == 3 else "[low, high]"
        raise SearchSpaceError(knob, f"{kind} takes {shape} as numbers, got {list(values)!r}")
    low, high, *q = values
    if not low < high:
        raise SearchSpaceError(knob, f"{where}: low must be below high")
    if kind in ("loguniform", "qloguniform") and low <= 0:
        raise SearchSpaceError(knob, f"{where}: a log domain needs low > 0 (add 0 as a baseline point instead)")
    if q and q[0] <= 0:
        raise SearchSpaceError(knob, f"{where}: q must be > 0")
    if q and not all(math.isclose(bound / q[0], round(bound / q[0]), rel_tol=0, abs_tol=1e-9) for bound in (low, high)):
        raise SearchSpaceError(knob, f"{where}: low and high must be multiples of q (Ray Tune refuses others)")
    kind_of_knob = _knob_type(knob)
    if kind_of_knob is int and kind != "randint":
        raise SearchSpaceError(knob, f"{where}: {knob} is a whole number: use randint, choice or grid")
    if kind_of_knob in (bool, str):
        raise SearchSpaceError(knob, f"{where}: {knob} takes {kind_of_knob.__name__} values: use choice or grid")
    if kind == "randint" and not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise SearchSpaceError(knob, f"{where}: randint takes whole numbers")
    domain = Domain(kind, values)
    for value in _bounds(domain):
        _check_value(knob, value, base, where)
    return domain


def _bounds(domain: Domain) -> tuple[Any, ...]:
    """The values a domain can reach at its edges (randint's high is exclusive), or its list."""
    if domain.is_categorical:
        return domain.values
    low, high = domain.values[:2]
    return (low, high - 1) if domain.kind == "randint" else (low, high)


def _baseline(index: int, point: Any, domains: Mapping[str, Domain], tied: Mapping[str, str],
              base: TrainConfig) -> Mapping[str, Any]:
    key = f"baselines[{index}]"
    if not isinstance(point, Mapping) or not point:
        raise SearchSpaceError(key, f"must map sampled knobs to values, got {point!r}")
    for knob, value in point.items():
        if knob in tied:
            raise SearchSpaceError(f"{key}.{knob}", f"is tied to {tied[knob]}: give {tied[knob]} instead")
        if knob not in domains:
            raise SearchSpaceError(f"{key}.{knob}", f"is not sampled here; sampled knobs: {', '.join(domains)}")
        # A baseline may lie outside its domain (L2 = 0 beside a log domain), never outside the knob's range.
        _check_value(f"{key}.{knob}", value, base, "baseline", knob=knob)
    return dict(point)


def _check_value(key: str, value: Any, base: TrainConfig, where: str, knob: str | None = None) -> None:
    knob = knob or key
    try:
        if knob == AUGMENT_STRENGTH:
            limit, ranged, limit_refused = augment_strength_limit()
            if not is_number(value):
                raise ValueError(f"{AUGMENT_STRENGTH} must be a number, got {value!r}")
            if value < 0 or value > limit or (value == limit and limit_refused):
                raise ValueError(f"{AUGMENT_STRENGTH}={value!r} is out of range; allowed: from 0 to "
                                 f"{'below ' if limit_refused else ''}{limit:g} "
                                 f"(there the study's {ranged} leaves its range)")
            base.with_augment_strength(float(value))
        else:
            base.replace(**{knob: value})
    except ValueError as error:
        raise SearchSpaceError(key, f"{where}: {error}") from None


def augment_strength_limit() -> tuple[float, str, bool]:
    """The strength at which the first of the scaled augmentation ranges leaves its allowed range,
    that range's name, and whether the limit itself is refused (zoom: 0.2 x 5 = 1, where [0, 1) ends)."""
    study, fields = TrainConfig(), {f.name: f for f in dataclasses.fields(TrainConfig)}
    limits = {name: fields[name].metadata["high"] / getattr(study, name) for name in AUGMENT_RANGES}
    ranged = min(limits, key=limits.__getitem__)
    return limits[ranged], ranged, fields[ranged].metadata["high_open"]


def _knob_type(knob: str) -> type:
    if knob == AUGMENT_STRENGTH:
        return float
    return base_type(next(f for f in dataclasses.fields(TrainConfig) if f.name == knob))


def _value_of(config: TrainConfig, knob: str) -> Any:
    return config.augment_strength if knob == AUGMENT_STRENGTH else getattr(config, knob)
