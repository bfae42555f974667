-- 0005_issuance: let an issuance update its identity in place (issue 6).
-- Every issuance changes an identity's state, current serial and update time. While state
-- was indexed (identities_state), each such update wrote a new entry into all three indexes
-- of the table; without it, and with room left on each page (fillfactor), PostgreSQL updates
-- the row as a heap-only tuple and touches no index. The state filter of ListIdentities
-- (optional, with keyset paging on id) walks the primary key instead.

DROP INDEX identities_state;
ALTER TABLE identities SET (fillfactor = 80);
