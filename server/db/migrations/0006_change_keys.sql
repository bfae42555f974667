-- 0006_change_keys: the change room's idempotency key (issue 14).
-- A stored reply was keyed by (tenant, request_id) with the method beside it, so another
-- caller's request_id returned that caller's reply. The key is now (tenant, principal,
-- method, request_id), the method spelled as the full gRPC method name, and each row keeps
-- the fingerprint of the request it answered (a reuse for another request is refused).
--
-- Rows written before this migration name no principal: they move to the new key with the
-- principal '' (no caller has it), so no caller can read them any more, and the purge
-- removes them after the retention. Their methods take the one spelling.
ALTER TABLE idempotency ADD COLUMN principal text NOT NULL DEFAULT '';
ALTER TABLE idempotency ADD COLUMN fingerprint bytea;
UPDATE idempotency SET method = CASE
	WHEN method LIKE 'trstctl.v1.%' THEN '/' || method
	WHEN method LIKE 'Policy.%' THEN '/trstctl.v1.Policy/' || substr(method, 8)
	WHEN method NOT LIKE '/%' THEN '/trstctl.v1.CA/' || method
	ELSE method END;
ALTER TABLE idempotency DROP CONSTRAINT idempotency_pkey;
ALTER TABLE idempotency ADD PRIMARY KEY (tenant_id, principal, method, request_id);
ALTER TABLE idempotency ALTER COLUMN principal DROP DEFAULT;
-- The purge finds expired replies by age; rows arrive in time order, so a BRIN index (a few
-- pages, almost free to maintain on insert) is enough.
CREATE INDEX idempotency_created_at ON idempotency USING brin (created_at);
