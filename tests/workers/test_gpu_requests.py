"""Training tasks and evaluator actors ask Ray for the GPUs the config gives them, and nothing else.

Checked on a CPU machine: a local Ray told it has one GPU (a logical resource) schedules the real
training task and evaluator actors with what they ask for; inside, dmo reports what Ray granted
and refuses clearly, because this torch has no CUDA. (Every other Ray test runs on a Ray without
GPUs: a task that asked for one there would never be scheduled.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys, tempfile
from pathlib import Path
import ray
from dmo.config import load_config, with_overrides
from dmo.search.pool import ProxyRequest, ProxySource
from dmo.training.jobs import base_spec
from workers.evaluators import RayPool
from workers.training import _submit

ray.init(num_cpus=4, num_gpus=1, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="raygpu", dir="/tmp"))
config = with_overrides(load_config(sys.argv[1]), {"ray.gpus_per_trainer": ("t", 1.0),
                                                    "ray.gpus_per_evaluator": ("e", 0.5)})
try:
    ray.get(_submit(config, "sqlite:///" + sys.argv[2], base_spec(config), None), timeout=120)
    trainer = None
except Exception as error:  # the task's own error, as Ray re-raises it
    trainer = str(error)
pool = RayPool(ProxySource(config, Path(sys.argv[2]), ()), size=2)
pool.submit(0, ProxyRequest.proxy([1.0]))
pool.submit(1, ProxyRequest.proxy([1.0]))
outcomes = []
while len(outcomes) < 2:
    outcomes += pool.wait(60)
print("RESULT " + json.dumps({"trainer": trainer, "evaluators": [str(error) for _, error in outcomes]}), flush=True)
"""


@pytest.mark.slow
def test_trainers_and_evaluators_ask_ray_for_the_configured_gpus(tiny_yaml, tmp_path):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(tiny_yaml), str(tmp_path / "store.sqlite")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]  # Ray logs to stdout too
    seen = json.loads(line.removeprefix("RESULT "))
    assert "ray.gpus_per_trainer is 1 (Ray granted {'CPU': 1.0, 'GPU': 1.0}), but torch sees no CUDA" in seen["trainer"]
    assert len(seen["evaluators"]) == 2  # both fit: half a GPU each
    for error in seen["evaluators"]:
        assert "ray.gpus_per_evaluator is 0.5 (Ray granted {'CPU': 1.0, 'GPU': 0.5}), but torch sees no CUDA" in error


def test_by_default_nothing_asks_for_a_gpu_and_tensors_stay_on_the_cpu(tiny_yaml):
    from dmo.config import load_config
    from dmo.runtime import compute_device
    from dmo.search.pool import ProxySource
    from workers.evaluators import evaluator_resources
    from workers.training import trainer_resources

    config = load_config(tiny_yaml)
    assert trainer_resources(config) == {"num_cpus": 1, "num_gpus": 0.0}
    assert evaluator_resources(ProxySource(config, Path("base"), ())) == {"num_cpus": 1, "num_gpus": 0.0}
    assert compute_device(0.0, field="ray.gpus_per_trainer").type == "cpu"


def test_a_fraction_above_one_gpu_is_refused_at_parse_time(tiny_yaml):
    from dmo.config import load_config
    from dmo.errors import ConfigError

    tiny_yaml.write_text(tiny_yaml.read_text() + "\nray: {gpus_per_trainer: 1.5}\n")
    with pytest.raises(ConfigError, match="gpus_per_trainer"):
        load_config(tiny_yaml)
