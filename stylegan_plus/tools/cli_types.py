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


def latent_step_options(what):
    """Decorator adding AdvLatGAN's "-z" sampling options `--latent-steps` and `--latent-eps`.

    `what` completes the help text ("rendering", "generating"). Shared by generate.py and
    calc_metrics.py so both tools describe and default the options identically.
    """
    from stylegan_plus.sampling.latent_steps import DEFAULT_SAMPLING_EPS, DEFAULT_SAMPLING_STEPS

    steps = click.option('--latent-steps', help='AdvLatGAN-z: I-FGSM steps moving each z toward a higher D score '
                         f'before {what} (needs D in the pickle); 0 = off, the flag alone = {DEFAULT_SAMPLING_STEPS}',
                         type=click.IntRange(min=0), default=0, show_default=True, is_flag=False,
                         flag_value=DEFAULT_SAMPLING_STEPS, metavar='INT')
    eps = click.option('--latent-eps', help='AdvLatGAN-z: step size of each latent step (l-inf, on z)',
                       type=click.FloatRange(min=0), default=DEFAULT_SAMPLING_EPS, show_default=True, metavar='FLOAT')
    return lambda fn: steps(eps(fn))
