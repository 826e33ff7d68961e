"""`crowdsft campaign ...`: campaigns feedback can be submitted to, and those that run rounds."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_reads import CampaignReads
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.cli import app
from crowdsft.cli.store import on_store
from crowdsft.domain.backend_spec import parse_backend_spec
from crowdsft.domain.backends import BACKENDS
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.lora_backend import LoraBackendSpec
from crowdsft.engine.evaluation import EVALUATIONS
from crowdsft.engine.grouping import GROUPINGS
from crowdsft.engine.points import POINT_RULES

campaign_app = typer.Typer(no_args_is_help=True, help="Create and inspect campaigns.")
app.add_typer(campaign_app, name="campaign")
err = Console(stderr=True)

ROUNDS = "Round settings (need --target)"


def choices(registry: dict[str, Any], default: str) -> str:
    """The names `--help` lists (a plugin's backend, registered at start-up, is valid too)."""
    return f"one of {', '.join(sorted(registry))} (default {default})"


def parse_target(text: str, source: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"{source}: not a comma-separated row of numbers ({exc})") from exc


def read_target(path: Path) -> list[float]:
    """The first non-empty row of a CSV file."""
    with path.open(newline="") as rows:
        for row in csv.reader(rows):
            if any(cell.strip() for cell in row):
                return parse_target(",".join(row), str(path))
    raise typer.BadParameter(f"{path}: no row of numbers")


def target_of(target: str | None, target_file: Path | None) -> list[float] | None:
    if target is not None and target_file is not None:
        raise typer.BadParameter("give --target or --target-file, not both")
    if target_file is not None:
        return read_target(target_file)
    return parse_target(target, "--target") if target is not None else None


def build_spec(campaign_id: str, name: str | None, fields: dict[str, Any]) -> CampaignSpec:
    """Only the options given are passed, so every default lives in CampaignSpec alone."""
    given = {k: v for k, v in fields.items() if v is not None}
    policy = {k: given.pop(k) for k in ("mode", "min_contributions", "max_rounds") if k in given}
    spec = {"campaign_id": campaign_id, "name": name or "", **given}
    return validated(spec | ({"policy": policy} if policy else {}))


def validated(fields: dict[str, Any]) -> CampaignSpec:
    try:
        return CampaignSpec.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in exc.errors()
        )
        raise typer.BadParameter(problems) from exc


def spec_from_file(path: Path, campaign_id: str | None = None) -> CampaignSpec:
    """A spec file: YAML or JSON, the same fields as `POST /v1/campaigns`. Without a `target`,
    the mean `phi` of its `reference_answers` is the target (the campaign's backend says which
    phi; this loads MiniLM, so it runs here and not in the gateway)."""
    try:
        fields = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{path}: not YAML or JSON ({exc})") from exc
    if not isinstance(fields, dict):
        raise typer.BadParameter(f"{path}: expected a mapping of campaign fields")
    if campaign_id is not None:
        fields["campaign_id"] = campaign_id
    if "target" not in fields and fields.get("reference_answers"):
        fields["target"] = target_of_answers(fields)
    return validated(fields)


def target_of_answers(fields: dict[str, Any]) -> list[float]:
    try:
        backend = parse_backend_spec(fields.get("backend", "vector"))
    except (ValueError, ValidationError) as exc:
        raise typer.BadParameter(f"backend: {exc}") from exc
    if not isinstance(backend, LoraBackendSpec):
        raise typer.BadParameter("reference_answers make a target only for a backend with phi")
    answers = fields["reference_answers"]
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise typer.BadParameter("reference_answers: a list of texts")
    from crowdsft.llm_runtime.phi import load_phi

    vectors = load_phi(backend.llm.phi).embed(answers)
    return [float(x) for x in vectors.mean(axis=0)]


async def _create(db: mongo.Database, campaign_id: str, name: str | None,
                  spec: CampaignSpec | None) -> bool:  # fmt: skip
    store = CampaignStore(db)
    if spec is None:
        return await store.create(campaign_id, name)
    return await store.create_with_spec(spec)


@campaign_app.command("create")
def create(
    campaign_id: Annotated[
        str | None, typer.Option("--id", help="Campaign id (a spec file may give it).")
    ] = None,
    spec_file: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            exists=True,
            dir_okay=False,
            help="A campaign spec, YAML or JSON (the body POST /v1/campaigns takes); "
            "`reference_answers` without a `target` make the target.",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Human-readable name.")] = None,
    target: Annotated[
        str | None,
        typer.Option(help='Ideal point, e.g. "1,2,3": makes the campaign run rounds.'),
    ] = None,
    target_file: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="CSV file whose first row is the target."),
    ] = None,
    groups: Annotated[
        int | None, typer.Option(help="Groups per round (default 4).", rich_help_panel=ROUNDS)
    ] = None,
    grouping: Annotated[
        str | None,
        typer.Option(
            help=f"Grouping rule: {choices(GROUPINGS, 'random')}.", rich_help_panel=ROUNDS
        ),
    ] = None,
    evaluation: Annotated[
        str | None,
        typer.Option(help=f"Evaluation: {choices(EVALUATIONS, 'l2')}.", rich_help_panel=ROUNDS),
    ] = None,
    points: Annotated[
        str | None,
        typer.Option(help=f"Points rule: {choices(POINT_RULES, 'rank')}.", rich_help_panel=ROUNDS),
    ] = None,
    delta: Annotated[
        float | None, typer.Option(help="Step size (default 0.1).", rich_help_panel=ROUNDS)
    ] = None,
    judge_error: Annotated[
        float | None,
        typer.Option(help="Judging error rate (default 0.05).", rich_help_panel=ROUNDS),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help=f"Training backend: {choices(BACKENDS, 'vector')}.", rich_help_panel=ROUNDS
        ),
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help="manual | auto (default manual).", rich_help_panel=ROUNDS)
    ] = None,
    min_contributions: Annotated[
        int | None,
        typer.Option(
            help="auto: contributions before round 0 (default 1).", rich_help_panel=ROUNDS
        ),
    ] = None,
    rounds: Annotated[
        int | None, typer.Option(help="Most rounds to run (default 30).", rich_help_panel=ROUNDS)
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed (default 0).", rich_help_panel=ROUNDS)
    ] = None,
    shapley_every: Annotated[
        int | None,
        typer.Option(help="Recompute Shapley every k rounds (default 1).", rich_help_panel=ROUNDS),
    ] = None,
    shapley_rel_error: Annotated[
        float | None,
        typer.Option(help="Shapley relative error (default 0.01).", rich_help_panel=ROUNDS),
    ] = None,
) -> None:
    """Create a campaign (creating it twice is harmless); with a target it runs rounds."""
    settings = {
        "n_groups": groups,
        "grouping": grouping,
        "evaluation": evaluation,
        "points_rule": points,
        "delta": delta,
        "judge_error": judge_error,
        "backend": backend,
        "mode": policy,
        "min_contributions": min_contributions,
        "max_rounds": rounds,
        "seed": seed,
        "shapley_every": shapley_every,
        "shapley_rel_error": shapley_rel_error,
    }
    spec: CampaignSpec | None = None
    try:
        if spec_file is not None:
            given = [k for k, v in settings.items() if v is not None] + (
                ["--target"] if target or target_file else []
            )
            if given:
                raise typer.BadParameter(f"--spec holds every setting; drop {given}")
            spec = spec_from_file(spec_file, campaign_id)
        elif campaign_id is None:
            raise typer.BadParameter("give --id, or --spec with a campaign_id")
        else:
            vector = target_of(target, target_file)
            if vector is not None:
                spec = build_spec(campaign_id, name, settings | {"target": vector})
            elif any(value is not None for value in settings.values()):
                raise typer.BadParameter("round settings need --target or --target-file")
    except typer.BadParameter as exc:
        err.print(f"[red]campaign not created:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    created_id = spec.campaign_id if spec is not None else str(campaign_id)
    created = on_store(lambda db: _create(db, created_id, name, spec))
    kind = "runs rounds" if spec is not None else "feedback only"
    typer.echo(f"campaign {created_id} {'created' if created else 'already exists'} ({kind})")


async def _show(db: mongo.Database, campaign_id: str) -> dict[str, Any] | None:
    found = await CampaignReads(db).campaign(campaign_id)
    if found is None:
        return None
    state = found.state
    return {
        "campaign_id": found.campaign_id,
        "name": found.name,
        "created_at": found.created_at.isoformat() if found.created_at else None,
        "spec": found.spec.model_dump(mode="json") if found.spec else None,
        "state": vars(state) if state is not None else None,
    }


@campaign_app.command("show")
def show(campaign_id: Annotated[str, typer.Option("--id", help="Campaign id.")]) -> None:
    """Print a campaign's spec and where its rounds stand, as JSON."""
    shown = on_store(lambda db: _show(db, campaign_id))
    if shown is None:
        err.print(f"[red]no campaign {escape(repr(campaign_id))}[/red]")
        raise typer.Exit(1)
    typer.echo(json.dumps(shown, indent=2))
