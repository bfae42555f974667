-- 0001_base: the tables of the durable spine (issue 5). Every table carries tenant_id and
-- every query filters on it; the default tenant is 00000000-0000-0000-0000-000000000000.

CREATE TABLE tenants (tenant_id uuid PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());

-- The KEK check value: a wrong KEK later refuses to start.
CREATE TABLE kek_check (tenant_id uuid NOT NULL, kek_id text NOT NULL, check_value bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, kek_id));

-- KEK-sealed private keys: the audit signing key (kind 'audit'), later the CA key (kind 'ca').
CREATE TABLE sealed_keys (tenant_id uuid NOT NULL, kind text NOT NULL, name text NOT NULL, version int NOT NULL DEFAULT 1, public_key bytea, sealed bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, kind, name, version));

CREATE TABLE audit_events (tenant_id uuid NOT NULL, sequence bigint NOT NULL, id uuid NOT NULL, type text NOT NULL, time timestamptz NOT NULL, actor text NOT NULL, resource text NOT NULL, outcome text NOT NULL, data_json text NOT NULL, prev_hash bytea NOT NULL, hash bytea NOT NULL, PRIMARY KEY (tenant_id, sequence), UNIQUE (tenant_id, id));

-- The chain head: servers take turns with SELECT ... FOR UPDATE inside their batch transaction.
CREATE TABLE audit_head (tenant_id uuid PRIMARY KEY, sequence bigint NOT NULL, hash bytea NOT NULL);

CREATE TABLE audit_checkpoints (tenant_id uuid NOT NULL, sequence bigint NOT NULL, hash bytea NOT NULL, key_version int NOT NULL, signature bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, sequence));

CREATE TABLE outbox (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, type text NOT NULL, payload bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), sent_at timestamptz);
CREATE INDEX outbox_unsent ON outbox (created_at) WHERE sent_at IS NULL;

-- A mutating request's first reply, so a retry with the same request_id returns it.
CREATE TABLE idempotency (tenant_id uuid NOT NULL, request_id text NOT NULL, method text NOT NULL, reply bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, request_id));

-- The default tenant and its audit chain genesis (sequence 0, hash = 32 zero bytes).
INSERT INTO tenants (tenant_id, name) VALUES ('00000000-0000-0000-0000-000000000000', 'default');
INSERT INTO audit_head (tenant_id, sequence, hash) VALUES ('00000000-0000-0000-0000-000000000000', 0, decode(repeat('00', 32), 'hex'));
