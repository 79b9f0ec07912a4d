"""Dispatch: the pace of model calls (control.py), and later the release of work to it."""
