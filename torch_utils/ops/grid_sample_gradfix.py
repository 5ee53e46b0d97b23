"""Bilinear grid sampling with double-backward support (official module path).

The official module carried a custom op because PyTorch 1.7-1.9 could not differentiate
`grid_sample` twice. Current torch can (w.r.t. both input and grid), so this module is a thin
wrapper that fixes the sampling settings the augmentation pipeline relies on. `enabled` is
kept because the training loop sets it; it changes nothing and nothing here warns.
"""

import torch

enabled = False # Kept for compatibility: the official training loop sets it to True.


def grid_sample(input, grid):
    """Sample `input` at `grid` positions: bilinear, zero padding, align_corners=False.

    input: [N, C, H_in, W_in] floating tensor. grid: [N, H_out, W_out, 2] of the same dtype, (x, y)
    in [-1, 1] normalised coordinates (outside samples read zeros). Returns [N, C, H_out, W_out].
    Supports double backward (gradients of gradients) w.r.t. input and grid.
    """
    return torch.nn.functional.grid_sample(input=input, grid=grid, mode='bilinear', padding_mode='zeros',
                                           align_corners=False)
