"""Where and how commands run: devices and CPU threads (devices), torchrun ranks (distributed), progress
bars and log lines (progress)."""
