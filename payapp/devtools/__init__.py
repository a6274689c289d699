"""Developer and test tools that never run in production (e.g. the local Square stand-in)."""
