"""Floor 0: the command line's vocabulary, needing no project package: the
one-line error every layer raises (``errors``), argparse types (``args``) and
the typed option fields every task's config is written in (``options``)."""
