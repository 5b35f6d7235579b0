"""The verdicts: failover (chaos scenarios) and restore (backup drills), lab and AWS alike."""
