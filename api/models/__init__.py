"""Request and response models, one module per resource: separate ``*Create`` /
``*Public`` shapes, imported by the routes from the resource's module."""
