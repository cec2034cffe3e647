"""The kernel every layer may import: the registry and readings models, settings, errors,
credentials and logging. It imports nothing of Offsite's above it.

Error tree::

    OffsiteError
     ├── SettingsError      invalid OFFSITE_* configuration
     ├── RegistryError      a registry file or object that does not hold together
     ├── EmbeddedError      an embedded service (PostgreSQL, broker) failed to start
     └── BrokerAuthError    the broker's password/ACL files cannot be generated
"""
