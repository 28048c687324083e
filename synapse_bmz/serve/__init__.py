"""``synapse-bmz serve``: every model package behind an authenticated HTTP job API.

`app` (routes), `store` (SQLite jobs), `worker` (job processes), `server`
(uvicorn + supervisor), `security` (tokens, data-root confinement),
`catalog` (the served packages), `options` (job options). The client is
`synapse_bmz.client`. Needs the ``serve`` extra (FastAPI, uvicorn).
"""
