"""The peakready Pulumi program: one ComponentResource per tier (see __main__.py)."""
