"""The ``offsite`` subcommands, one module per group; ``offsite.cli`` assembles them."""
