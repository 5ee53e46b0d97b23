"""The compat table: our class paths <-> the official `training.*` class names.

Presets, the options object and the training loop name every class where it lives
(`stylegan_plus.networks.stylegan2.Generator`, ...). The files that official tools read carry
the official names instead (`training.networks.Generator`, ...): `training_options.json` and
the `training_set_kwargs` inside a network snapshot (docs/compat.md sections 1.1 and 6). The
`training/` package re-exports the classes under those names, so official code and official
pickles still resolve them.

`to_official` is applied where such a file is written, `to_canonical` where one is read. Both
only rename `class_name` values listed here; anything else passes through unchanged, so both are
idempotent and safe on data that is already in the wanted form.
"""

# Canonical class path -> official name. One row per class that presets put into the options.
CANONICAL_TO_OFFICIAL = {
    'stylegan_plus.networks.stylegan2.Generator': 'training.networks.Generator',
    'stylegan_plus.networks.stylegan2.Discriminator': 'training.networks.Discriminator',
    'stylegan_plus.data.dataset.ImageFolderDataset': 'training.dataset.ImageFolderDataset',
    'stylegan_plus.data.dataset.PointCloudDataset': 'training.dataset.PointCloudDataset',
    'stylegan_plus.losses.stylegan2.StyleGAN2Loss': 'training.loss.StyleGAN2Loss',
    'stylegan_plus.training.augment.AugmentPipe': 'training.augment.AugmentPipe',
}
OFFICIAL_TO_CANONICAL = {official: canonical for canonical, official in CANONICAL_TO_OFFICIAL.items()}


def official_name(class_path):
    """'stylegan_plus.networks.stylegan2.Generator' -> 'training.networks.Generator' (others unchanged)."""
    return CANONICAL_TO_OFFICIAL.get(class_path, class_path)


def canonical_name(class_path):
    """'training.networks.Generator' -> 'stylegan_plus.networks.stylegan2.Generator' (others unchanged)."""
    return OFFICIAL_TO_CANONICAL.get(class_path, class_path)


def _renamed(tree, rename):
    """Copy of the dict/list `tree` with every `class_name` string passed through `rename`.

    Container types are kept (an EasyDict stays an EasyDict, a tuple a tuple) and so is the
    key order, which training_options.json must keep.
    """
    if isinstance(tree, dict):
        copy = type(tree)()
        for key, value in tree.items():
            if key == 'class_name' and isinstance(value, str):
                copy[key] = rename(value)
            else:
                copy[key] = _renamed(value, rename)
        return copy
    if isinstance(tree, (list, tuple)):
        return type(tree)(_renamed(item, rename) for item in tree)
    return tree


def to_official(tree):
    """Options (or any nesting of dicts and lists) as written to a file: official class names."""
    return _renamed(tree, official_name)


def to_canonical(tree):
    """Options read from a file (or written by the official trainer): our class paths."""
    return _renamed(tree, canonical_name)
