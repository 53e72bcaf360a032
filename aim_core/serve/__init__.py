"""``aim serve``: a read-only ASGI server over one repository's registry.

Starlette on uvicorn: Starlette is a small routing and response toolkit with
one dependency (anyio) and no data-validation layer we would not use (FastAPI
adds pydantic for request bodies; every route here is a GET without a body);
uvicorn is the reference ASGI server and takes a socket we bound ourselves, so
``--port 0`` prints the real URL before serving. Pages are Jinja2 templates
(autoescaped: prompts and messages in the audit are user text) with charts drawn
server-side as inline SVG and one small script for live updates; everything
ships inside the package, nothing loads from a CDN.

Modules:

* :mod:`.follow` -- reads the day files by byte offset: only lines appended since
  the last request, and notices a file that changed any other way.
* :mod:`.chain` -- verifies the hash chain incrementally from the last verified
  record (the full ``aim audit verify`` walk runs when something looks wrong).
* :mod:`.state` -- the in-memory aggregate: the report's figures (the same
  :class:`~aim_core.audit.report.ReportBuilder` as ``aim audit report``), the
  counters behind ``/metrics``, per-day series and an index of runs.
* :mod:`.health`, :mod:`.metrics`, :mod:`.pages` -- the three kinds of answer.
* :mod:`.app` -- the routes, the token and host checks, the security headers.
* :mod:`.run` -- binding, printing the URL, running uvicorn.
"""
