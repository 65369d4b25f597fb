"""OTA from the lab's side: the client, the pipeline a test walks, the checks of an outcome.

`client` speaks the OTA service's HTTP API (the local one or a remote server), `states` is the
deployment vocabulary shared by client, service and reports (no FastAPI), `pipeline` walks image
type → profile → upload → associate → push → outcome, `witnesses` cross-checks the outcome with
the console and the wire, `power_cut` cuts a board's supply at a point of the handoff. The
local service itself lives in `rig.ota.service`.
"""
