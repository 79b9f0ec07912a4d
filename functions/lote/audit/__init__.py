"""The invariant audit: what ARCHITECTURE.md promises, checked against the stored state.

`rules.py` holds the invariants as pure functions over documents (unit-tested); `scan.py` reads
Firestore, Cloud Storage and Cloud Tasks to feed them, for one tenant, every tenant, or the
bounded sample the repair sweep checks on each run. `lote-admin audit` prints the report.
"""
