"""Run folders under `--outdir`: checking the outdir, naming and creating `<id>-<desc>`, and
cleaning up after runs that failed early or were killed mid-write.

A run that stops before writing anything worth keeping removes the folder it created; snapshot
temporaries left by killed runs are removed before the next run starts.
"""

import json
import os
import re
import shutil

import dnnlib

from . import resume as resume_lib, snapshots
from .options import UserError


def _require(condition, message):
    if not condition:
        raise UserError(message)


def check_outdir(outdir):
    """Raise UserError unless `outdir` exists as a writable folder or can be created."""
    path = os.path.abspath(outdir)
    if os.path.exists(path):
        _require(os.path.isdir(path), f'--outdir={outdir}: exists and is not a folder')
        _require(os.access(path, os.W_OK | os.X_OK), f'--outdir={outdir}: the folder is not writable')
        return
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    _require(os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK),
             f'--outdir={outdir}: cannot be created ({parent} is not a writable folder)')


def next_run_dir(outdir, desc):
    """`{outdir}/{id:05d}-{desc}`, id = 1 + the largest leading number of the existing sub-folders."""
    run_ids = []
    if os.path.isdir(outdir):
        for name in os.listdir(outdir):
            match = re.match(r'^\d+', name)
            if match and os.path.isdir(os.path.join(outdir, name)):
                run_ids.append(int(match.group()))
    return os.path.join(outdir, f'{max(run_ids, default=-1) + 1:05d}-{desc}')


def create_run_dir(outdir, desc):
    """Create the next run folder and return its path (a concurrent run taking the id is skipped)."""
    for _attempt in range(100):
        run_dir = next_run_dir(outdir, desc)
        try:
            os.makedirs(run_dir)
            return run_dir
        except FileExistsError:
            continue
    raise UserError(f'--outdir={outdir}: could not allocate a new run folder')


def folder_entries(outdir):
    """Normalised paths of what `outdir` holds now (empty when it does not exist)."""
    try:
        return {os.path.normpath(os.path.join(outdir, name)) for name in os.listdir(outdir)}
    except OSError:
        return set()


# Files a run writes while setting up; all of them are made again by the next run.
_SETUP_FILES = ('training_options.json', 'log.txt', 'reals.png', 'fakes_init.png')


def _worth_keeping(path):
    name = os.path.basename(path)
    if not os.path.isfile(path) or os.path.islink(path):
        return True
    if name in _SETUP_FILES or name.startswith('events.out.tfevents.'):
        return False
    return os.path.getsize(path) > 0     # e.g. stats.jsonl gets its first line at the first tick


def _created_by(run_dir, existing_before):
    """True when `run_dir` appeared after `existing_before` was listed and belongs to this run: its
    training_options.json names it, or it is still empty."""
    if os.path.normpath(run_dir) in existing_before or not os.path.isdir(run_dir):
        return False
    options_path = os.path.join(run_dir, 'training_options.json')
    if not os.path.isfile(options_path):
        return not os.listdir(run_dir)
    try:
        with open(options_path) as f:
            return json.load(f).get('run_dir') == run_dir
    except (OSError, ValueError, AttributeError):
        return False


def remove_failed_run_dir(run_dir, existing_before):
    """Delete the folder of a run that failed before writing anything worth keeping (snapshots,
    states, image snapshots, statistics or files of a loss plugin are worth keeping). Only a
    folder this run created is touched. Returns True when it was removed."""
    if not run_dir or not _created_by(run_dir, existing_before):
        return False
    if any(_worth_keeping(os.path.join(run_dir, name)) for name in os.listdir(run_dir)):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return not os.path.exists(run_dir)


def remove_stale_temps(outdir, resume_pkl=None):
    """Delete snapshot temporaries that killed runs left in the run folders of `outdir` (and in the
    folder of a local `resume_pkl`); returns the removed paths. Files of live runs stay."""
    folders = resume_lib.run_folders(outdir)
    if resume_pkl and not dnnlib.util.is_url(resume_pkl, allow_file_urls=True):
        folders.append(os.path.dirname(os.path.abspath(resume_pkl)))
    return snapshots.remove_stale_temps(sorted(set(folders)))
