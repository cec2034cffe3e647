"""Ingest: MQTT messages → decoded, validated readings → the store → the rules.

Data flow inside the package::

    subscriber.py (paho, the only file that imports it)
        → InboundMessage → codecs/ (bytes → ParsedMessage) → validate.py (→ Reading | rejection)
        → batcher.py (pure) → pipeline.py (commit readings + dead letters, then ack, then rules)
        the database away: pipeline.py → spool.py (fsync, then ack) → drained in order later

Error tree::

    IngestError
     ├── DecodeError        a payload that no codec can read (becomes a dead letter)
     ├── BrokerError        the MQTT broker refused or dropped us
     └── SpoolError         the disk spool's directory is unusable or held by another process
"""
