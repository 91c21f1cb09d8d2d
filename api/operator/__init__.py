"""The operator API (`/v1/...`): a thin, authenticated front of the control-plane workflows."""
