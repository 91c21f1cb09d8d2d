"""Temporal payloads of the control plane: one frozen, keyword-only dataclass in and one out for every
workflow, activity and update (STYLE.md 3). They carry references (blob keys, content hashes), never
bundle bytes, and never a secret in clear (secrets travel as `SealedSecrets`).

New fields always get defaults so histories recorded before the field existed still decode.
Workflow type names, update names and task queues are in `schema.temporal`, so the operator API can
start and update every workflow by name with only `schema` imported.

    module         workflow (type name)                      id (schema.temporal)
    publish        PublishWorkflow ("Publish")               publish_workflow_id(content_hash)
    sign_verify    SignVerifyWorkflow ("SignVerify", child)  sign_verify_workflow_id(content_hash)
    trust          AddTrustKeyWorkflow ("AddTrustKey")       trust_key_workflow_id(key_id)
                   RevokeKeyWorkflow ("RevokeKey")           revoke_key_workflow_id(key_id)
    install        InstallWorkflow ("Install", entity)       install_workflow_id(tenant, extension)
                   InstallChangeWorkflow (child per change)  install_change_workflow_id(...)
    rotation       RotateMasterKeyWorkflow                   manual_rotation_workflow_id(queue) / schedule
"""
