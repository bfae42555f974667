-- 0008_outbox_sent: the relay deletes an event's outbox row once JetStream acknowledged it
-- (server/bus/relay.c); before, it set sent_at and kept the row forever, so the table grew
-- by one row per change. The rows already sent go now; sent_at stays (always NULL from
-- here on) so that an older server of a rolling upgrade still runs.
DELETE FROM outbox WHERE sent_at IS NOT NULL;
