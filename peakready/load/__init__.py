"""Load with a ledger: the drill workload (orders, reads, searches) and what it saw.

A load run lives in a *run folder*:

- ``requests.jsonl``: one line per HTTP attempt (:mod:`peakready.load.records`);
- ``ledger.jsonl``: one line per acknowledged order (:mod:`peakready.load.ledger`);
- ``faults.jsonl``: faults and recoveries, written by the chaos actions;
- ``load.log``: the generator's own log.
"""
