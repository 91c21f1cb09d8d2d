"""Small value types shared by several payload modules."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class EndpointRef:
    """One endpoint a version declares (`api.endpoints[]` of the manifest)."""

    method: str
    path: str


@dataclass(frozen=True, kw_only=True)
class VersionRef:
    """A published version, by business key and content hash."""

    name: str
    version: str
    content_hash: str = ""
