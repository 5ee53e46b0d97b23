"""stylegan_plus.sampling: ways of drawing latents for a trained generator (e.g. AdvLatGAN-z)."""
