"""Simulators: seeded, reproducible monitoring devices with injected faults.

They stand in for the field (CEMS stacks, wastewater analysers and their data
loggers) so that the platform can be demonstrated and its detectors scored
against a known ground truth. Everything is pure and deterministic from a seed
except ``publisher.py`` (the only file that talks MQTT) and ``tcp_logger.py`` (the
only one that talks TCP).

Data flow::

    signals.py (load cycle, AR(1) noise) → devices.py (SimDevice.reading → clean values,
        calibration flags)
    or plant.py (PlantDevice.reading: one process state, the load, drives every channel;
        stops/starts flagged F, soot blowing, fuel changes, calibration C, maintenance M;
        five plant profiles)
        → faults.py (apply_faults_flagged → values and flags | None)
        → scenarios.py (Fleet.messages)
        → publisher.py (JSON or HJ 212 payloads over MQTT, QoS 1)
        → or tcp_logger.py (HJ 212 packets over TCP, each answer awaited)
    hj212_device.py: one tick → one HJ 212 real-time packet (used by both transports)
    malformed.py: a share of the messages also sent broken (bad CRC, cut JSON), for
        dead-letter demos and tests
    replay.py: a recorded CSV series → records → publisher.publish_records
    plantsuite.py: multi-day plant runs with one known fault per device, split into a
        tuning and a held-out set, for ``offsite eval``
    evalsuite.py: the earlier 8-hour suite on independent channels (engine tests)

Error tree::

    SimulatorError
     ├── ScenarioError      a device, fault or fleet definition that does not hold together
     ├── ReplayError        a recorded CSV series that cannot be replayed (names the line)
     └── PublishError       unusable broker URL or payload, unreachable broker or gateway,
                            missing acks
"""
