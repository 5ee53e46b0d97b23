"""Quality metrics (official module path `metrics`).

`metric_main` is the registry (`calc_metric`, `report_metric`, `register_metric`, ...) with every
official metric (fid50k_full, kid50k_full, pr50k3_full, ppl2_wend, is50k, fid50k, kid50k, pr50k3,
ppl_zfull, ppl_wfull, ppl_zend, ppl_wend) plus the quick fid10k_full and kid10k_full; one module
per metric family holds its formula; `metric_utils` extracts detector features of real and
generated images; `fid_folders` computes FID of image folders (command line:
`python -m stylegan_plus.cli.fid_folders A B`); `digits_check` scores digit generators
(`python -m stylegan_plus.cli.digits_check`). Nothing here imports click: the command lines
live in `stylegan_plus/cli/` and the top-level scripts.

Detector files (`inception-2015-12-05.pt`, `vgg16.pt`, NVIDIA's TorchScript networks) are
looked up in this order (see `metrics.detectors`):
  1. `--detector-dir` of the tools, or the environment variable STYLEGAN_PLUS_DETECTOR_DIR
     (a local folder, or a file:// or http(s):// base URL);
  2. the dnnlib download cache (`$DNNLIB_CACHE_DIR` or ~/.cache/dnnlib, sub-folder `downloads`);
  3. NVIDIA's CDN, downloaded into that cache, unless STYLEGAN_PLUS_OFFLINE=1.
STYLEGAN_PLUS_DETECTOR_SHA256="inception-2015-12-05.pt=<hex>,vgg16.pt=<hex>" makes the tools
refuse files with other digests; the digest of each detector used is recorded in every result.
Real-image statistics are cached under `<cache>/gan-metrics/`.
"""
