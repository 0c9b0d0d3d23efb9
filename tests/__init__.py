"""Tests for smppgw."""
