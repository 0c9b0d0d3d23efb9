"""SMPP peers from outside this project, for tests/test_interop.py."""
