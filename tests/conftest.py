"""Test-session settings shared by every test file."""
from __future__ import annotations

import os

import matplotlib
import torch

matplotlib.use("Agg")  # no display on CI machines

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One thread per xdist worker: two workers with two OpenMP threads each on two cores spin against each other
    # and run several times slower. Notebook kernels started by the tests inherit the variable.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
