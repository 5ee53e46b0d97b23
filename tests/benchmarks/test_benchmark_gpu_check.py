"""benchmarks/gpu_check.sh runs its CPU-safe parts end to end (`--smoke`), so the GPU acceptance
script cannot rot between the sessions that are lent a GPU."""

import json
import os
import subprocess

import pytest
import tests

REPO = str(tests.REPO)


@pytest.mark.slow
def test_gpu_check_smoke(tmp_path):
    out = tmp_path / 'gpu'
    proc = subprocess.run(['bash', os.path.join(REPO, 'benchmarks', 'gpu_check.sh'), str(out), '--smoke'],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / 'gpu_check.json') as fh:
        report = json.load(fh)
    assert report['smoke'] is True and set(report['steps']) == {'build', 'cuda_tests', 'ops', 'train'}
    if not report['cuda_available']:
        assert report['steps']['build']['status'] == 'skipped'
    ops = report['steps']['ops']
    assert ops['status'] == 'ok' and ops['results'], ops
    assert {'op', 'case', 'dtype', 'ref_ms'} <= set(ops['results'][0])
    assert {row['op'] for row in ops['results']} == {'bias_act', 'upfirdn2d'}
    train = report['steps']['train']
    assert train['status'] == 'ok' and '--cfg=paper256' in train['command'], train
    assert train['sec_per_kimg'] is not None and train['sec_per_kimg'] > 0
    assert 'gpu_check: 4 of 4 steps ok or skipped' in proc.stdout
