"""User traffic: a day-shaped request rate with slow noise and benign surges, turned into Poisson
request counts per second and journey."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from otlp_aiops.datasets.simulator.config import SimulatorConfig
from otlp_aiops.datasets.simulator.schedule import Schedule
from otlp_aiops.datasets.simulator.topology import Topology

PEAK_HOUR = 14.0  # busiest hour of the simulated day (UTC)
NOISE_STEP_S = 10  # the slow rate noise changes every 10 s
SURGE_RAMP_S = 10.0


def request_rate(cfg: SimulatorConfig, schedule: Schedule, rng: np.random.Generator) -> np.ndarray:
    """Requests per second entering the frontend, one value per simulated second."""
    n_seconds = cfg.seconds
    start = datetime.fromisoformat(cfg.start.replace("Z", "+00:00"))
    hour0 = start.hour + start.minute / 60 + start.second / 3600
    hours = hour0 + np.arange(n_seconds) / 3600.0
    diurnal = 1.0 + cfg.diurnal_amplitude * np.cos(2 * math.pi * (hours - PEAK_HOUR) / 24.0)
    # log-AR(1) noise: about +-10 % wandering, correlated over minutes
    n_steps = n_seconds // NOISE_STEP_S + 1
    eps = rng.normal(0.0, 0.03, n_steps)
    ar = np.empty(n_steps)
    acc = 0.0
    for i, e in enumerate(eps):
        acc = 0.95 * acc + e
        ar[i] = acc
    noise = np.exp(np.repeat(ar, NOISE_STEP_S)[:n_seconds])
    surge = np.ones(n_seconds)
    t = np.arange(n_seconds, dtype=np.float64)
    for d in schedule.disturbances:
        if d.kind != "traffic_surge" or d.magnitude is None:
            continue
        up = np.clip((t - d.start) / SURGE_RAMP_S, 0.0, 1.0)
        down = np.clip((d.end - t) / SURGE_RAMP_S, 0.0, 1.0)
        surge *= 1.0 + (d.magnitude - 1.0) * np.minimum(up, down)
    return cfg.request_rate * diurnal * noise * surge


def arrivals(rate: np.ndarray, topo: Topology, seed: int, chunk_s: int, stream_tag: int) -> np.ndarray:
    """Poisson request counts, shape (seconds, journeys). Drawn per chunk of time from its own
    random stream, so a change in one stretch of time leaves the others alone."""
    w = np.array([j.weight for j in topo.journeys], dtype=np.float64)
    w /= w.sum()
    n_seconds = len(rate)
    out = np.empty((n_seconds, len(w)), np.int32)
    for c0 in range(0, n_seconds, chunk_s):
        c1 = min(n_seconds, c0 + chunk_s)
        rng = np.random.default_rng([seed, stream_tag, c0 // chunk_s])
        out[c0:c1] = rng.poisson(rate[c0:c1, None] * w[None, :])
    return out
