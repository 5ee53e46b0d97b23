"""The command-line layer: the command lines beyond the top-level scripts (`python -m
stylegan_plus.cli.plot_stats`, `make_digits`, `digits_check`, `fid_folders`, `check_cuda_build`)
and the click helpers the tools share (option types, output-path checks, device and network
options, photo projection). Only this package and the top-level scripts import click."""
