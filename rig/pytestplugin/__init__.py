"""rig's pytest plugin (entry point `pytest11: rig`): everything that imports pytest lives here.

The plugin only maps rig onto pytest. Boards, drivers, the OTA pipeline and the reports know
nothing of pytest: they emit steps and events (`rig.steps`) and this package listens.
- `session`: the run's one shared state object (`RigSession`), reached with `session_of(config)`;
- `boards`: `--board`, the `board`, `power`, `console` fixtures, capability markers, recovery;
- `ota`: the OTA service, client, pipeline, handoff, faults and power-trace fixtures;
- `report`: measurements, per-test and per-board records, Allure labels, JUnit properties;
- `record`: what one test leaves behind; `scheduling`: xdist keeps a board on one worker.
"""

pytest_plugins = ["rig.pytestplugin.boards", "rig.pytestplugin.ota", "rig.pytestplugin.report"]
