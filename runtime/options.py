"""Command-line options generated from a typed config dataclass, so that each
default is written once: in the dataclass field.

A field becomes an option when it is declared with :func:`option`; its metadata
holds what argparse needs besides the default (help, type, choices, metavar,
action). :func:`add_options` adds the named fields to a parser or argument
group in the order given; :func:`config_values` reads them back from the parsed
arguments as keyword arguments of the dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses

_ARGPARSE_KEYS = ("type", "choices", "metavar", "action", "nargs")


def option(default=dataclasses.MISSING, *, help: str, default_factory=dataclasses.MISSING,
           **argparse_kwargs) -> dataclasses.Field:
    """A dataclass field that is also a command-line option ``--field-name``.

    Args:
        default, default_factory: the field's default (one of them), as for
            ``dataclasses.field``; also the option's default.
        help: the option's help text.
        argparse_kwargs: ``type``, ``choices``, ``metavar``, ``action`` or ``nargs``
            for ``add_argument``.
    """
    unknown = set(argparse_kwargs) - set(_ARGPARSE_KEYS)
    if unknown:
        raise TypeError(f"option() got unexpected arguments {sorted(unknown)}; "
                        f"valid: help, {', '.join(_ARGPARSE_KEYS)}")
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"option": {"help": help, **argparse_kwargs}})


def option_fields(config_cls) -> dict:
    """``{field name: field}`` of the fields of ``config_cls`` that are options."""
    return {f.name: f for f in dataclasses.fields(config_cls) if "option" in f.metadata}


def _default(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def add_options(parser, config_classes, names) -> None:
    """Adds ``--name`` for each named option field of ``config_classes`` (one
    dataclass or a tuple of them), in that order, with the field's default and
    metadata."""
    if not isinstance(config_classes, tuple):
        config_classes = (config_classes,)
    fields = {}
    for config_cls in reversed(config_classes):  # the first class wins a shared name
        fields.update(option_fields(config_cls))
    for name in names:
        field = fields[name]  # a KeyError names a field that is no option
        kwargs = dict(field.metadata["option"])
        parser.add_argument("--" + name.replace("_", "-"), default=_default(field), **kwargs)


def config_values(config_cls, args: argparse.Namespace) -> dict:
    """``{field name: parsed value}`` for every option field of ``config_cls``."""
    return {name: getattr(args, name) for name in option_fields(config_cls)}
