"""Vision-token retention schedules of a Mixture-of-Depths decoder (pure math).

A schedule maps a layer index to the fraction ρ_l of vision tokens that layer
processes; the rest skip it (p-MoD). The default is p-MoD's progressive ratio
decay (PRD) with a shifted cosine: early layers see every vision token, deep
layers only a few, because deep layers attend to vision tokens redundantly.

Schedules are picked by name from :data:`SCHEDULES` (an explicit registry);
an unknown name is a :class:`~dmo.errors.ConfigError` listing the known ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from dmo.errors import ConfigError

# floor(n·ρ) must not lose a token to float noise (0.29·100 = 28.999999999999996).
_FLOOR_EPS = 1e-9


@dataclass(frozen=True)
class ScheduleParams:
    """Every knob a schedule may read; each schedule uses only its own."""

    constant: float = 0.5
    dense_above: float = 0.85
    floor: float = 0.15
    retention: tuple[float, ...] | None = None
    frame_retention: float = 0.2


ScheduleFn = Callable[[int, ScheduleParams], tuple[float, ...]]


def prd_shifted_cosine(num_layers: int, params: ScheduleParams) -> tuple[float, ...]:
    """ρ(l) = ½ + ½·cos(π·l/(L−1)); ρ > dense_above → 1, else max(ρ, floor).

    For L = 8: [1, 1, .812, .611, .389, .188, .15, .15], mean 0.5375. Because
    ρ(l) + ρ(L−1−l) = 1, the mean is ½ + floor·(pairs clipped)/L; for L = 8,
    16, 32 exactly a quarter of the layers are clipped at each end, giving
    0.5375 every time. A single layer is dense (ρ(0) = 1).
    """
    if num_layers == 1:
        return (1.0,)
    retention = []
    for layer in range(num_layers):
        rho = 0.5 + 0.5 * math.cos(math.pi * layer / (num_layers - 1))
        retention.append(1.0 if rho > params.dense_above else max(rho, params.floor))
    return tuple(retention)


def constant(num_layers: int, params: ScheduleParams) -> tuple[float, ...]:
    """Every layer keeps the same fraction (MoD's original fixed capacity)."""
    return (params.constant,) * num_layers


def linear(num_layers: int, params: ScheduleParams) -> tuple[float, ...]:
    """From 1 at the first layer down to `floor` at the last, in equal steps."""
    if num_layers == 1:
        return (1.0,)
    step = (1.0 - params.floor) / (num_layers - 1)
    return tuple(1.0 - step * layer for layer in range(num_layers))


def explicit(num_layers: int, params: ScheduleParams) -> tuple[float, ...]:
    """The per-layer list given in the config (e.g. chosen by ARank)."""
    if params.retention is None:
        raise ConfigError(
            "schedule 'explicit' needs a retention list",
            where="mod.retention",
            hint=f"give {num_layers} values in (0, 1]",
        )
    if len(params.retention) != num_layers:
        raise ConfigError(
            f"has {len(params.retention)} values for {num_layers} decoder layers",
            where="mod.retention",
            hint="give one value per layer",
        )
    return tuple(float(r) for r in params.retention)


def dense(num_layers: int, params: ScheduleParams) -> tuple[float, ...]:
    """No routing: the MoD model is the dense model."""
    return (1.0,) * num_layers


def video_per_frame(num_layers: int, params: ScheduleParams) -> tuple[float, ...]:
    """VideoLLM-MoD: the first layer dense, every other one keeps ``frame_retention`` (r = 0.2 in the
    paper) of *each frame's* vision tokens, ⌈r·n⌉ of its n (:func:`kept_vision_tokens` with frames),
    so no frame goes dark; the skipped tokens pass through the layer unchanged."""
    return (1.0,) + (params.frame_retention,) * (num_layers - 1)


SCHEDULES: dict[str, ScheduleFn] = {
    "prd_shifted_cosine": prd_shifted_cosine,
    "constant": constant,
    "linear": linear,
    "explicit": explicit,
    "dense": dense,
    "video_per_frame": video_per_frame,
}

# Schedules whose routed layers choose among each frame's tokens, not the whole sample's.
PER_FRAME_SCHEDULES = frozenset({"video_per_frame"})


def retention_schedule(name: str, num_layers: int, **params: object) -> tuple[float, ...]:
    """Per-layer vision-token retention of schedule `name` for `num_layers` layers.

    `params` are fields of :class:`ScheduleParams` (constant, dense_above,
    floor, retention); every returned value lies in (0, 1].
    """
    if name not in SCHEDULES:
        raise ConfigError(
            f"unknown retention schedule {name!r}",
            where="mod.schedule",
            hint=f"known: {', '.join(SCHEDULES)}",
        )
    if num_layers < 1:
        raise ConfigError(f"needs at least one layer, got {num_layers}", where="num_hidden_layers")
    known = {f.name for f in fields(ScheduleParams)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(
            f"unknown schedule parameter(s) {', '.join(unknown)}",
            where="mod",
            hint=f"known: {', '.join(sorted(known))}",
        )
    if params.get("retention") is not None:
        params["retention"] = tuple(params["retention"])  # type: ignore[arg-type]
    schedule = SCHEDULES[name](num_layers, ScheduleParams(**params))  # type: ignore[arg-type]
    bad = [(i, r) for i, r in enumerate(schedule) if not 0.0 < r <= 1.0]
    if bad:
        layer, value = bad[0]
        raise ConfigError(
            f"layer {layer} gets retention {value}",
            where="mod",
            hint="every retention must lie in (0, 1]",
        )
    return schedule


def kept_vision_tokens(n_vis: int, rho: float, *, frames: int | None = None) -> int:
    """How many vision tokens a layer with retention ρ processes: k_l = ⌊n_vis·ρ_l⌋ (p-MoD), or with
    ``frames`` (VideoLLM-MoD) frames·⌈ρ·n_vis/frames⌉, the ceiling of each frame's share."""
    if frames is None:
        return min(n_vis, int(math.floor(n_vis * rho + _FLOOR_EPS)))
    if frames < 1 or n_vis % frames:
        raise ValueError(f"{n_vis} vision tokens do not split into {frames} frames")
    return frames * kept_per_frame(n_vis // frames, rho)


def kept_per_frame(patches: int, rho: float) -> int:
    """⌈ρ·n⌉ of one frame's n patch tokens, at least one: no frame goes dark."""
    return min(patches, max(1, math.ceil(patches * rho - _FLOOR_EPS)))


def mean_retention(schedule: Sequence[float]) -> float:
    return sum(schedule) / len(schedule)
