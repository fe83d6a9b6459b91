"""Where the tests' own files are, wherever a test module sits in the tree."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
GOLDEN = TESTS / "golden"
ROOT = TESTS.parent
