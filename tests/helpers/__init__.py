"""Harness shared by the suite's tests: Pilot scenarios, polling, in-process servers, stand-in directories."""
