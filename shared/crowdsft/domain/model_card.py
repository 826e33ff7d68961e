"""The card written beside an exported model: where it came from, round by round."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.ids import key_of
from crowdsft.domain.lineage import LineageEntry


def adapter_keys(chain: Sequence[LineageEntry]) -> tuple[str, ...]:
    """Artifact keys of the adapters merged into the chain's last model, oldest first (the
    first entry is the campaign's base, which has none)."""
    return tuple(key_of(entry.artifact_ref or "") for entry in chain[1:])


def _figure(metrics: Mapping[str, float], name: str) -> str:
    value = metrics.get(name)
    return "-" if value is None else f"{value:.4f}"


def model_card(spec: CampaignSpec, base_model: str, chain: Sequence[LineageEntry],
               merged: bool, credited: Mapping[str, str]) -> str:  # fmt: skip
    """README.md for the export; `chain` is the model's ancestry, base first."""
    model = chain[-1]
    steps = (
        "\n".join(
            f"| {e.round_index} | `{e.model_id}` | {_figure(e.metrics, 'distance')} | "
            f"{_figure(e.metrics, 'heldout_distance')} | {_figure(e.metrics, 'base_distance')} | "
            f"{len(e.contribution_ids)} |"
            for e in chain[1:]
        )
        or "| - | the base model itself | - | - | - | 0 |"
    )
    data = (
        "\n".join(
            f"- round {e.round_index}: {', '.join(f'`{c}`' for c in e.contribution_ids)}"
            for e in chain[1:]
        )
        or "- none: this is the campaign's base model"
    )
    contributors = sorted({c for e in chain[1:] for c in e.contributor_ids})
    names = ", ".join(sorted(credited[c] for c in contributors if c in credited)) or "nobody"
    settings = chain[-1].hyperparameters or (chain[1].hyperparameters if len(chain) > 1 else {})
    form = (
        "a full checkpoint with every adapter merged (`AutoModelForCausalLM.from_pretrained`)"
        if merged
        else "the last round's LoRA adapter alone (PEFT), over its parent with the earlier "
        "adapters merged"
    )
    return f"""---
library_name: {"transformers" if merged else "peft"}
base_model: {base_model}
tags:
- crowdsft
- lora
---
# `{model.model_id}`

Trained by the crowd of campaign `{spec.campaign_id}` with crowdsft: {form}.
Base: `{base_model}`. Each round the crowd was dealt into {spec.n_groups} groups; each group's
demonstrations fine-tuned one LoRA candidate of the round's base, and the candidate closest to
the campaign's target (`{spec.evaluation}` distance in `phi` space) became the next base when it
beat the base itself on the selection prompts; the judge re-scored it on held-out prompts.

## Lineage

| round | model | selection distance | held-out distance | base's distance | examples |
|---|---|---|---|---|---|
{steps}

## Data, by round (contribution ids)

{data}

## Contributors

{len(contributors)} contributors wrote this model's data; credited by name (opted in): {names}.

## Hyper-parameters

```json
{json.dumps(settings, indent=2, sort_keys=True, default=str)}
```
"""
