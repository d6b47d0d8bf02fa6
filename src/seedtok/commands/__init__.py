"""CLI subcommands: thin argument wrappers around importable functions."""
