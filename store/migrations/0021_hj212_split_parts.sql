-- Parts of split HJ 212 packets (Flag D bit, PNUM/PNO), each kept as it arrives, in the
-- transaction after which it is answered: a logger that waits for each part's 9014
-- before sending the next no longer stalls, and a gateway restart between parts loses
-- nothing. When the last part arrives the set is assembled (in that transaction) and
-- its rows deleted; a set still incomplete after OFFSITE_HJ212_SPLIT_TIMEOUT_S is
-- dead-lettered with every part's bytes. A redelivered part (same PNO) is kept once.
CREATE TABLE hj212_split_parts (
    mn           text NOT NULL,
    cn           text NOT NULL,
    qn           text NOT NULL,           -- '' for a 2005-era packet without QN
    pno          integer NOT NULL,
    pnum         integer NOT NULL,
    received_at  timestamptz NOT NULL,
    transport    text NOT NULL CHECK (transport IN ('mqtt', 'tcp')),
    topic        text NOT NULL,
    raw          bytea NOT NULL,
    PRIMARY KEY (mn, cn, qn, pno)
);
CREATE INDEX hj212_split_parts_received ON hj212_split_parts (received_at);

-- Which CRC a packet carried: standard (HJ 212 Annex A), or one of the two byte orders
-- of CRC-16/MODBUS that field loggers send (accepted per device with crc_compat).
ALTER TABLE packets ADD COLUMN crc_variant text NOT NULL DEFAULT 'standard';
