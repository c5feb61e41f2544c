"""The CLI declared once: options built from the configs they fill, one meaning per short flag."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mfrkit.bench.benchmark import BenchConfig
from mfrkit.cli import app
from mfrkit.cli.declare import with_config
from mfrkit.maskgen import PartialConfig, SynthConfig
from mfrkit.options import OPTION_KEY, declared_options, floats, none_for, option, options_of
from mfrkit.protocols.options import MakeConfig, RegisterOptions

#: The one meaning of each short flag, in every command. A new short flag is added
#: here deliberately, or not at all.
SHORT_FLAGS = {"-j": "--workers", "-o": "--out", "-m": "--manifest", "-p": "--probe-manifest", "-f": "--format", "-v": "--verbose"}


def _commands(cmd, path=()):
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, path + (name,))


def _all_options():
    root = typer.main.get_command(app)
    for path, cmd in _commands(root):
        for param in cmd.params:
            if param.param_type_name == "option":
                yield " ".join(("mfrkit",) + path), param


def test_every_short_flag_has_one_meaning_across_all_commands():
    meanings: dict[str, set] = {}
    seen = 0
    for where, param in _all_options():
        flags = list(param.opts) + list(param.secondary_opts)
        longs = [f for f in param.opts if f.startswith("--")]
        for short in (f for f in flags if not f.startswith("--")):
            assert longs, f"{where}: {short} has no long form"
            meanings.setdefault(short, set()).add(longs[0])
            seen += 1
    assert seen > 10  # the walk did find the commands
    for short, longs in meanings.items():
        assert len(longs) == 1, f"{short} means {sorted(longs)}"
        assert short in SHORT_FLAGS, f"{short} ({longs}) is not one of the declared short flags {SHORT_FLAGS}"
        assert longs == {SHORT_FLAGS[short]}, f"{short} means {longs}, not {SHORT_FLAGS[short]}"


def test_no_command_declares_a_flag_twice():
    root = typer.main.get_command(app)
    for path, cmd in _commands(root):
        flags = [f for p in cmd.params for f in list(getattr(p, "opts", [])) + list(getattr(p, "secondary_opts", [])) if f.startswith("-")]
        assert len(flags) == len(set(flags)), f"mfrkit {' '.join(path)}: {sorted(f for f in flags if flags.count(f) > 1)}"


def test_bench_model_and_protocol_have_no_short_flag():
    root = typer.main.get_command(app)
    bench = root.commands["bench"]
    by_name = {p.name: p for p in bench.params}
    assert by_name["models"].opts == ["--model"] and by_name["protocols"].opts == ["--protocol"]
    assert "-m" in by_name["manifests"].opts


@pytest.mark.parametrize("cls", [BenchConfig, SynthConfig, PartialConfig, MakeConfig, RegisterOptions])
def test_every_config_field_declares_its_option(cls):
    # A new field says how the command line sets it (or cli=False), so the command
    # never falls behind the config.
    undeclared = [f.name for f in dataclasses.fields(cls) if OPTION_KEY not in f.metadata]
    assert not undeclared
    for f, o in declared_options(cls):
        assert o.help.strip(), f"{cls.__name__}.{f.name} has no help"


def test_bench_defaults_come_from_the_dataclass(monkeypatch, tmp_path):
    from mfrkit.bench import benchmark

    seen = {}
    monkeypatch.setattr(benchmark, "run_benchmark", lambda cfg, **kw: seen.setdefault("cfg", cfg) and (_ for _ in ()).throw(SystemExit(0)))
    CliRunner().invoke(app, ["bench", "--model", "a.onnx", "--protocol", "p"])
    assert seen["cfg"] == BenchConfig(models=["a.onnx"], protocols=["p"])


# --- the mechanism on a toy config --------------------------------------------------------------


@dataclasses.dataclass
class Toy:
    inputs: list[str] = option(flags="--input", help="Input (repeatable, required).")
    count: int = option(3, short="-j", min=1, help="A count.")
    far: tuple = option((1e-3,), parse=floats, help="Targets.")
    skip_from: str | None = option("a", parse=none_for(""), help="'' for none.")
    cache: Path | None = option(default_factory=lambda: Path("/default"), switches={"--no-cache": None}, help="Cache.")
    overrides: dict = option(default_factory=dict, entries={"mean": "Mean.", "std": "Std."}, help="Overrides.")
    flip: bool = option(False, negatable=False, help="Flip.")
    plots: bool = option(True, help="Plots.")
    hidden: int = option(7, cli=False, help="Not on the command line.")


def _toy_app(seen):
    toy = typer.Typer()

    @toy.command()
    @with_config(Toy)
    def run(name: str, config: Toy) -> None:
        seen["name"], seen["config"] = name, config

    return toy


def test_declared_options_round_trip():
    seen = {}
    runner = CliRunner()
    result = runner.invoke(_toy_app(seen), ["n1", "--input", "x", "--input", "y"])
    assert result.exit_code == 0, result.output
    assert seen["name"] == "n1" and seen["config"] == Toy(inputs=["x", "y"])
    args = ["n2", "--input", "x", "-j", "5", "--far", "1e-2, 1e-4", "--skip-from", "", "--no-cache", "--mean", "127.5", "--flip", "--no-plots"]
    result = runner.invoke(_toy_app(seen), args)
    assert result.exit_code == 0, result.output
    c = seen["config"]
    assert c.count == 5 and c.far == (1e-2, 1e-4) and c.skip_from is None and c.cache is None
    assert c.overrides == {"mean": "127.5"} and c.flip is True and c.plots is False and c.hidden == 7
    result = runner.invoke(_toy_app(seen), ["n3", "--input", "x", "--cache", "/elsewhere"])
    assert seen["config"].cache == Path("/elsewhere")


@pytest.mark.parametrize(
    "args, message",
    [
        (["n"], "--input"),  # required
        (["n", "--input", "x", "-j", "0"], "-j"),  # below min
        (["n", "--input", "x", "--far", "abc"], "comma-separated numbers"),
        (["n", "--input", "x", "--cache", "/c", "--no-cache"], "exclude each other"),
        (["n", "--input", "x", "--hidden", "3"], "No such option"),
    ],
)
def test_declared_options_refuse_bad_input(args, message):
    result = CliRunner().invoke(_toy_app({}), args)
    assert result.exit_code == 2 and message in result.output


@dataclasses.dataclass(frozen=True)
class ToyPart:
    workers: int = option(1, short="-j", min=0, help="Workers.")
    kind: str = option("local", flags="--executor", help="Where.")


@dataclasses.dataclass
class ToyHolder:
    inputs: list[str] = option(flags="--input", help="Input.")
    part: ToyPart = options_of(ToyPart, ToyPart(workers=None), help="The part.", parts={"workers": {"help": "Holder's workers."}})


def test_a_composed_config_gives_its_options_under_its_own_flags():
    from mfrkit.options import build

    seen = {}
    toy = typer.Typer()

    @toy.command()
    @with_config(ToyHolder)
    def run(config: ToyHolder) -> None:
        seen["config"] = config

    runner = CliRunner()
    assert runner.invoke(toy, ["--input", "x"]).exit_code == 0
    assert seen["config"] == ToyHolder(inputs=["x"]) and seen["config"].part == ToyPart(workers=None)
    assert runner.invoke(toy, ["--input", "x", "-j", "3", "--executor", "ray"]).exit_code == 0
    assert seen["config"].part == ToyPart(workers=3, kind="ray")
    assert "Holder's workers." in runner.invoke(toy, ["--help"], terminal_width=200).output
    assert [f.name for f, _ in declared_options(ToyHolder)] == ["inputs", "part.workers", "part.kind"]
    assert build(ToyHolder, {"inputs": ["y"], "part.kind": "ray"}) == ToyHolder(inputs=["y"], part=ToyPart(workers=None, kind="ray"))


def test_a_field_needing_a_parser_is_refused_at_declaration():
    @dataclasses.dataclass
    class Bad:
        pairs: dict = option(default_factory=dict, help="No parser.")

    with pytest.raises(TypeError, match="Bad.pairs"):
        with_config(Bad)


def test_a_short_flag_is_one_letter():
    with pytest.raises(ValueError):
        option(1, short="-jj", help="x")


@pytest.mark.parametrize("command", [["synth"], ["bench"], ["demo"], ["datasets", "add"], ["leaderboard"]])
def test_help_shows_no_type_after_on_off_flags(command):
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0 and "--help" in result.output
    assert "<bool>" not in result.output


def test_protocol_show_keeps_the_largest_rows_of_a_long_table():
    import pandas as pd

    from mfrkit.cli.protocol import _largest_rows

    table = pd.DataFrame({"left": [f"masked/{i}" for i in range(30)], "genuine": range(30), "impostor": [1] * 30})
    top = _largest_rows(table, 5)
    assert top["left"].tolist() == [f"masked/{i}" for i in range(25, 30)]  # largest counts, in table order
    assert _largest_rows(table.head(4), 5) is not None and len(_largest_rows(table.head(4), 5)) == 4


def test_every_readme_command_names_real_options():
    """Each ``mfrkit ...`` line of the README's code blocks parses: its command exists and
    takes every option it shows. (Values that name files on the writer's disk are checked
    by the parsers too; those, and errors about them, are not what this test is about.)"""
    import re
    import shlex

    from mfrkit.errors import MfrkitError

    root = typer.main.get_command(app)
    text = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    lines = [part for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M) for line in block.splitlines()
             for part in re.split(r"\s*&&\s*", line.split("  #")[0].strip()) if part.startswith("mfrkit ") and "--version" not in part]
    assert len(lines) > 50
    for line in lines:
        args = shlex.split(line, comments=True)[1:]
        try:
            ctx = root.make_context("mfrkit", list(args))
            cmd, sub = root, list(args)
            while hasattr(cmd, "resolve_command"):
                name, cmd, sub = cmd.resolve_command(ctx, sub)
                ctx = cmd.make_context(name, sub, parent=ctx)
        except MfrkitError:
            continue  # a value naming something on the README writer's disk
        except Exception as exc:
            if type(exc).__name__ == "BadParameter":
                continue
            raise AssertionError(f"README: `{line}` does not parse: {type(exc).__name__}: {exc}") from None
