-- 0007_token_tree: tokens form a tree (issue 15). A token created through
-- Policy.CreateToken names the token that created it (parent_id); tokens created by an
-- operator (`trstctl token create`) or the bootstrap are roots (NULL). When a child is
-- created its lifetime and policies are bounded by its parent's, and revoking a token
-- revokes its descendants in the same transaction (the index walks the tree down).
-- Tokens created before this migration are roots.
ALTER TABLE tokens ADD COLUMN parent_id text COLLATE "C";
CREATE INDEX tokens_parent ON tokens (tenant_id, parent_id) WHERE parent_id IS NOT NULL;
