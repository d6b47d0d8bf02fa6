import os
from pathlib import Path

import pytest
import torch

from seedtok.config import get_preset
from seedtok.models import SeedTokenizer

GOLDEN_ROOT = Path(__file__).parent / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The golden folder: ``$SEEDTOK_PARITY_DIR`` or the copy in the repository."""
    return Path(os.environ.get("SEEDTOK_PARITY_DIR", GOLDEN_ROOT / "seed1_small"))


@pytest.fixture(scope="session")
def manifest_path() -> Path:
    return GOLDEN_ROOT / "seed1_manifest.json"


@pytest.fixture
def tiny_model() -> SeedTokenizer:
    torch.manual_seed(0)
    return SeedTokenizer(get_preset("tiny")).eval()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matmuls: one thread avoids OpenMP spin-waits that cost ~10x on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
