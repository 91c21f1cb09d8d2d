-- Install consent (docs/operator.md "Capabilities and egress"): an operator may grant an install less
-- than its version asks for, so the egress hosts an install may reach are now the install's own grant,
-- like its capabilities, rather than read from the version's manifest at every call. Existing installs
-- were granted their manifest's whole egress list: backfill exactly that. Forward-only.

ALTER TABLE installs ADD COLUMN granted_egress text[] NOT NULL DEFAULT '{}';

UPDATE installs i
SET granted_egress = ARRAY(SELECT jsonb_array_elements_text(v.manifest -> 'egress') ORDER BY 1)
FROM versions v
WHERE v.id = i.version_id AND jsonb_typeof(v.manifest -> 'egress') = 'array';
