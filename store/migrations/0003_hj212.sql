-- HJ 212 devices: the password (PW) a logger must send, and a per-device switch for
-- loggers that send a byte-swapped CRC-16/MODBUS instead of the standard's CRC.
ALTER TABLE devices ADD COLUMN password text;
ALTER TABLE devices ADD COLUMN crc_compat boolean NOT NULL DEFAULT false;

-- Every HJ 212 packet as received (evidence, and what readings cannot hold: EFlag,
-- SampleTime, instrument info of CN 3020, logger restarts of CN 2081…).
CREATE TABLE packets (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    transport    text NOT NULL CHECK (transport IN ('mqtt', 'tcp')),
    source       text NOT NULL,           -- MQTT topic or TCP peer address
    mn           text NOT NULL,
    qn           text,
    st           text NOT NULL,
    cn           text NOT NULL,
    flag         integer,
    pnum         integer,
    pno          integer,
    raw          text NOT NULL
);
-- a redelivered packet is stored once (packets without QN, 2005-era, cannot be told apart)
CREATE UNIQUE INDEX packets_once ON packets (mn, cn, qn, coalesce(pno, 0)) WHERE qn IS NOT NULL;
CREATE INDEX packets_device ON packets (mn, received_at DESC);
