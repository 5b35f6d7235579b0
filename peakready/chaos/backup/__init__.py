"""The backup-restore scenario's activities (lab target): restore and verify, RPO exposure."""
