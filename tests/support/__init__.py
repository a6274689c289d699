"""Test-only support code that is not itself a test (e.g. the local Square stand-in)."""
