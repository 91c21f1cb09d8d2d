"""Contracts of extplane, with no I/O: manifest, capabilities, WIT world, migrations, Temporal names.

This package imports nothing else of the project (see ARCHITECTURE.md); every other package may import it.
"""
