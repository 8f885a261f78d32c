"""The subcommand registry: each subcommand is a module with add_parser / run."""
from __future__ import annotations

import sys
import types

from mlmetrics import cli


def test_a_registered_module_becomes_a_subcommand(monkeypatch, capsys):
    mod = types.ModuleType("fake_compare")

    def add_parser(sub):
        p = sub.add_parser("compare", help="compare")
        p.add_argument("inputs", nargs="+")
        return p

    def run(args):
        print("compared", *args.inputs)
        return 3

    mod.add_parser, mod.run = add_parser, run
    monkeypatch.setitem(sys.modules, "fake_compare", mod)
    monkeypatch.setitem(cli.COMMANDS, "compare", "fake_compare")
    assert cli.main(["compare", "a.json", "b.json"]) == 3
    assert capsys.readouterr().out.strip() == "compared a.json b.json"


def test_an_optional_module_that_does_not_import_is_left_out(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "compare", "no_such_module_anywhere")
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"eval", "rescore"}


def test_help_and_version(capsys):
    assert cli.main([]) == 2
    assert "eval" in capsys.readouterr().out
    assert cli.main(["--version"]) == 0
