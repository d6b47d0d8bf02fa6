"""Short fuzz runs (the long one is `make fuzz`): every target accepts its input or rejects it
with one of the package's typed errors; any other exception fails the test."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seedtok.fuzzing import EXPECTED, TARGETS, mutate, run_random, seed_images

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", ["image_bytes", "caption_text", "config_dict"])
@FAST
@given(data=st.binary(max_size=96))
def test_fuzz_target(name, data):
    try:
        TARGETS[name](data)
    except EXPECTED:
        pass


@settings(max_examples=40, deadline=None, derandomize=True)
@given(data=st.binary(max_size=32))
def test_fuzz_token_ids(data):
    try:
        TARGETS["token_ids"](data)
    except EXPECTED:
        pass


@given(ops=st.integers(1, 16), seed=st.binary(max_size=8))
@settings(max_examples=50, deadline=None, derandomize=True)
def test_mutate_changes_bytes_deterministically(ops, seed):
    import random

    a = mutate(seed_images()[0], random.Random(seed), ops)
    b = mutate(seed_images()[0], random.Random(seed), ops)
    assert a == b


def test_random_driver_counts_inputs():
    report = run_random(runs=25, seed=1)
    assert report["total_inputs"] == 100
    assert all(r["crashes"] == 0 and 0 <= r["typed_errors"] <= 25 for r in report["targets"].values())
    assert report["targets"]["image_bytes"]["typed_errors"] > 0  # mutated images do get rejected
