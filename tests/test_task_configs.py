"""Each command's options are generated from its typed config (cli/options.py):
every default is written once, in a dataclass field, and ``--help`` states it."""

import argparse
import dataclasses
import importlib

import pytest

from cli.errors import UserError
from cli.options import (add_config, default_text, from_args, option, option_fields,
                             same_option, section, section_fields, to_dict)

pytestmark = pytest.mark.backend_independent


def task_parsers():
    from tasks.registry import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def all_option_fields(config_cls) -> dict:
    """``{name: field}`` of every option of ``config_cls`` and its sections."""
    fields = dict(option_fields(config_cls))
    for field in section_fields(config_cls).values():
        fields.update(all_option_fields(field.default_factory))
    return fields


def field_default(field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def test_every_option_of_every_task_is_a_config_field_with_its_default():
    from tasks.registry import TASKS

    for name, parser in task_parsers().items():
        config_cls = importlib.import_module(TASKS[name]).CONFIG
        fields = all_option_fields(config_cls)
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.dest in fields, f"{name} --{action.dest} is no field of " \
                                          f"{config_cls.__name__}"
            default = field_default(fields[action.dest])
            if default is dataclasses.MISSING:  # no default: the user must give it
                assert action.required, (name, action.dest)
            else:
                assert action.default == default, (name, action.dest)
        # ... and parsing nothing gives the config's own defaults.
        if not any(a.required for a in parser._actions):
            assert from_args(config_cls, parser.parse_args([])) == config_cls(), name


def test_no_help_text_writes_its_default():
    """The generator appends "(default: ...)"; a help that says it too writes the
    default twice, and the two drift apart."""
    from tasks.registry import TASKS

    for name in TASKS:
        config_cls = importlib.import_module(TASKS[name]).CONFIG
        for field_name, field in all_option_fields(config_cls).items():
            text = field.metadata["option"]["help"].lower()
            assert "(default" not in text and "default:" not in text, (name, field_name)


def test_help_states_each_default_once():
    help_text = task_parsers()["cae"].format_help()
    flat = " ".join(help_text.split())
    assert "--latent-dim LATENT_DIM size of the latent code (default: 10)" in flat
    assert "(default: 32 64 128)" in flat and "(default: 0.002)" in flat
    assert "(default: runs/cae/<timestamp>)" in flat  # {task} filled in
    assert flat.count("(default:") == flat.count("default")  # no other mention


@dataclasses.dataclass
class Inner:
    rate: float = option(0.5, type=float, help="a rate")

    def __post_init__(self):
        if not 0 <= self.rate < 1:
            raise ValueError(f"rate must be in [0, 1). Received: rate={self.rate}")


@dataclasses.dataclass
class Outer:
    steps: int = option(3, type=int, help="how many steps")
    inner: Inner = section(Inner, "inner", "the inner options")
    also: Inner = section(Inner, "inner")  # the same title: one group
    names: list = option(default_factory=lambda: ["a", "b"], type=str, nargs="+",
                         help="names")
    sizes: tuple = option((1, 2), type=int, help="sizes, comma-separated")
    path: str | None = option(None, help="a path", default_help="a fresh folder")
    fast: bool = option(False, action="store_true", help="go fast")
    flag: bool = option(True, action=argparse.BooleanOptionalAction, help="a switch")
    hidden: int = 7  # no option


def test_sections_become_groups_and_configs_come_back():
    parser = argparse.ArgumentParser()
    with pytest.raises(argparse.ArgumentError):  # two sections may not share a name
        add_config(parser, Outer)

    @dataclasses.dataclass
    class Task:
        inner: Inner = section(Inner, "inner", "the inner options")
        steps: int = same_option(Outer, "steps", help="steps of the task")

    parser = argparse.ArgumentParser()
    add_config(parser, Task)
    titles = [g.title for g in parser._action_groups]
    assert titles.count("inner") == 1
    assert "steps of the task (default: 3)" in " ".join(parser.format_help().split())
    assert from_args(Task, parser.parse_args([])) == Task()
    assert from_args(Task, parser.parse_args(["--rate", "0.25", "--steps", "9"])) \
        == Task(inner=Inner(0.25), steps=9)
    with pytest.raises(UserError, match=r"rate must be in \[0, 1\). Received: rate=2"):
        from_args(Task, parser.parse_args(["--rate", "2"]))
    assert from_args(Task, parser.parse_args([]), steps=4).steps == 4


def test_default_text_says_what_the_value_is():
    fields = {f.name: f for f in dataclasses.fields(Outer)}
    assert default_text(fields["steps"]) == "3"
    assert default_text(fields["names"]) == "a b"        # nargs: as typed
    assert default_text(fields["sizes"]) == "1,2"        # one comma-separated value
    assert default_text(fields["path"]) == "a fresh folder"
    assert default_text(fields["fast"]) is None          # a switch that is off
    assert default_text(fields["flag"]) == "on"
    assert default_text(option_fields(Inner)["rate"]) == "0.5"
    assert "hidden" not in option_fields(Outer)


def test_to_dict_is_json_ready():
    import json

    values = to_dict(Outer())
    assert values["inner"] == {"rate": 0.5} and values["sizes"] == [1, 2]
    assert json.loads(json.dumps(values)) == values


def test_option_refuses_unknown_keywords():
    with pytest.raises(TypeError, match="unexpected arguments"):
        option(1, help="x", dest="y")
