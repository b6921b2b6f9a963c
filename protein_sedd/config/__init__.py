"""Run configuration: Hydra composition (compose), the checks every config meets (checks), config files
read back from disk (files), and the bounds on every number a user gives (limits)."""
