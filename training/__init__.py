"""Official import path `training.*`, kept so that `class_name` strings such as
`training.networks.Generator` in existing option files and scripts keep resolving.
Each module here re-exports the implementation that lives in `stylegan_plus`."""
