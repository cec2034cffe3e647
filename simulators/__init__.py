"""Simulators: seeded, reproducible monitoring devices with injected faults.

They stand in for the field (CEMS stacks, wastewater analysers and their data
loggers) so that the platform can be demonstrated and its detectors scored
against a known ground truth. Everything is pure and deterministic from a seed
except ``publisher.py``, the only file that talks MQTT.

Data flow::

    signals.py (load cycle, AR(1) noise) → devices.py (SimDevice.step → clean values)
        → faults.py (apply_faults → faulty values | None) → scenarios.py (Fleet.tick)
        → publisher.py (JSON payloads over MQTT, QoS 1)

Error tree::

    SimulatorError
     ├── ScenarioError      a device, fault or fleet definition that does not hold together
     └── PublishError       unusable broker URL or payload, unreachable broker, missing acks
"""
