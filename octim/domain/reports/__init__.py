"""Reports and analytics (docs/reports.md): counters folded from the event log."""
