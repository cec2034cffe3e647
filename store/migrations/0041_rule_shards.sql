-- Rule runner shards: a device's readings are judged by the runner leading its shard
-- (crc32 of the MN modulo the shard count), so judging spreads over cores and machines
-- while each device's rule state stays in one runner. Each queue row holds the readings
-- of one shard, and says which shard count it was split by: rows split by another count
-- (queued before the count changed) are split again by the runners before they judge.
ALTER TABLE rule_inbox
    ADD COLUMN shards integer NOT NULL DEFAULT 1 CHECK (shards >= 1),
    ADD COLUMN shard  integer NOT NULL DEFAULT 0 CHECK (shard >= 0 AND shard < shards);
DROP INDEX rule_inbox_received;
CREATE INDEX rule_inbox_shard ON rule_inbox (shards, shard, min_received);

-- The shard count the leading runners use (OFFSITE_RULE_SHARDS): ingest splits what it
-- queues by it. Written by a runner when it takes a shard, which it does only while no
-- runner with another count leads one.
CREATE TABLE rule_shards (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    count  integer NOT NULL CHECK (count BETWEEN 1 AND 1024)
);
INSERT INTO rule_shards (one, count) VALUES (true, 1);
