-- 0004_policy: policies, API tokens and the authorization generation (issue 8).
-- A policy is a named JSON document with a version that grows on every change; a deleted
-- policy keeps its row (deleted = true) so that its version keeps growing when it is put
-- again, and so that every server sees the deletion as a newer version. A token is stored
-- only as the SHA-256 of its text (hash); id is the first 16 hex characters of that hash.
-- authz_generation holds one row per tenant that every policy or token change bumps in the
-- same transaction: servers poll it (an indexed single-row read) to learn that their caches
-- of policies and tokens went stale.

CREATE TABLE policies (tenant_id uuid NOT NULL REFERENCES tenants, name text COLLATE "C" NOT NULL, document text NOT NULL, version bigint NOT NULL CHECK (version >= 1), updated_at timestamptz NOT NULL DEFAULT clock_timestamp(), deleted boolean NOT NULL DEFAULT false, PRIMARY KEY (tenant_id, name));

CREATE TABLE tokens (tenant_id uuid NOT NULL REFERENCES tenants, id text COLLATE "C" NOT NULL, name text NOT NULL DEFAULT '', hash bytea NOT NULL UNIQUE CHECK (length(hash) = 32), policies text[] NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT clock_timestamp(), expire_time timestamptz, revoked_at timestamptz, last_used_time timestamptz, PRIMARY KEY (tenant_id, id));

CREATE TABLE authz_generation (tenant_id uuid PRIMARY KEY REFERENCES tenants, generation bigint NOT NULL);

INSERT INTO authz_generation (tenant_id, generation) VALUES ('00000000-0000-0000-0000-000000000000', 1);
