"""The reference storefront app: the order workload every drill drives (DESIGN §4).

``python -m peakready.app`` serves it on ``PEAKREADY_APP_HOST:PEAKREADY_APP_PORT``;
:func:`peakready.app.main.create_app` builds the ASGI app from
:class:`peakready.app.settings.AppSettings`.
"""
