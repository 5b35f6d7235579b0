"""Backup drills: restores proven by counting what they hold against what was acknowledged.

- :mod:`peakready.backup.lab` — the lab drill, ``run_backup_drill``: pgBackRest
  point-in-time restore from each repository, Redis snapshot restore, search rebuild.
- :mod:`peakready.backup.schedule` — full/differential cadence from the stack's ``backup``
  settings (AWS cron form), and taking the backups that are due.
- :mod:`peakready.backup.aws` — the AWS restore flow.
"""
