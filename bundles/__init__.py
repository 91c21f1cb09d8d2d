"""bundles package: see ARCHITECTURE.md for its job and allowed imports (schema, core).

hashing     content hashes ("sha256:" + hex), streaming, strict parsing
blobstore   BlobStore port + filesystem / in-memory stores, content-addressed key layout
pack        reproducible tar.zst from an extension directory
unpack      safe, limited unpack of an untrusted bundle (in memory, or atomically to a directory)
manifest    manifest.json -> schema.manifest.Manifest with this package's errors
component   is dist/main.wasm a component of world extplane:extension/runner? (via wasm-tools)
inspect     hash + unpack + manifest + component check in one call
signing     Ed25519 keys, canonical statements, detached signature documents
trust       trust policy over trust_keys rows: publisher scope, expiry, revocation
errors      the error tree of all of the above
"""
