"""The shipped accelerate launch configs parse with accelerate's own loader."""

from pathlib import Path

import pytest

CONFIGS = sorted((Path(__file__).parents[1] / "configs" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_loads(path):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(path))
    assert cfg.num_processes >= 2 and cfg.num_machines >= 1
    if "cpu" not in path.name:
        assert cfg.mixed_precision == "bf16" and not cfg.use_cpu


def test_all_engines_are_covered():
    names = {p.name for p in CONFIGS}
    assert {"cpu_2proc.yaml", "ddp_1node_8gpu.yaml", "ddp_8node_64gpu.yaml", "fsdp_1node_8gpu.yaml", "deepspeed_zero2_bf16.yaml"} <= names
