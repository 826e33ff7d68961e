"""`crowdsft export` and `crowdsft model export`: what a campaign made, taken away."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from crowdsft.adapters import mongo
from crowdsft.adapters.export_reads import ModelLineage
from crowdsft.cli import app
from crowdsft.cli.store import on_store
from crowdsft.domain.dataset import STATUSES, CampaignData, Status, dataset_card, rows
from crowdsft.reporting.dataset_files import DatasetFormat, data_file_name, write_dataset
from crowdsft.settings import Settings, load_settings

err = Console(stderr=True)
model_app = typer.Typer(no_args_is_help=True, help="Models a campaign trained.")
app.add_typer(model_app, name="model")


def pseudonym_key(settings: Settings) -> bytes:
    if settings.export_pseudonym_key is not None:
        return settings.export_pseudonym_key.get_secret_value().encode()
    err.print("[yellow]CROWDSFT_EXPORT_PSEUDONYM_KEY is unset: pseudonyms are fresh for this "
              "export and differ from any other[/yellow]")  # fmt: skip
    return secrets.token_bytes(32)


def parse_statuses(value: str) -> list[Status]:
    chosen = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(STATUSES))
    if unknown or not chosen:
        raise typer.BadParameter(f"choose from {', '.join(STATUSES)} (comma-separated)")
    return [s for s in STATUSES if s in chosen]


async def _campaign_data(db: mongo.Database, campaign_id: str) -> CampaignData | None:
    from crowdsft.adapters.export_reads import campaign_data

    return await campaign_data(db, campaign_id)


@app.command("export")
def export_dataset(
    campaign: Annotated[str, typer.Option(help="Campaign id.")],
    fmt: Annotated[DatasetFormat, typer.Option("--format", help="File format.")] = "jsonl",
    out: Annotated[
        Path | None, typer.Option(help="Folder to write; default exports/<campaign>.")
    ] = None,
    status: Annotated[
        str,
        typer.Option(help="Rows to keep: accepted, flagged, rejected (comma-separated)."),
    ] = "accepted",
    real_ids: Annotated[
        bool, typer.Option(help="Operators only: contributors' real ids, not pseudonyms.")
    ] = False,
    license_id: Annotated[
        str, typer.Option("--license", help="The dataset card's licence field.")
    ] = "other",
) -> None:
    """Write a campaign's data as a dataset (TRL's `messages` and `prompt`/`completion`) with
    a dataset card."""
    statuses = parse_statuses(status)
    settings = load_settings()
    data = on_store(lambda db: _campaign_data(db, campaign), settings)
    if data is None:
        err.print(f"[red]no campaign {escape(repr(campaign))}[/red]")
        raise typer.Exit(1)
    key = None if real_ids else pseudonym_key(settings)
    table = rows(data, statuses, key)
    card = dataset_card(data, table, data_file_name(fmt), license_id, pseudonymised=key is not None)
    folder = out or Path("exports") / campaign
    written = write_dataset(folder, table, card, fmt)
    typer.echo(str(written))
    err.print(f"{len(table)} rows; card at {folder / 'README.md'}")


async def _lineage(db: mongo.Database, campaign_id: str, model_id: str | None) -> ModelLineage:
    from crowdsft.adapters.export_reads import model_lineage

    return await model_lineage(db, campaign_id, model_id)


@model_app.command("export")
def export_model(
    campaign: Annotated[str, typer.Option(help="Campaign id.")],
    out: Annotated[Path, typer.Option(help="Folder to write the model into.")],
    model: Annotated[
        str | None, typer.Option(help="Model id; default: the campaign's current model.")
    ] = None,
    merged: Annotated[
        bool, typer.Option(help="A full checkpoint, not the last adapter alone.")
    ] = False,
) -> None:
    """Rebuild a lineage's model (the base and its chain of adapters) with a model card."""
    from crowdsft.domain.lora_backend import LoraBackendSpec
    from crowdsft.domain.model_card import adapter_keys, model_card

    settings = load_settings()
    try:
        lineage = on_store(lambda db: _lineage(db, campaign, model), settings)
    except LookupError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    backend = lineage.spec.backend
    if not isinstance(backend, LoraBackendSpec):
        err.print(f"[red]campaign {escape(repr(campaign))} trains no language model[/red]")
        raise typer.Exit(1)
    from crowdsft.llm_runtime.export import write_model
    from crowdsft.llm_runtime.jobs import ModelRef, Workspace

    base = backend.llm.base_model
    ref = ModelRef(base, adapter_keys(lineage.chain))
    card = model_card(lineage.spec, base, lineage.chain, merged, lineage.credited)
    try:
        write_model(ref, Workspace(settings.artifact_root, settings.model_cache), out, merged, card)
    except ValueError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    typer.echo(str(out))
    err.print(f"{lineage.chain[-1].model_id}: {len(ref.adapters)} adapters; card in README.md")
