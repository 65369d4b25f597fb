"""The OTA side of rig: the local OTA service (FastAPI + SQLite + content-addressed blobs).

The service speaks the HTTP API of docs/ota-api.md, so the same client drives it and a remote
server. `rig.ota.serve.LocalService` runs it in a thread for tests and the pytest plugin.
"""
