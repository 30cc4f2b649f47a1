"""Command-line options generated from typed config dataclasses, so that each
default is written once: in the dataclass field.

A field becomes an option ``--field-name`` when it is declared with
:func:`option`; its metadata holds what argparse needs besides the default
(help, type, choices, metavar, action, nargs). The help never states the
default: :func:`add_options` appends "(default: ...)" from the field itself.

A field declared with :func:`section` holds another config (the data options,
the CAE's, ...): its options are shown as one argument group. A task's config
is then one dataclass of options and sections; :func:`add_config` adds all of
them to the task's parser and :func:`from_args` builds the config back from the
parsed arguments, so nothing below a task's ``run`` sees the ``Namespace``.
Options share one namespace: a field name appears once in a task's config.
"""

from __future__ import annotations

import argparse
import dataclasses

_ARGPARSE_KEYS = ("type", "choices", "metavar", "action", "nargs", "required")


def option(default=dataclasses.MISSING, *, help: str, default_factory=dataclasses.MISSING,
           default_help: str | None = None, positional: bool = False,
           **argparse_kwargs) -> dataclasses.Field:
    """A dataclass field that is also a command-line option ``--field-name``.

    Args:
        default, default_factory: the field's default (one of them), as for
            ``dataclasses.field``; also the option's default. Without one the
            option is required.
        positional: the field is a positional argument, not ``--field-name``.
        help: what the option does, without its default.
        default_help: how ``--help`` words the default when its value alone
            says too little (``None`` meaning "all images", say).
        argparse_kwargs: ``type``, ``choices``, ``metavar``, ``action``, ``nargs`` or
            ``required``
            for ``add_argument``.
    """
    unknown = set(argparse_kwargs) - set(_ARGPARSE_KEYS)
    if unknown:
        raise TypeError(f"option() got unexpected arguments {sorted(unknown)}; "
                        f"valid: help, default_help, {', '.join(_ARGPARSE_KEYS)}")
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"option": {"help": help, **argparse_kwargs},
                                       "default_help": default_help,
                                       "positional": positional})


def same_option(config_cls, name: str, **changes) -> dataclasses.Field:
    """A new field for the option ``name`` of ``config_cls``, with the same default
    (written once, there) and metadata; ``changes`` replace ``help``,
    ``default_help`` or argparse keywords (``all``'s ``--dataset`` is the data
    option's, passed to every step)."""
    field = option_fields(config_cls)[name]
    kwargs = dict(field.metadata["option"])
    default_help = changes.pop("default_help", field.metadata.get("default_help"))
    kwargs.update(changes)
    if field.default_factory is not dataclasses.MISSING:
        return option(default_factory=field.default_factory, default_help=default_help,
                      **kwargs)
    return option(field.default, default_help=default_help, **kwargs)


def section(config_cls, title: str, description: str | None = None) -> dataclasses.Field:
    """A field holding a nested config whose options form the argument group
    ``title`` of ``--help``."""
    return dataclasses.field(default_factory=config_cls,
                             metadata={"section": (title, description)})


def option_fields(config_cls) -> dict:
    """``{field name: field}`` of the fields of ``config_cls`` that are options."""
    return {f.name: f for f in dataclasses.fields(config_cls) if "option" in f.metadata}


def section_fields(config_cls) -> dict:
    """``{field name: field}`` of the fields of ``config_cls`` that are sections."""
    return {f.name: f for f in dataclasses.fields(config_cls) if "section" in f.metadata}


def _default(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _format(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def default_text(field: dataclasses.Field) -> str | None:
    """How ``--help`` shows the field's default; None when it shows none (a
    switch that is off, or an unset option whose help says what happens)."""
    if field.metadata.get("default_help"):
        return field.metadata["default_help"]
    kwargs = field.metadata["option"]
    value = _default(field)
    if value is dataclasses.MISSING or value is None or value is False or kwargs.get("action") == "store_true":
        return None
    if value is True:
        return "on"
    if isinstance(value, (list, tuple)):
        return (" " if kwargs.get("nargs") else ",").join(_format(v) for v in value)
    return _format(value)


def _add(parser, name: str, field: dataclasses.Field, task: str | None) -> None:
    kwargs = dict(field.metadata["option"])
    text = default_text(field)
    if text is not None:
        kwargs["help"] += f" (default: {text})"
    if task is not None:
        kwargs["help"] = kwargs["help"].replace("{task}", task)
    default = _default(field)
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    if field.metadata.get("positional"):
        parser.add_argument(name, **kwargs)
        return
    if default is dataclasses.MISSING:
        kwargs["required"] = True
    parser.add_argument("--" + name.replace("_", "-"), **kwargs)


def add_options(parser, config_classes, names, task: str | None = None) -> None:
    """Adds ``--name`` for each named option field of ``config_classes`` (one
    dataclass or a tuple of them), in that order, with the field's default and
    metadata; ``{task}`` in a help text becomes ``task``."""
    if not isinstance(config_classes, tuple):
        config_classes = (config_classes,)
    fields = {}
    for config_cls in reversed(config_classes):  # the first class wins a shared name
        fields.update(option_fields(config_cls))
    for name in names:
        _add(parser, name, fields[name], task)  # a KeyError names a field that is no option


def add_config(parser, config_cls, task: str | None = None) -> None:
    """Adds every option of ``config_cls``, in field order: its own options to
    ``parser``, each section's as an argument group (a section within a section
    joins its group; sections of one title share it)."""
    _add_fields(parser, parser, config_cls, task, {})


def _add_fields(parser, target, config_cls, task, groups: dict) -> None:
    for field in dataclasses.fields(config_cls):
        if "option" in field.metadata:
            _add(target, field.name, field, task)
        elif "section" in field.metadata:
            inner = field.default_factory
            if target is parser:  # sections of the same title share one group
                title, description = field.metadata["section"]
                if title not in groups:
                    groups[title] = parser.add_argument_group(title, description)
                _add_fields(parser, groups[title], inner, task, groups)
            else:
                _add_fields(parser, target, inner, task, groups)


def config_values(config_cls, args: argparse.Namespace) -> dict:
    """``{field name: parsed value}`` for every option field of ``config_cls``."""
    return {name: getattr(args, name) for name in option_fields(config_cls)}


def from_args(config_cls, args: argparse.Namespace, **overrides):
    """The config of parsed arguments: each option field from ``args``, each
    section built the same way; ``overrides`` replace fields. A value the
    config refuses (``ValueError`` in ``__post_init__``) becomes a one-line
    :class:`~cli.errors.UserError`."""
    from cli.errors import UserError

    values = config_values(config_cls, args)
    for name, field in section_fields(config_cls).items():
        values[name] = from_args(field.default_factory, args)
    values.update(overrides)
    try:
        return config_cls(**values)
    except ValueError as e:
        raise UserError(str(e)) from None


def to_dict(config) -> dict:
    """The config as JSON-ready values (tuples as lists), for ``metrics.json``."""
    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))
