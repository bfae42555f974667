-- 0003_secrets: the native secret store (issue 7). A secret is a name with a current
-- version; each version keeps its value sealed by the KEK envelope, bound by the additional
-- data to (tenant, name, version). Names compare bytewise (COLLATE "C") so that prefix
-- listing is a range scan of the primary key. DeleteSecret is soft (deleted_at), and a
-- destroyed version keeps its metadata while its sealed bytes are erased (NULL).

CREATE TABLE secrets (tenant_id uuid NOT NULL REFERENCES tenants, name text COLLATE "C" NOT NULL, current_version bigint NOT NULL CHECK (current_version >= 1), labels jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT clock_timestamp(), updated_at timestamptz NOT NULL DEFAULT clock_timestamp(), deleted_at timestamptz, PRIMARY KEY (tenant_id, name));

CREATE TABLE secret_versions (tenant_id uuid NOT NULL, name text COLLATE "C" NOT NULL, version bigint NOT NULL CHECK (version >= 1), sealed bytea, created_at timestamptz NOT NULL DEFAULT clock_timestamp(), destroyed_at timestamptz, PRIMARY KEY (tenant_id, name, version), FOREIGN KEY (tenant_id, name) REFERENCES secrets ON DELETE CASCADE, CHECK ((sealed IS NULL) = (destroyed_at IS NOT NULL)));

-- The versions that still hold a value: the retention limit looks only at these on rotate,
-- however many destroyed versions a secret has accumulated.
CREATE INDEX secret_versions_live ON secret_versions (tenant_id, name, version) WHERE sealed IS NOT NULL;
