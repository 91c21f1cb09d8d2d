"""Helpers several test packages share (polling, scratch databases). Fixtures stay in conftests."""
