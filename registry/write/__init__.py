"""Registry mutations. Imported only by `activities/` (tests/test_layering.py), so every state change
goes through an audited Temporal workflow.

Every function is idempotent on a business key (INSERT … ON CONFLICT, or a check of the workflow id
recorded with the change) because Temporal delivers activities at least once, and runs in one
transaction: a failure leaves no partial rows.

    publish   register_version            extension + bundle + version + endpoints
    install   apply_install_change        install/upgrade/rollback/enable/disable/uninstall/limits/config
    secrets   store_secrets, rewrap_data_keys
    trust     add_trust_key, mark_key_revoked, revoke_bundle_versions
    namespaces register_namespace, remove_namespace
    audit     insert_audit_event
    execlog   record_execution            one execution_log row of a scheduled run
"""

from registry.write.audit import insert_audit_event
from registry.write.execlog import record_execution
from registry.write.install import apply_install_change
from registry.write.namespaces import register_namespace, remove_namespace
from registry.write.publish import RegisteredVersion, register_version
from registry.write.secrets import rewrap_data_keys, store_secrets
from registry.write.trust import add_trust_key, mark_key_revoked, revoke_bundle_versions

__all__ = [
    "RegisteredVersion",
    "add_trust_key",
    "apply_install_change",
    "insert_audit_event",
    "mark_key_revoked",
    "record_execution",
    "register_namespace",
    "register_version",
    "remove_namespace",
    "revoke_bundle_versions",
    "rewrap_data_keys",
    "store_secrets",
]
