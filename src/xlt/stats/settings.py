"""The statistics' settings (config `stats`): resamples, confidence, margins, seed and
the primary test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..stattests import Resampling


@dataclass(frozen=True)
class StatsSettings:
    bootstrap_samples: int = 2000
    confidence: float = 0.95
    equivalence_margin: float = 0.05
    seed: int = 0
    primary: str = "auto"
    proximity_margin: float = 0.1

    @classmethod
    def from_config(cls, block: dict) -> StatsSettings:
        return cls(
            **{
                key: block[key]
                for key in (
                    "bootstrap_samples",
                    "confidence",
                    "equivalence_margin",
                    "seed",
                    "primary",
                    "proximity_margin",
                )
            }
        )

    @property
    def alpha(self) -> float:
        return 1 - self.confidence

    def resampling(self, clusters: np.ndarray | int) -> Resampling:
        return Resampling.draw(clusters, self.bootstrap_samples, self.confidence, self.seed)
