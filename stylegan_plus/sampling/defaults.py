"""Defaults of AdvLatGAN-z sampling, torch-free so that command-line help can show them cheaply."""

DEFAULT_SAMPLING_STEPS = 20     # AdvLatGAN-z, as in the paper's STL-10 runs
DEFAULT_SAMPLING_EPS = 0.05
