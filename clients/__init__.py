"""Programs that talk to livefeed only through its public HTTP and stream API, never its services' code."""
