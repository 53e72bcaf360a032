import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "src"))

from calc import mean  # noqa: E402


def test_mean():
    assert mean([1, 2, 3]) == 2


def test_mean_of_nothing():
    assert mean(None) == 0
