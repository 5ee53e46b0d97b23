"""click options built from loss-plugin declarations (`LossOption`), for train.py.

The options of registered plugins are declared on train.py's command before it parses (from the
torch-free catalogue). A plugin named by class path (`--loss=mypkg.mod.MyLoss`) is only known once
`--loss` has been parsed, so train.py has click set unknown options aside (`ctx.args`) and
`parse_late_options` parses them against that plugin's declarations: a two-stage parse, no reading
of argv by hand.
"""

import difflib

import click
from click.core import ParameterSource


def param_type(opt):
    """The click type of LossOption `opt`: a Choice, an int/float range (min/max), or the plain type."""
    if opt.choices is not None:
        return click.Choice(list(opt.choices))
    if opt.min is not None or opt.max is not None:
        ranged = click.IntRange if opt.value_type is int else click.FloatRange
        return ranged(min=opt.min, max=opt.max)
    return opt.value_type


def _settings(opt):
    """click.Option keywords of LossOption `opt` (the value arrives under `opt.key`)."""
    return dict(type=param_type(opt), default=opt.default, show_default=True, help=opt.help, metavar=opt.metavar)


def click_option(opt):
    """The `click.option` decorator declaring LossOption `opt` on a command."""
    return click.option(opt.flag, opt.key, **_settings(opt))


def unknown_arguments_message(args, known_flags):
    """'no such option(s): --gama=5 (did you mean --gamma?); ...' for the leftover `args`."""
    first_flag = next((arg.split('=', 1)[0] for arg in args if arg.startswith('-')), None)
    close = difflib.get_close_matches(first_flag, list(known_flags), n=1) if first_flag else []
    hint = f' (did you mean {close[0]}?)' if close else ''
    return (f'no such option(s): {" ".join(args)}{hint}; train.py --help lists the options, '
            f'--loss=help the losses')


def parse_late_options(options, args, parent):
    """Parse command-line `args` that train.py set aside against the LossOptions `options`.

    Returns (values by option key, set of keys given on the command line). Anything no option
    takes, or a bad value, is a click.UsageError in train.py's context `parent` (usage, exit 2).
    """
    command = click.Command(parent.info_name, params=[click.Option([opt.flag, opt.key], **_settings(opt)) for opt in options],
                            context_settings=dict(ignore_unknown_options=True, allow_extra_args=True))
    try:
        ctx = command.make_context(parent.info_name, list(args), parent=parent)
    except click.UsageError as err:
        raise click.UsageError(err.format_message(), ctx=parent) from None
    if ctx.args:
        known = [flag for param in (*parent.command.params, *command.params) for flag in param.opts]
        raise click.UsageError(unknown_arguments_message(ctx.args, known), ctx=parent)
    given = {key for key in ctx.params if ctx.get_parameter_source(key) is ParameterSource.COMMANDLINE}
    return dict(ctx.params), given
