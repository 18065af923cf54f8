"""The labs' shared shape: parameters parse and refuse bad input, the CLI lists and runs labs, JSONL streams."""

from __future__ import annotations

import io
import json

import pytest

from workbench import labs as labs_package
from workbench.labs import cli
from workbench.labs.base import Lab, LabContext, Param


class CountingLab(Lab):
    name = "counting"
    title = "Counts to n"
    course_term = "计数"
    course_section = "0.0"
    explanation = "Counts."
    params = (Param("n", 3, "how far to count", minimum=1, maximum=10),)

    def run(self, ctx: LabContext) -> None:
        for number in range(1, int(ctx["n"]) + 1):
            ctx.line(f"counted {number}")
        ctx.table("counts", ("n",), [(number,) for number in range(1, int(ctx["n"]) + 1)])
        ctx.figure("total", "counted to", int(ctx["n"]))
        ctx.verdict(f"counted to {ctx['n']}")


@pytest.fixture
def only_counting(monkeypatch):
    monkeypatch.setattr(cli, "all_labs", lambda: [CountingLab()])
    monkeypatch.setattr(cli, "find_lab", lambda name: CountingLab())


def test_a_param_parses_its_type_and_refuses_what_is_out_of_range():
    param = Param("n", 3, "how far", minimum=1, maximum=10)
    assert param.parse("7") == 7
    with pytest.raises(ValueError, match="at most 10"):
        param.parse("11")
    with pytest.raises(ValueError, match="whole number"):
        param.parse("seven")
    assert Param("lock", True, "use a Lock").parse("off") is False
    assert Param("delay", 0.5, "seconds").parse("0.25") == 0.25


def test_execute_overrides_defaults_and_refuses_an_unknown_parameter():
    report = CountingLab().execute({"n": 5})
    assert report.value("total") == 5
    assert report.lines[-1] == "counted 5"
    with pytest.raises(KeyError, match="has no parameter 'm'"):
        CountingLab().execute({"m": 1})


def test_cli_runs_a_lab_with_a_set_parameter_as_jsonl(only_counting):
    out = io.StringIO()
    assert cli.main(["--run", "counting", "--set", "n=2", "--jsonl"], out=out) == 0
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = [event["type"] for event in events]
    assert kinds == ["line", "line", "table", "figure", "verdict", "done"]
    assert events[3]["value"] == 2


def test_cli_refuses_a_bad_parameter_with_a_clear_error(only_counting, capsys):
    assert cli.main(["--run", "counting", "--set", "n=99"]) == 2
    assert "at most 10" in capsys.readouterr().err


def test_every_lab_in_the_package_is_described_and_named_once():
    labs = labs_package.all_labs()
    names = [lab.name for lab in labs]
    assert len(names) == len(set(names))
    for lab in labs:
        assert lab.name and lab.title and lab.course_term and lab.explanation, lab
