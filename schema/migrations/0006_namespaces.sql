-- Namespace ownership: an extension name prefix (at a dot boundary) belongs to one publisher, and no
-- other publisher may register a new extension name under it. Forward-only.
--
-- * `prefix` is itself a valid extension name (>= 2 labels); the namespace of a name is the longest
--   registered prefix equal to the name or followed by '.' in it (docs/bundles.md "Namespaces");
-- * `source` says how the row came to be: 'registered' by an admin (RegisterNamespace workflow) or
--   'claimed' by the first publish into an unregistered namespace (trust on first use);
-- * names published before their namespace was registered keep their owner (extensions.publisher).

CREATE TABLE namespaces (
    prefix      text PRIMARY KEY CHECK (length(prefix) BETWEEN 3 AND 200),
    publisher   text NOT NULL,
    source      text NOT NULL CHECK (source IN ('registered', 'claimed')),
    workflow_id text NOT NULL,
    created_by  text NOT NULL DEFAULT 'system',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX namespaces_publisher ON namespaces (publisher);
