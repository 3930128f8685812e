"""ordercore_adapters: the shipped adapters (in-memory store, command line and demo)."""
