"""Training's half of each backend: what a trainer is given, and how one is found.

Each backend in `crowdsft.domain.backends` names its trainer by import path; the training
service builds it on first use with the ports below. A trainer turns one request into the
candidate's `Measurement`; it never publishes and never checks for replays (the handler does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import structlog

from crowdsft.contracts import TrainingRequested
from crowdsft.domain.backends import BACKENDS
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.measurement import Measurement
from crowdsft.domain.ports import Contributions, Lineage, Measurements, Rounds
from crowdsft.domain.round import Group
from crowdsft.settings import Settings

log = structlog.get_logger("training")


@dataclass(frozen=True)
class TrainingPorts:
    contributions: Contributions
    measurements: Measurements
    lineage: Lineage
    settings: Settings
    rounds: Rounds  # a request names its round; the group's members are the stored round's

    async def group(self, request: TrainingRequested) -> Group:
        """The requested group as the round stored it (members, weights, contributions)."""
        stored = await self.rounds.by_id(request.round_id)
        if stored is None or stored.campaign_id != request.campaign_id:
            raise LookupError(f"round {request.round_id} is not in the store")
        return stored.group(request.group_index)


class Trainer(Protocol):
    async def train(self, spec: CampaignSpec, request: TrainingRequested) -> Measurement: ...

    async def warm(self) -> None:
        """Make ready what the first request would otherwise wait for (models, workers)."""

    async def prepare(self, spec: CampaignSpec) -> None:
        """Do, while the campaign's crowd submits, the fixed work its first round would
        otherwise wait for. Idempotent and never required: a round does what is not done."""

    def close(self) -> None: ...


class TrainerLookup(Protocol):
    def get(self, kind: str, /) -> Trainer | None: ...


class InstalledTrainers:
    """The registered backends' trainers, built once each; None for a backend this process
    cannot run (not registered here, or its libraries are not installed)."""

    def __init__(self, ports: TrainingPorts) -> None:
        self._ports = ports
        self._built: dict[str, Trainer] = {}

    def get(self, kind: str, /) -> Trainer | None:
        if kind not in self._built:
            backend = BACKENDS.get(kind)
            if backend is None:
                return None
            try:
                factory = backend.trainer_class()
            except ImportError as exc:
                log.error("trainer not installed", backend=kind, error=str(exc))
                return None
            self._built[kind] = factory(self._ports)
        return self._built[kind]

    async def warm(self, kinds: list[str]) -> None:
        """Build these backends' trainers and ready them, before any request asks."""
        for kind in kinds:
            trainer = self.get(kind)
            if trainer is None:
                log.error("cannot warm a backend that is not installed", backend=kind)
                continue
            await trainer.warm()
            log.info("trainer warm", backend=kind)

    def close(self) -> None:
        for trainer in self._built.values():
            trainer.close()
