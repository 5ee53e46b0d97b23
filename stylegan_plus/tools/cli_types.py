"""click parameter types shared by the command-line tools (`train.py`, `calc_metrics.py`)."""

import click


class CommaSeparatedList(click.ParamType):
    """`a,b,c` -> ['a', 'b', 'c'] (items stripped, empty items dropped); `none`, empty or missing -> []."""

    name = 'list'

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        if value is None or value.strip().lower() in ('none', ''):
            return []
        return [part.strip() for part in value.split(',') if part.strip()]
