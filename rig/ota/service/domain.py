"""The OTA service's domain logic as plain Python: one method per API operation.

`OtaService` enforces the pipeline rules R1..R8 (DESIGN §1) over the SQLite store and the blob
store, and raises `OtaError` for every refusal. The HTTP app is a thin layer over it, and the
pytest plugin may call it directly (through `LocalService.service`) to set up a lab: create
image and device types, publish profiles, register devices.

It is assembled from layers, each in its own module, each building on the one before:
- `Catalogue` (catalogue.py): the store, image types (R1, R2), binaries;
- `DeviceTypes` (device_types.py): device types, profiles (R3), eligibility (R6);
- `ImageQueries` (image_queries.py): reading the pool: image records, the R7 search,
  associations, tags;
- `Pool` (pool.py): adding and changing images (R4, R5) and their tags;
- `Associations` (associations.py): images made available to device types (R6);
- `Deployments` (deployments.py): deployment records, history, the state moves, cancel;
- `Fleet` (fleet.py): devices and pushes (R8);
- `DeviceSide` (device_side.py): check-in, offers, downloads, progress, attribute reports.
"""

from __future__ import annotations

from rig.ota.service.auth import PartnerAuth
from rig.ota.service.catalogue import DEFAULT_MAX_IMAGE_BYTES
from rig.ota.service.device_side import DeviceSide

__all__ = ["DEFAULT_MAX_IMAGE_BYTES", "OtaService", "PartnerAuth"]


class OtaService(DeviceSide):
    """Every operation of the local OTA service, over one data folder.

    Partner-side methods take the partner id first; device-side methods take the device id.
    Lists take a `PageRequest` (rig.ota.service.paging) and return the API's page body.
    """
