"""Namespace ownership rules (no I/O): which prefix a name falls under, and the unregistered policy.

A namespace is a prefix of extension names at a dot boundary (`com.acme` covers `com.acme` and
`com.acme.hello`, not `com.acmecorp.x`), owned by one publisher. The namespace of a name is the longest
registered prefix covering it; a name no registered prefix covers is in the implicit namespace of its
first two labels, which its first publish claims (policy `claim`) or which must be registered first
(policy `strict`).
"""

from __future__ import annotations

from enum import StrEnum

from schema.manifest import valid_name


class NamespacePolicy(StrEnum):
    """What publishing a new name into an unregistered namespace does (`EXT_NAMESPACE_POLICY`)."""

    # Trust on first use (like npm scopes): the publish claims the namespace for its publisher.
    CLAIM = "claim"
    # Refused with namespace_unregistered until an admin registers the namespace.
    STRICT = "strict"


def valid_prefix(prefix: str) -> bool:
    """A namespace prefix is spelled like an extension name (lowercase labels, at least two)."""
    return valid_name(prefix)


def covers(prefix: str, name: str) -> bool:
    """Whether `name` falls under `prefix` (equal, or the prefix followed by a dot)."""
    return name == prefix or name.startswith(prefix + ".")


def implicit_namespace(name: str) -> str:
    """The namespace a first publish claims: the name's first two labels."""
    return ".".join(name.split(".")[:2])


class Verdict(StrEnum):
    """Whether `publisher` may publish `name`, from what the registry knows (decide())."""

    # The namespace covering the name is the publisher's.
    OWNER = "owner"
    # The name itself was published by this publisher (before its namespace went to another): it
    # stays with its owner.
    NAME_OWNER = "name_owner"
    # No registered namespace covers the new name: claim it or refuse it, by NamespacePolicy.
    UNREGISTERED = "unregistered"
    # The name exists under another publisher.
    NAME_TAKEN = "name_taken"
    # The covering namespace belongs to another publisher.
    NAMESPACE_TAKEN = "namespace_taken"


def decide(publisher: str, *, name_owner: str | None, namespace: tuple[str, str] | None) -> Verdict:
    """The verdict for a publish of a name by `publisher`.

    Args:
        name_owner: the publisher of the existing extension of that name, None when it is new.
        namespace: (prefix, publisher) of the longest registered prefix covering the name, or None.
    """
    if name_owner is not None:
        return Verdict.NAME_OWNER if name_owner == publisher else Verdict.NAME_TAKEN
    if namespace is None:
        return Verdict.UNREGISTERED
    return Verdict.OWNER if namespace[1] == publisher else Verdict.NAMESPACE_TAKEN
