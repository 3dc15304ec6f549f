"""One module per client library; each bench runs in a fresh subprocess of one of them.

``python -m benchmarks.clients.tether_client --backend asyncio|trio --bench NAME ...`` and
``python -m benchmarks.clients.psio_client --bench NAME ...`` print ``RESULT {json}`` on stdout
(and ``READY {json}`` first for the reconnect storm). See :mod:`benchmarks.clients._harness`.
"""
