"""Verification: the ledger against the database, recovery times against the policy."""
