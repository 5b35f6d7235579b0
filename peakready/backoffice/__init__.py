"""The back office: workers that apply the shop's orders from the queue, exactly once.

``python -m peakready.backoffice`` runs one worker: a consumer of the order queue
(:mod:`peakready.backoffice.worker`) and a small HTTP server (:mod:`.server`) with
``/healthz``, ``/readyz``, ``/metrics``, ``GET /orders/{id}`` and the drills'
``POST /audit``. Its settings are ``PEAKREADY_BACKOFFICE_*`` variables (:mod:`.settings`).
"""
