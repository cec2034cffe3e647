"""The kernel every layer may import: the registry and readings models, settings, errors,
credentials, logging and the retry helper. It imports nothing of Offsite's above it.

Error tree::

    OffsiteError
     ├── SettingsError      invalid OFFSITE_* configuration
     ├── RegistryError      a registry file or object that does not hold together
     ├── EmbeddedError      an embedded service (PostgreSQL, broker) failed to start
     ├── BrokerAuthError    the broker's password/ACL files cannot be generated
     └── RetryError         a retried call did not succeed (core.retry)
          ├── RetryExhausted    attempts or deadline ran out
          └── RetryStopped      a stop was requested while waiting
"""
