"""registry package: see ARCHITECTURE.md for its job and allowed imports."""
