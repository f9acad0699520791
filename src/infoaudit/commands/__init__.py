"""CLI subcommands that belong to no larger package."""

__all__ = []
