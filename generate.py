r"""Generate images with a trained network (official `generate.py` interface).

Examples:
    # Images for seeds 0..3 (one PNG each, seed0000.png ...), plus a grid and the latents used
    python generate.py --outdir=out --trunc=0.7 --seeds=0-3 --network=network-snapshot-000100.pkl \
        --grid=1 --vector-out=out/vectors.npz
    # Conditional network: one class for all seeds
    python generate.py --outdir=out --seeds=0,5 --class=3 --network=cond.pkl --device=cpu
    # Render the W vectors found by projector.py (proj00.png ...)
    python generate.py --outdir=out --projected-w=projected_w.npz --network=ffhq.pkl
    # AdvLatGAN-z: move each seed's z by 20 I-FGSM steps of 0.05 toward a higher D score first
    python generate.py --outdir=out --seeds=0-7 --network=network-snapshot-000100.pkl --latent-steps=20

Additions to the official options: --device, --grid, --vector-out, --latent-steps, --latent-eps.
`grid.png` shows images smaller than 64 px enlarged (nearest neighbour), so that each one is at
least 64 px on screen, and 2 px apart on grey so that neighbours do not merge; the per-seed PNGs
keep the network's resolution.

Generators without a mapping network (DCGAN, `--cfg=dcgan`; MLP, `--cfg=toy`) are rendered as
`G(z, c)`, a batch of seeds at a time. They have no w space: --trunc must stay 1 (truncation pulls
w toward the mapping network's w_avg, which they lack), --projected-w is refused, and --vector-out
stores seeds and z only. A generator of points (output [N, D] instead of images, e.g. the 2-D
MLP) gets `points.npz` (keys seeds, points) and, for D = 2, the scatter plot `points.png` of all
seeds instead of per-seed PNGs:
    python generate.py --outdir=out --seeds=0-1999 --network=toy-snapshot.pkl --device=cpu
"""

import os

import click
import numpy as np

from stylegan_plus.cli import cli_types, outputs
from stylegan_plus.io import images

# torch is imported on first use, and our modules that import it inside the functions that need
# them, so that `--help` does not load torch.
torch = cli_types.lazy_module('torch')


PLAIN_BATCH = 64  # most seeds per forward pass for generators without a mapping network (fewer if memory is short)


def _forward(G, truncation_psi, noise_mode):
    """Callable (z [N, z_dim] float32, label [N, c_dim]) -> (output, ws [N, num_ws, w_dim] or None).

    StyleGAN2: mapping (with truncation) then synthesis, so ws can be recorded. Other generators
    are called whole; they accept and ignore the StyleGAN2 keywords.
    """
    from stylegan_plus.networks.inference import has_mapping_synthesis  # pylint: disable=import-outside-toplevel
    if has_mapping_synthesis(G):
        def run(z, label):
            ws = G.mapping(z, label, truncation_psi=truncation_psi)
            return G.synthesis(ws, noise_mode=noise_mode), ws
        return run
    return lambda z, label: (G(z, label, truncation_psi=truncation_psi, noise_mode=noise_mode), None)


def _outputs_to_numpy(out):
    """Images [N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C]; points [N, D] -> float32 [N, D]."""
    return images.to_uint8(out) if out.ndim == 4 else out.to(torch.float32).cpu().numpy()


@cli_types.no_grad
def render_seeds(G, seeds, label, truncation_psi=1, noise_mode='const', log=print, move_latents=None,
                 z_dist='normal'):
    """Render one image (or point) per seed.

    G: generator on its device; seeds: list of ints in [0, 2**32-1]; label: [1, c_dim] float32.
    move_latents: optional callable (z [n, z_dim] float32, label) -> z' [n, z_dim] applied before
    rendering (AdvLatGAN-z, see `latent_step_mover`).
    StyleGAN2 generators run one seed at a time (as the official tool does); generators without a
    mapping network run up to `PLAIN_BATCH` seeds per call, fewer when the memory budget
    (`memory_budget.generation_chunk`) says so (eval mode: samples do not interact).
    Returns (outputs, z [N, z_dim] float64, w [N, num_ws, w_dim] float32 or None when G has no
    mapping network). outputs: pixels [N, H, W, C] uint8 for image generators, float32 [N, D]
    for point generators. z of seed s is drawn from RandomState(s) in the prior `z_dist` the
    snapshot records (`images.seed_to_z`; normal: `randn(1, z_dim)`, the official draw), or what
    `move_latents` made of it.
    """
    # pylint: disable=import-outside-toplevel
    from stylegan_plus.networks.inference import has_mapping_synthesis
    from stylegan_plus.sampling import memory_budget
    run = _forward(G, truncation_psi, noise_mode)
    batch = 1
    if not has_mapping_synthesis(G):
        batch = memory_budget.generation_chunk(G, limit=min(PLAIN_BATCH, len(seeds)))
    all_outputs, all_z, all_w = [], [], []
    for start in range(0, len(seeds), batch):
        chunk = seeds[start:start + batch]
        if batch == 1:
            log(f'Generating image for seed {chunk[0]} ({start}/{len(seeds)}) ...')
        else:
            log(f'Generating seeds {chunk[0]}..{chunk[-1]} ({start}/{len(seeds)}) ...')
        z = np.concatenate([images.seed_to_z(seed, G.z_dim, z_dist) for seed in chunk])
        z_used = torch.from_numpy(z).to(device=label.device, dtype=torch.float32)
        if move_latents is not None:
            z_used = move_latents(z_used, label)
            z = z_used.to(torch.float64).cpu().numpy()
        out, ws = run(z_used, label.expand(len(chunk), -1))
        all_outputs.append(_outputs_to_numpy(out))
        all_z.append(z)
        if ws is not None:
            all_w.append(ws.cpu().numpy())
    return np.concatenate(all_outputs), np.concatenate(all_z), (np.concatenate(all_w) if all_w else None)


def latent_step_mover(G, D, steps, eps, truncation_psi=1, noise_mode='const', log=print, extra_nets=None):
    """AdvLatGAN-z: a callable (z [N, z_dim], label [N, c_dim]) -> z' after `steps` I-FGSM steps of size `eps`.

    The steps lower softplus(-D(G(z))) through the whole generator `G(z, c, truncation_psi=...,
    noise_mode=...)` (StyleGAN2: mapping then synthesis; DCGAN/MLP ignore both keywords), i.e. they
    raise D's logit; `stylegan_plus.sampling.latent_steps` has the step. G and D: networks on the
    same device, eval mode. extra_nets: the snapshot's networks a method decides with beside D
    (`decisions.DECISION_KEYS`: LOGAN-B's joint D, RFGAN's fused head), so the steps follow the
    score the method trained rather than D's unused output layer. Logs the mean logit before and after.
    """
    # pylint: disable=import-outside-toplevel
    from stylegan_plus.sampling import decisions
    from stylegan_plus.sampling import latent_steps as latent_mining
    device = next(D.parameters()).device
    D_kwargs = latent_mining.discriminator_kwargs(D, device)
    generator, _ = latent_mining.network_callables(G, D, G_kwargs=dict(truncation_psi=truncation_psi,
                                                                      noise_mode=noise_mode))
    nets = dict(extra_nets or {}, D=D)
    decision = decisions.snapshot_decision(nets, D_kwargs)
    described = decisions.describe_decision(nets)
    score_name = 'D logit' if described == 'D' else f'{described} logit'
    if described != 'D':
        log(f'  latent steps follow the method\'s decision: {described}')

    def move(z, label):
        label = label.expand(z.shape[0], -1)
        moved = latent_mining.mine_latents_by_decision(z, label, generator, decision, eps=eps, steps=steps)
        with torch.no_grad():
            before = decision(generator(z, label), label, z).mean().item()
            after = decision(generator(moved, label), label, moved).mean().item()
        log(f'  {steps} latent steps of {eps:g}: {score_name} {before:.4f} -> {after:.4f}')
        return moved
    return move


@cli_types.no_grad
def render_ws(G, ws, noise_mode='const'):
    """Render given W vectors. ws: [N, num_ws, w_dim] float tensor on G's device -> [N, H, W, C] uint8."""
    return np.stack([images.to_uint8(G.synthesis(w.unsqueeze(0), noise_mode=noise_mode))[0] for w in ws])


def _load_projected_w(path, G, device):
    """The `w` array of a projector .npz as a float32 tensor, checked against G's [num_ws, w_dim]."""
    try:
        with np.load(path) as npz:
            ws = npz['w']
    except Exception as err:  # not an npz, no 'w' key, unreadable ...
        raise click.BadParameter(f'cannot read key "w" from {path!r}: {type(err).__name__}: {err}',
                                 param_hint='--projected-w') from err
    if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
        raise click.BadParameter(f'{path!r} holds w of shape {list(ws.shape)}; this network needs '
                                 f'[N, {G.num_ws}, {G.w_dim}]', param_hint='--projected-w')
    return torch.tensor(ws, device=device, dtype=torch.float32)


def _check_plain_generator(G, truncation_psi, projected_w):
    """Usage errors for options that need a w space, when G has no mapping network."""
    # pylint: disable=import-outside-toplevel
    from stylegan_plus.networks.inference import describe_generator, has_mapping_synthesis
    if has_mapping_synthesis(G):
        return
    if projected_w is not None:
        raise click.UsageError(f'--projected-w renders w vectors through G.synthesis, which needs a generator with a '
                               f'mapping/synthesis split (StyleGAN2); this pickle has {describe_generator(G)}')
    if truncation_psi != 1:
        raise click.BadParameter(f'{truncation_psi:g}: truncation pulls w toward the mapping network\'s average '
                                 f'w_avg, and this pickle\'s {describe_generator(G)} has no mapping '
                                 f'network (no w, no w_avg); only --trunc=1 is accepted for it',
                                 param_hint='--trunc')


def _save_all(pixels, names, outdir, grid):
    """One PNG per image [H, W, C] uint8, and with `grid` also grid.png (small images enlarged and spaced)."""
    channels = pixels.shape[-1]
    if channels not in (1, 3):
        raise click.ClickException(f'this generator makes images with {channels} channels; PNG output needs 1 (gray) '
                                   f'or 3 (RGB)')
    outputs.make_outdir(outdir)
    for image, name in zip(pixels, names):
        images.save_png(image, os.path.join(outdir, name))
    if grid:
        images.save_png(images.display_grid(pixels), os.path.join(outdir, 'grid.png'))


def _save_points(points, seeds, outdir, grid, title):
    """Point generators: points.npz (seeds [N] int64, points [N, D] float32) and, for D = 2, points.png."""
    outputs.make_outdir(outdir)
    images.save_npz(os.path.join(outdir, 'points.npz'), seeds=np.asarray(seeds, dtype=np.int64), points=points)
    if grid:
        print('Note: --grid is for images; the scatter plot points.png already shows every seed')
    if points.shape[1] == 2:
        images.save_png(images.scatter_plot(points, title=title), os.path.join(outdir, 'points.png'))
        print(f'Saved {len(points)} points to {os.path.join(outdir, "points.npz")} and their scatter plot to '
              f'{os.path.join(outdir, "points.png")}')
    else:
        print(f'Saved {len(points)} points of dimension {points.shape[1]} to {os.path.join(outdir, "points.npz")} '
              f'(a scatter plot is only drawn for 2-D points)')


def _save_vectors(path, seeds, z, w, z_start=None):
    """--vector-out: seeds [N] int64, z [N, z_dim] and, when they exist, w and z_start."""
    outputs.make_outdir(os.path.dirname(os.path.abspath(path)), param_hint='--vector-out')
    arrays = dict(seeds=np.asarray(seeds, dtype=np.int64), z=z)
    if w is not None:
        arrays['w'] = w
    if z_start is not None:
        arrays['z_start'] = z_start
    images.save_npz(path, **arrays)


def _load_generator(network_pkl, device, truncation_psi, noise_mode, projected_w, latent_steps, latent_eps):
    """(G_ema ready on `device`, latent mover or None, the snapshot's prior name); with
    --latent-steps, D and the method's decision networks are loaded from the same read of the pickle."""
    # pylint: disable=import-outside-toplevel
    from stylegan_plus.cli import device as devices
    from stylegan_plus.networks.inference import prepare_generator
    from stylegan_plus.sampling import prior
    from stylegan_plus.sampling.decisions import DECISION_KEYS
    keys = ('G_ema', 'D') if latent_steps > 0 else ('G_ema',)
    optional = (prior.SNAPSHOT_KEY, *(DECISION_KEYS if latent_steps > 0 else ()))
    nets = devices.load_networks(network_pkl, keys, optional_keys=optional)
    z_dist = _snapshot_prior(nets, network_pkl)
    _check_plain_generator(nets['G_ema'], truncation_psi, projected_w)
    G = prepare_generator(nets['G_ema'], device)
    if latent_steps == 0:
        return G, None, z_dist
    D = nets['D'].eval().requires_grad_(False).to(device)
    extra = {key: nets[key].eval().requires_grad_(False).to(device) for key in DECISION_KEYS if key in nets}
    return G, latent_step_mover(G, D, latent_steps, latent_eps, truncation_psi, noise_mode, extra_nets=extra), z_dist


def _snapshot_prior(snapshot, network_pkl):
    """The latent prior a snapshot records ('normal' when it records none, as official pickles);
    click.BadParameter naming the file for a name this version does not know."""
    from stylegan_plus.sampling import prior  # pylint: disable=import-outside-toplevel
    try:
        z_dist = prior.snapshot_z_dist(snapshot)
    except ValueError as err:
        raise click.BadParameter(f'{network_pkl}: {err}', param_hint='--network') from None
    if z_dist != prior.DEFAULT_Z_DIST:
        print(f'Latents: {z_dist} prior, as the snapshot records')
    return z_dist


@click.command()
@click.option('--network', 'network_pkl', help='Snapshot pickle to render (path or URL)', required=True)
@click.option('--seeds', type=cli_types.seed_list_type(), help='Seeds to render, one image each: 0,1,5 or 0-9')
@click.option('--trunc', 'truncation_psi', type=cli_types.FiniteFloat(),
              help='Pull w toward its average by this factor (StyleGAN2 generators only)', default=1, show_default=True)
@click.option('--class', 'class_idx', type=int, help='Class index for a conditional network')
@click.option('--noise-mode', help='Per-pixel noise of the synthesis layers',
              type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--projected-w', help='W vectors written by projector.py (.npz with key w)',
              type=click.Path(exists=True, dir_okay=False), metavar='FILE')
@click.option('--outdir', help='Folder for the PNG files (created if missing)', type=str, required=True, metavar='DIR')
@click.option('--device', 'device_name', help=cli_types.DEVICE_HELP, metavar='DEVICE')
@click.option('--grid', help='Also save all images as one grid.png', type=bool, default=False, metavar='BOOL',
              show_default=True)
@click.option('--vector-out', help='Save the seeds, z and w used to this .npz (keys seeds, z, w; w only for '
              'generators with a mapping network; with --latent-steps also z_start, the seeds\' draws)',
              metavar='FILE')
@cli_types.latent_step_options('rendering')
def generate_images(network_pkl, seeds, truncation_psi, class_idx, noise_mode, projected_w, outdir, device_name,
                    grid, vector_out, latent_steps, latent_eps):
    """Render PNG images from the generator (G_ema) of a snapshot pickle: one per seed, or per projected w."""
    outputs.check_outdir(outdir)
    if vector_out is not None:
        outputs.check_output_file(vector_out, '--vector-out')
    if seeds is None and projected_w is None:
        raise click.UsageError('give --seeds (e.g. --seeds=0-3) or --projected-w (a projector .npz)')
    if vector_out is not None and projected_w is not None:
        raise click.UsageError('--vector-out records the latents of --seeds; it cannot be used with --projected-w')
    if latent_steps > 0 and projected_w is not None:
        raise click.UsageError('--latent-steps moves the z of --seeds; it cannot be used with --projected-w')
    from stylegan_plus.cli import device as devices  # pylint: disable=import-outside-toplevel
    device = devices.resolve_device(device_name)
    print(f'Loading networks from "{network_pkl}"...')
    G, move_latents, z_dist = _load_generator(network_pkl, device, truncation_psi, noise_mode, projected_w,
                                              latent_steps, latent_eps)

    if projected_w is not None:
        if seeds is not None:
            print('warn: --seeds is ignored when using --projected-w')
        print(f'Generating images from projected W "{projected_w}"')
        pixels = render_ws(G, _load_projected_w(projected_w, G, device), noise_mode)
        _save_all(pixels, [f'proj{idx:02d}.png' for idx in range(len(pixels))], outdir, grid)
        return

    label = devices.class_label(G, class_idx, device)
    rendered, z, w = render_seeds(G, seeds, label, truncation_psi, noise_mode, move_latents=move_latents,
                                  z_dist=z_dist)
    if rendered.ndim == 2:
        _save_points(rendered, seeds, outdir, grid, title=f'{len(seeds)} points from {os.path.basename(network_pkl)}')
    else:
        _save_all(rendered, [f'seed{seed:04d}.png' for seed in seeds], outdir, grid)
    if vector_out is not None:
        z_start = None
        if move_latents is not None:
            z_start = np.concatenate([images.seed_to_z(seed, G.z_dim, z_dist) for seed in seeds])
        _save_vectors(vector_out, seeds, z, w, z_start)

if __name__ == '__main__':
    generate_images()  # pylint: disable=no-value-for-parameter
