"""``tradekit serve``: a read-only status page and JSON API over the ledger.

``tradekit.serve.app.create_app`` builds the ASGI application (Starlette), ``tradekit.serve.server``
binds and runs it (uvicorn) under the rules in ``tradekit.serve.security``, and
``tradekit.serve.status`` reads what every page and API route shows. This module's root imports
nothing heavy: ``tradekit.serve.pages`` (the ``register_status_pages`` records) is read by the
plugin manager.
"""
