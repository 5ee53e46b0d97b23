"""The command-line layer's shared helpers: option types, device and network loading for the
inference tools, and photo projection. Only this package and the top-level scripts import click."""
