"""The application layer: commands, handlers, the message bus, the composition root."""
