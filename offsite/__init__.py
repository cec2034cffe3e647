"""Offsite: off-site inspection of emission-monitoring devices.

Error tree of the shell package::

    OffsiteError
     ├── SettingsError      invalid OFFSITE_* configuration
     ├── RegistryError      a registry file or object that does not hold together
     ├── EmbeddedError      an embedded service (PostgreSQL, broker) failed to start
     └── BrokerAuthError    the broker's password/ACL files cannot be generated
"""

__version__ = "0.1.0"
