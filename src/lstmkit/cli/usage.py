"""A command line that cannot run: one line on stderr and exit status 2, never argparse's whole usage."""

from __future__ import annotations

import argparse


class UsageError(Exception):
    """A command line that cannot run; printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints the whole usage; one line is what a user scans for
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")
