"""The command line as a new user meets it: one clear line when the stack is not there, real
line numbers in file errors, the choices in --help, a version, tokens alone on stdout."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowdsft.cli import app
from crowdsft.cli import commands as _commands  # noqa: F401  (registers the commands)
from crowdsft.cli.feedback import build_events, read_jsonl

NOTHING_THERE = {
    "CROWDSFT_ENV_FILE": "",
    "CROWDSFT_MONGO_URI": "mongodb://127.0.0.1:1/?retryWrites=false",
    "CROWDSFT_KAFKA_BOOTSTRAP": "127.0.0.1:1",
}


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["campaign", "show", "--id", "x"], "cannot reach MongoDB at 127.0.0.1:1"),
        (["contributor", "create", "--id", "x"], "cannot reach MongoDB at 127.0.0.1:1"),
        (["export", "--campaign", "x"], "cannot reach MongoDB at 127.0.0.1:1"),
        (
            ["submit", "--campaign", "c", "--contributor", "a", "--prompt", "p", "--response", "r"],
            "cannot reach Kafka at 127.0.0.1:1",
        ),
    ],
)
def test_a_missing_stack_is_one_line_naming_the_setting(args: list[str], what: str) -> None:
    result = CliRunner().invoke(app, args, env=NOTHING_THERE)
    assert result.exit_code == 1
    assert what in result.stderr and "make up" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_jsonl_errors_name_the_files_real_lines(tmp_path: Path) -> None:
    rows = tmp_path / "feedback.jsonl"
    rows.write_text('{"prompt": "p", "response": "fine"}\n\n\n{"prompt": "p"}\n')
    with pytest.raises(Exception, match=r"line 4: response: Field required"):
        build_events(read_jsonl(rows), {"campaign_id": "c", "contributor_id": "a"})


def test_help_lists_the_choices_and_the_version_prints() -> None:
    shown = CliRunner().invoke(app, ["campaign", "create", "--help"], env={"COLUMNS": "200"})
    assert "one of marginal, rank, shapley" in shown.stdout
    assert "one of epsilon_greedy, interleaved, interleaved_paper, random" in shown.stdout
    backends = shown.stdout.split("Training backend: one of ")[1].split("(default")[0]
    assert {"lora", "vector"} <= {name.strip() for name in backends.split(",")}
    version = CliRunner().invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.startswith("crowdsft ")


def test_the_operator_token_is_alone_on_stdout() -> None:
    result = CliRunner().invoke(app, ["operator", "token"])
    assert result.exit_code == 0
    [token] = result.stdout.split()
    assert "CROWDSFT_GATEWAY_OPERATOR_TOKEN_SHA256=" in result.stderr and token not in result.stderr
