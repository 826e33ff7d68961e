"""The backend registry: how a campaign's models are made, placed and scored.

A backend is one entry with both halves: its spec type (what a campaign fixes about it), the
selection half (`Placement`: how the crowd, a base and the candidates are placed and judged;
pure) and the training half (`trainer`: an import path, so only a training process loads what
it needs, a GPU library say). Adding a backend is one module and one `register(...)`; modules
named in `CROWDSFT_BACKEND_MODULES` are imported by every process at start-up.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from crowdsft.domain.backend_spec import SPEC_TYPES, BackendSpec
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.crowd import Contribution, CrowdSnapshot
from crowdsft.domain.measurement import Measurement
from crowdsft.domain.round import Decision, Round
from crowdsft.engine.registry import Registry


class Placement(Protocol):
    """Selection's half of a backend: pure, so every step replays from stored inputs."""

    def snapshot(self, spec: CampaignSpec, contributions: Sequence[Contribution]) -> CrowdSnapshot:
        """The crowd at a round's opening (who, which contributions, where if known)."""
        ...

    def root(self, spec: CampaignSpec, initial_model: list[float]) -> Measurement | None:
        """The starting model's measurement at creation; None: training measures it."""
        ...

    def decide(
        self,
        spec: CampaignSpec,
        round_: Round,
        base: Measurement,
        candidates: Sequence[Measurement],
    ) -> Decision:
        """Judge a complete round's candidates (in group order) against its base."""
        ...


@dataclass(frozen=True)
class Backend:
    name: str
    spec_type: type[BackendSpec]
    placement: Placement
    trainer: str  # "module:Class", built by the training service with its ports

    def trainer_class(self) -> Any:
        module, _, name = self.trainer.partition(":")
        return getattr(importlib.import_module(module), name)


BACKENDS: Registry[Backend] = Registry("backend")


def register(backend: Backend) -> Backend:
    """Add a backend; its spec's `kind` must default to its name."""
    declared = backend.spec_type.model_fields["kind"].default
    if declared != backend.name:
        raise ValueError(f"backend {backend.name!r}: its spec's kind defaults to {declared!r}")
    BACKENDS[backend.name] = backend
    SPEC_TYPES[backend.name] = backend.spec_type
    return backend


def backend_of(spec: CampaignSpec) -> Backend:
    return BACKENDS.lookup(spec.backend.kind)


def load_plugins(modules: Iterable[str]) -> None:
    """Import modules that register backends (idempotent: a module registers once)."""
    for module in modules:
        importlib.import_module(module)
