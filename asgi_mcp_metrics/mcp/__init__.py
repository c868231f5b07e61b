"""MCP understood on the wire, in two layers.

* :mod:`.wire` — the pure wire layer: JSON-RPC classification, SSE parsing, ``Mcp-*`` headers,
  bounded bodies, closed vocabularies.  Parsers return plain facts.
* the tracking layer (the modules beside it): which paths are MCP (:mod:`.endpoints`),
  one exchange's request and response (:mod:`.exchange`, :mod:`.request`, :mod:`.response`),
  sessions and legacy-SSE correlation (:mod:`.sessions`), outcomes (:mod:`.operations`), and
  the one object that records all of it (:mod:`.recording`).  :mod:`.tracker` ties them to the
  middleware.
"""
