"""The local OTA service: FastAPI over SQLite and content-addressed blobs (docs/ota-api.md).

`serve.LocalService` runs it in a thread for tests and the plugin; `domain.OtaService` is the
rules (R1 to R9) as plain Python, the routers are thin layers over it.
"""
