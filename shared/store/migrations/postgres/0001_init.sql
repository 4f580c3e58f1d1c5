-- The state store's one table: every collection's documents (shared/store/postgres.py).
-- key_hash (SHA-256 of the key, computed by the app) is in the primary key instead of key itself,
-- so keys of any length fit in the index; key is kept for people reading the table.
-- expire_at is epoch seconds on the app's clock (NULL = never expires); reads ignore expired rows
-- and the app deletes them in small batches.
CREATE TABLE IF NOT EXISTS vonage_documents (
    collection text        NOT NULL,
    key_hash   bytea       NOT NULL,
    key        text        NOT NULL,
    data       jsonb       NOT NULL,
    expire_at  double precision,
    PRIMARY KEY (collection, key_hash)
);

CREATE INDEX IF NOT EXISTS vonage_documents_expire_at
    ON vonage_documents (expire_at) WHERE expire_at IS NOT NULL;

COMMENT ON TABLE vonage_documents IS
    'vonage-functions state store: one row per document (collection, key); data is the JSON document';
