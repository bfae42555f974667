-- 0002_ca: the CA domain (issue 6). Owners own identities; an identity walks the lifecycle
-- of DESIGN.md §6 and its certificates are recorded here (never their private keys). The
-- issuing CA's key is in sealed_keys (kind 'ca', name 'issuing', sealed by the KEK) with
-- its certificate chain PEM in public_key beside it; ca_state holds the current CRL, whose
-- number only grows. Times that the service also returns are written by the service
-- (microsecond exact), so a reply can be stored for request_id before the commit.

CREATE TABLE owners (tenant_id uuid NOT NULL REFERENCES tenants, id uuid NOT NULL, kind text NOT NULL, name text NOT NULL, email text NOT NULL DEFAULT '', created_at timestamptz NOT NULL, PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, name));
CREATE INDEX owners_kind ON owners (tenant_id, kind, id);

CREATE TABLE identities (tenant_id uuid NOT NULL, id uuid NOT NULL, kind text NOT NULL, name text NOT NULL, owner_id uuid NOT NULL, state text NOT NULL DEFAULT 'requested' CHECK (state IN ('requested', 'issued', 'deployed', 'renewing', 'revoked', 'retired')), dns_names text[] NOT NULL DEFAULT '{}', ip_addresses text[] NOT NULL DEFAULT '{}', key_type text NOT NULL, ttl_seconds bigint NOT NULL CHECK (ttl_seconds > 0), revocation_reason text NOT NULL DEFAULT '', current_serial text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, PRIMARY KEY (tenant_id, id), FOREIGN KEY (tenant_id, owner_id) REFERENCES owners (tenant_id, id));
CREATE INDEX identities_owner ON identities (tenant_id, owner_id, id);
CREATE INDEX identities_state ON identities (tenant_id, state, id);

CREATE TABLE certificates (tenant_id uuid NOT NULL, serial text NOT NULL, identity_id uuid NOT NULL, der bytea NOT NULL, fingerprint text NOT NULL, key_algorithm text NOT NULL, not_before timestamptz NOT NULL, not_after timestamptz NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), revoked_at timestamptz, revocation_reason int CHECK (revocation_reason BETWEEN 0 AND 10 AND revocation_reason <> 7), superseded_by text, PRIMARY KEY (tenant_id, serial), FOREIGN KEY (tenant_id, identity_id) REFERENCES identities (tenant_id, id));
CREATE INDEX certificates_identity ON certificates (tenant_id, identity_id, serial);
CREATE INDEX certificates_revoked ON certificates (tenant_id, serial) WHERE revoked_at IS NOT NULL;

CREATE TABLE ca_state (tenant_id uuid PRIMARY KEY REFERENCES tenants, crl_number bigint NOT NULL DEFAULT 0 CHECK (crl_number >= 0), crl_der bytea, crl_pem text, this_update timestamptz, next_update timestamptz);
