import os

import torch
from hypothesis import HealthCheck, settings

# "ci" (the default, what make test runs) draws the same examples on every run, so a red CI always means a
# change broke something, never an unlucky draw; "thorough" draws new random examples each run, ten times as many.
settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
torch.set_num_threads(2)
