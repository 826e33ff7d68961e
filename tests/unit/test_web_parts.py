"""The web app's pure parts: the chart's markup and the shape of a signed-in visitor."""

from __future__ import annotations

from services.web.app import prompts_of, shapley_of
from services.web.charts import line_chart


def test_the_chart_skips_unmeasured_rounds_and_escapes_its_label() -> None:
    svg = line_chart([1.0, None, 0.5], "<b>x</b>")
    assert svg.count("<circle") == 2 and "&lt;b&gt;x&lt;/b&gt;" in svg and "<b>" not in svg
    assert line_chart([None], "x") == ""


def test_prompts_and_shapley_are_read_from_the_api_shapes() -> None:
    lora = {"spec": {"backend": {"kind": "lora", "llm": {"eval_prompts": ["say hi"]}}}}
    assert prompts_of(lora) == ["say hi"] and prompts_of({"spec": None}) == []
    values = {"values": [{"contributor_id": "a", "value": 0.5, "std_error": 0.1}]}
    assert shapley_of(values, "a") == {"value": 0.5, "std_error": 0.1}
    assert shapley_of(values, "b") is None and shapley_of(None, "a") is None
