"""What a run tells its reader: measurements, power traces, handoff timelines, OTA attachments,
tables. It listens to what the rest of rig emits (`rig.steps`); it never drives a board."""
