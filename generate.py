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
"""

import os

import click
import numpy as np
import torch

from stylegan_plus.sampling import latent_steps as latent_mining
from stylegan_plus.tools import device as devices
from stylegan_plus.tools import images


@torch.no_grad()
def render_seeds(G, seeds, label, truncation_psi=1, noise_mode='const', log=print, move_latents=None):
    """Render one image per seed.

    G: generator on its device; seeds: list of ints in [0, 2**32-1]; label: [1, c_dim] float32.
    move_latents: optional callable (z [1, z_dim] float32, label) -> z' [1, z_dim] applied before
    rendering (AdvLatGAN-z, see `latent_step_mover`).
    Returns (pixels [N, H, W, C] uint8, z [N, z_dim] float64, w [N, num_ws, w_dim] float32);
    z of seed s is `np.random.RandomState(s).randn(1, z_dim)` (official draw), or what
    `move_latents` made of it.
    """
    all_pixels, all_z, all_w = [], [], []
    for seed_idx, seed in enumerate(seeds):
        log(f'Generating image for seed {seed} ({seed_idx}/{len(seeds)}) ...')
        z = images.seed_to_z(seed, G.z_dim)
        z_used = torch.from_numpy(z).to(device=label.device, dtype=torch.float32)
        if move_latents is not None:
            z_used = move_latents(z_used, label)
            z = z_used.to(torch.float64).cpu().numpy()
        ws = G.mapping(z_used, label, truncation_psi=truncation_psi)
        all_pixels.append(images.to_uint8(G.synthesis(ws, noise_mode=noise_mode))[0])
        all_z.append(z[0])
        all_w.append(ws[0].cpu().numpy())
    return np.stack(all_pixels), np.stack(all_z), np.stack(all_w)


def latent_step_mover(G, D, steps, eps, truncation_psi=1, noise_mode='const', log=print):
    """AdvLatGAN-z: a callable (z [N, z_dim], label [N, c_dim]) -> z' after `steps` I-FGSM steps of size `eps`.

    The steps lower softplus(-D(G(z))) through G's mapping (with `truncation_psi`) and synthesis
    (with `noise_mode`), i.e. they raise D's logit; `stylegan_plus.sampling.latent_steps` has the
    step. G and D: networks on the same device, eval mode. Logs D's logit before and after.
    """
    device = next(D.parameters()).device
    generator, discriminator = latent_mining.network_callables(
        G, D, G_kwargs=dict(truncation_psi=truncation_psi, noise_mode=noise_mode),
        D_kwargs=latent_mining.discriminator_kwargs(D, device))

    def move(z, label):
        label = label.expand(z.shape[0], -1)
        moved = latent_mining.mine_latents(z, label, generator, discriminator, eps=eps, steps=steps)
        with torch.no_grad():
            before = discriminator(generator(z, label), label).mean().item()
            after = discriminator(generator(moved, label), label).mean().item()
        log(f'  {steps} latent steps of {eps:g}: D logit {before:.4f} -> {after:.4f}')
        return moved
    return move


@torch.no_grad()
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


def _save_all(pixels, names, outdir, grid):
    for image, name in zip(pixels, names):
        images.save_png(image, os.path.join(outdir, name))
    if grid:
        images.save_png(images.tile(pixels), os.path.join(outdir, 'grid.png'))


@click.command()
@click.option('--network', 'network_pkl', help='Network pickle filename or URL', required=True)
@click.option('--seeds', type=images.seed_list_type(), help='List of random seeds, e.g. 0,1,5 or 0-9')
@click.option('--trunc', 'truncation_psi', type=float, help='Truncation psi', default=1, show_default=True)
@click.option('--class', 'class_idx', type=int, help='Class label (unconditional if not specified)')
@click.option('--noise-mode', help='Noise mode', type=click.Choice(['const', 'random', 'none']), default='const',
              show_default=True)
@click.option('--projected-w', help='Projection result file (.npz with key w)',
              type=click.Path(exists=True, dir_okay=False), metavar='FILE')
@click.option('--outdir', help='Where to save the output images', type=str, required=True, metavar='DIR')
@click.option('--device', 'device_name', help=devices.DEVICE_HELP, metavar='DEVICE')
@click.option('--grid', help='Also save all images as one grid.png', type=bool, default=False, metavar='BOOL',
              show_default=True)
@click.option('--vector-out', help='Save the seeds, z and w used to this .npz (keys seeds, z, w; with '
              '--latent-steps also z_start, the seeds\' draws)', metavar='FILE')
@click.option('--latent-steps', help='AdvLatGAN-z: I-FGSM steps moving each z toward a higher D score before '
              f'rendering (needs D in the pickle); 0 = off, the flag alone = {latent_mining.DEFAULT_SAMPLING_STEPS}',
              type=click.IntRange(min=0), default=0, show_default=True, is_flag=False,
              flag_value=latent_mining.DEFAULT_SAMPLING_STEPS, metavar='INT')
@click.option('--latent-eps', help='AdvLatGAN-z: step size of each latent step (l-inf, on z)',
              type=click.FloatRange(min=0), default=latent_mining.DEFAULT_SAMPLING_EPS, show_default=True,
              metavar='FLOAT')
def generate_images(network_pkl, seeds, truncation_psi, class_idx, noise_mode, projected_w, outdir, device_name,
                    grid, vector_out, latent_steps, latent_eps):
    """Generate images using pretrained network pickle."""
    if seeds is None and projected_w is None:
        raise click.UsageError('give --seeds (e.g. --seeds=0-3) or --projected-w (a projector .npz)')
    if vector_out is not None and projected_w is not None:
        raise click.UsageError('--vector-out records the latents of --seeds; it cannot be used with --projected-w')
    if latent_steps > 0 and projected_w is not None:
        raise click.UsageError('--latent-steps moves the z of --seeds; it cannot be used with --projected-w')
    device = devices.resolve_device(device_name)
    print(f'Loading networks from "{network_pkl}"...')
    keys = ('G_ema', 'D') if latent_steps > 0 else ('G_ema',)
    nets = devices.load_networks(network_pkl, keys)
    G = devices.prepare_generator(nets['G_ema'], device)
    move_latents = None
    if latent_steps > 0:
        D = nets['D'].eval().requires_grad_(False).to(device)
        move_latents = latent_step_mover(G, D, latent_steps, latent_eps, truncation_psi, noise_mode)
    os.makedirs(outdir, exist_ok=True)

    if projected_w is not None:
        if seeds is not None:
            print('warn: --seeds is ignored when using --projected-w')
        print(f'Generating images from projected W "{projected_w}"')
        pixels = render_ws(G, _load_projected_w(projected_w, G, device), noise_mode)
        _save_all(pixels, [f'proj{idx:02d}.png' for idx in range(len(pixels))], outdir, grid)
        return

    label = devices.class_label(G, class_idx, device)
    pixels, z, w = render_seeds(G, seeds, label, truncation_psi, noise_mode, move_latents=move_latents)
    _save_all(pixels, [f'seed{seed:04d}.png' for seed in seeds], outdir, grid)
    if vector_out is not None:
        os.makedirs(os.path.dirname(os.path.abspath(vector_out)), exist_ok=True)
        extra = {}
        if move_latents is not None:
            extra['z_start'] = np.concatenate([images.seed_to_z(seed, G.z_dim) for seed in seeds])
        np.savez(vector_out, seeds=np.asarray(seeds, dtype=np.int64), z=z, w=w, **extra)


if __name__ == '__main__':
    generate_images()  # pylint: disable=no-value-for-parameter
