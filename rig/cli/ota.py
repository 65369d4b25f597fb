"""`rig ota …`: the OTA Manager's workflow from a terminal, against any OTA server.

Which server: `--url` (or $RIG_OTA_URL) with `--partner` and a token from `--token-env`
(default RIG_OTA_TOKEN), or an OAuth sign-in with the credentials in the variables the four
`--*-env` options name; without `--url`, the `ota:` section of boards.yaml when it names a
remote server. Tables by default, `--json` for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig import safe_yaml
from rig.errors import RigError
from rig.lab import inventory
from rig.ota.client import OtaClient
from rig.ota.signin import SignInEnv, sign_in_env

if TYPE_CHECKING:  # the service (FastAPI) is imported by `serve` alone, when it runs
    from rig.ota.service.oauth import OAuthLogin

SIGN_IN_OPTIONS = ("--client-id-env", "--client-secret-env", "--username-env", "--password-env")


def _cli_sign_in(args: argparse.Namespace) -> SignInEnv | None:
    """The sign-in variables named on the command line (all four or none), or None."""
    names = [getattr(args, o[2:].replace("-", "_")) for o in SIGN_IN_OPTIONS]
    if not any(names):
        return None
    missing = [o for o, n in zip(SIGN_IN_OPTIONS, names, strict=True) if not n]
    if missing:
        raise RigError(f"signing in needs all of {', '.join(SIGN_IN_OPTIONS)}: add "
                       f"{', '.join(missing)} (each names an environment variable)")  # fmt: skip
    return SignInEnv(*names, keys=SIGN_IN_OPTIONS)


def client_for(args: argparse.Namespace) -> OtaClient:
    url = args.url or os.environ.get("RIG_OTA_URL")
    if url:
        return OtaClient.remote(url, partner=args.partner, account=args.account or args.partner,
                                token_env=args.token_env, sign_in=_cli_sign_in(args))  # fmt: skip
    inv = inventory.load(inventory.find_boards_file(getattr(args, "boards_file", None)))
    ota = inv.ota
    if ota.service == "local":
        raise RigError(
            "no OTA server given: start one with 'rig ota serve' and pass --url URL "
            "(or set RIG_OTA_URL), or name a remote one in boards.yaml's ota: section"
        )
    return OtaClient.remote(ota.service, partner=ota.partner, account=ota.account or ota.partner,
                            token_env=ota.token_env or args.token_env,
                            sign_in=sign_in_env(ota, inv.path))  # fmt: skip


def show(args: argparse.Namespace, data: Any, columns: list[str]) -> None:
    """Print records as JSON or as a table of the given columns."""
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return
    rows = data if isinstance(data, list) else [data]
    cells = [columns] + [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return "-" if value is None else str(value)


def cmd_types(args: argparse.Namespace) -> int:
    with client_for(args) as ota:
        if args.action == "add":
            data: Any = ota.add_image_type(args.name, args.description or "", args.type)
        elif args.action == "edit":
            data = ota.edit_image_type(args.type, name=args.name, description=args.description)
        else:
            data = ota.image_types()
    show(args, data, ["type", "id", "name", "description", "versionAttributeId"])
    return 0


def read_profile(path: Path) -> tuple[str, dict]:
    """('profile', dict) from a YAML/JSON file, ('export', {...}) from a Profile Editor folder."""
    if path.is_dir():
        files = {name: path / name for name in ("device-type.json", "device-description.json")}
        missing = [name for name, file in files.items() if not file.is_file()]
        if missing:
            raise RigError(f"{path}: not a Profile Editor export: missing {', '.join(missing)}")
        return "export", {name: _json(file) for name, file in files.items()}
    try:
        return "profile", safe_yaml.load(path)
    except safe_yaml.YamlFileError as exc:
        if exc.reason == "missing":
            raise RigError(f"{path}: no such profile file or export folder") from None
        raise


def _json(file: Path) -> Any:
    """One file of a Profile Editor export, read with the limits of any file rig reads."""
    try:
        return json.loads(safe_yaml.read_text(file))
    except ValueError as exc:
        raise RigError(f"{file}: not valid JSON: {safe_yaml.clip(str(exc), 200)}") from None
    except RecursionError:
        raise RigError(f"{file}: not valid JSON: nested too deeply") from None


def cmd_profiles(args: argparse.Namespace) -> int:
    kind, content = read_profile(Path(args.source))
    with client_for(args) as ota:
        if not any(dt["id"] == args.device_type for dt in ota.device_types()):
            ota.add_device_type(args.device_type)
        if kind == "export":
            data = ota.publish_export(
                args.device_type, content["device-type.json"], content["device-description.json"]
            )
        else:
            data = ota.publish_profile(args.device_type, content)
    show(args, data, ["deviceTypeId", "version", "otaImageTypes"])
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    source = Path(args.file)
    if not source.is_file():
        raise RigError(f"{source}: no such firmware file")
    with client_for(args) as ota:
        image = ota.upload_image(
            source, type_=args.type, name=args.name, version=args.version,
            description=args.description or "", tags=args.tag, device_types=args.device_type,
        )  # fmt: skip
    show(args, image, ["id", "type", "versionNumber", "name", "version", "sha256", "tags"])
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    with client_for(args) as ota:
        data = ota.images(type_=args.type, device_type=args.device_type, tags=args.tag)
    show(args, data, ["id", "type", "versionNumber", "name", "version", "size", "tags"])
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    with client_for(args) as ota:
        if "/" in args.image:  # TYPE/VERSION_NUMBER
            type_, number = args.image.split("/", 1)
            image = ota.image(int(type_), number)
        else:
            image = next((i for i in ota.images() if i["id"] == args.image), None)
            if image is None:
                raise RigError(f"no image with id {args.image!r}: see 'rig ota images'")
        data = []
        for device_id in args.device:
            device = ota.device(device_id)
            data.append(ota.push(device["deviceTypeId"], image["id"], device_id))
    show(args, data, ["deploymentId", "deviceId", "state"])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with client_for(args) as ota:
        if args.deployment:
            record = ota.deployment(args.deployment)
            if args.json:
                show(args, record, [])
                return 0
            show(args, record, ["id", "deviceId", "type", "versionNumber", "state", "reason"])
            print()
            show(args, record.get("history", []), ["timestamp", "state", "reason", "detail"])
            return 0
        data = ota.deployments(args.device)
    show(args, data, ["id", "deviceId", "type", "versionNumber", "state", "reason"])
    return 0


SERVE_LIMITS = (
    "Limits (docs/ota-api.md, 'Limits'): an image at most --max-image-mib, a JSON body at most "
    "--max-json-kib (over either: 413 TOO_LARGE, before anything is kept). Fixed, per field "
    "(over one: 422 VALIDATION naming the field): names of image types, images, device types "
    "and profiles 256 characters; descriptions 4096; version strings 128; tags 64 characters "
    "each and 50 per image (and per search); device, device type and account ids 128; a url "
    "or value 2048; a device's progress reason and detail 1024 each."
)


def cmd_serve(args: argparse.Namespace) -> int:
    from rig.ota.service.auth import PartnerAuth
    from rig.ota.service.serve import run

    if not args.partner or len(args.partner) != len(args.token):
        raise RigError("give at least one --partner ID[:ACCOUNT], and one --token for each")
    logins = _oauth_logins(args)
    partners = [
        PartnerAuth(partner_id=p, token=t, account_id=a, oauth=login)
        for (p, a), t, login in zip(map(_partner, args.partner), args.token, logins, strict=True)
    ]
    data_dir = Path(args.data)
    data_dir.mkdir(parents=True, exist_ok=True)
    # uvicorn shuts down gracefully, then re-raises the signal it caught: make that a clean exit.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _exit_cleanly)
    lifetime = {} if args.token_lifetime is None else {"token_lifetime_s": args.token_lifetime}
    for option, value in (("--max-image-mib", args.max_image_mib),
                          ("--max-json-kib", args.max_json_kib)):  # fmt: skip
        if not value > 0:
            raise RigError(f"{option} must be a positive number, not {value:g}")
    run(host=args.host, port=args.port, data_dir=data_dir,
        partners={p.partner_id: p for p in partners},
        max_image_bytes=int(args.max_image_mib * 1024 * 1024),
        max_json_bytes=int(args.max_json_kib * 1024),
        ready=lambda url: print(url, flush=True), **lifetime)  # fmt: skip
    return 0


def _oauth_logins(args: argparse.Namespace) -> list[OAuthLogin | None]:
    """Each --partner's OAuth login (client id, secret, user, password), or None for each."""
    from rig.ota.service.oauth import OAuthLogin

    options = ("--client-id", "--client-secret", "--username", "--password")
    given = [getattr(args, o[2:].replace("-", "_")) for o in options]
    if not any(given):
        return [None] * len(args.partner)
    if any(len(values) != len(args.partner) for values in given):
        counts = ", ".join(f"{o} {len(v)}" for o, v in zip(options, given, strict=True))
        raise RigError(f"OAuth sign-in needs one each of {', '.join(options)} per --partner "
                       f"({len(args.partner)}); got {counts}")  # fmt: skip
    return [OAuthLogin(*login) for login in zip(*given, strict=True)]


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _partner(text: str) -> tuple[str, str]:
    partner, _, account = text.partition(":")
    return partner, account or partner


def register(commands: argparse._SubParsersAction) -> None:
    """Add `rig ota` and its verbs to the main parser."""
    ota = commands.add_parser("ota", help="OTA service and client verbs")
    verbs = ota.add_subparsers(dest="verb", required=True, metavar="VERB")

    def server_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--url", help="OTA server base URL (default $RIG_OTA_URL or boards.yaml)")
        sub.add_argument("--partner", default=os.environ.get("RIG_OTA_PARTNER", "lab"))
        sub.add_argument("--account", help="account id for device paths (default: partner)")
        sub.add_argument("--token-env", default="RIG_OTA_TOKEN",
                         help="environment variable holding the bearer token")  # fmt: skip
        for option, what in zip(SIGN_IN_OPTIONS, ("OAuth client id", "OAuth client secret",
                                "user name", "user's password"), strict=True):  # fmt: skip
            sub.add_argument(option, metavar="VAR",
                             help=f"sign in: environment variable holding the {what}")  # fmt: skip
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
        sub.add_argument("-f", "--boards-file", help=argparse.SUPPRESS)

    serve = verbs.add_parser(
        "serve", help="run the local OTA service; prints its URL",
        description="Run the local OTA service: Afero's OTA API under /v1, OAuth sign-in at "
        "/oauth/token, and the OTA Manager web page at / (sign in there with a partner's "
        "--username/--password, or its id and --token).",
        epilog=SERVE_LIMITS,
    )  # fmt: skip
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--data", default=".rig/ota", help="folder for records and images")
    serve.add_argument("--partner", action="append", default=[], metavar="ID[:ACCOUNT]")
    serve.add_argument("--token", action="append", default=[], help="one per --partner")
    serve.add_argument("--max-image-mib", type=float, default=64.0, metavar="MIB",
                       help="largest image an upload may hold (default 64); checked while it "
                       "streams in, nothing over it is written")  # fmt: skip
    serve.add_argument("--max-json-kib", type=float, default=1024.0, metavar="KIB",
                       help="largest JSON request body (default 1024, 1 MiB: 200 times a Profile "
                       "Editor export); checked while it is read")  # fmt: skip
    for option, what in (("--client-id", "OAuth client id"), ("--client-secret", "its secret"),
                         ("--username", "the user signing in (e.g. an email)"),
                         ("--password", "that user's password")):  # fmt: skip
        serve.add_argument(option, action="append", default=[],
                           help=f"sign-in: {what}; one per --partner, or none")  # fmt: skip
    serve.add_argument("--token-lifetime", type=float, metavar="SECONDS",
                       help="how long a signed-in token lasts (default 16200, 4.5 h)")  # fmt: skip
    serve.set_defaults(run=cmd_serve)

    types = verbs.add_parser("types", help="image types: list, add, edit (R1, R2)")
    server_options(types)
    types.add_argument("action", nargs="?", choices=["list", "add", "edit"], default="list")
    types.add_argument("--name")
    types.add_argument("--description")
    types.add_argument("--type", type=int, help="type number 101-200")
    types.set_defaults(run=cmd_types)

    profiles = verbs.add_parser("profiles", help="publish a device type's profile (R3)")
    server_options(profiles)
    profiles.add_argument("action", choices=["publish"])
    profiles.add_argument("device_type")
    profiles.add_argument("source", help="a profile YAML file or a Profile Editor export folder")
    profiles.set_defaults(run=cmd_profiles)

    upload = verbs.add_parser("upload", help="upload an image: binary, repository, record")
    server_options(upload)
    upload.add_argument("file")
    upload.add_argument("--type", type=int, required=True)
    upload.add_argument("--name", required=True)
    upload.add_argument("--description")
    upload.add_argument("--version", required=True)
    upload.add_argument("--tag", action="append", default=[])
    upload.add_argument("--device-type", action="append", default=[])
    upload.set_defaults(run=cmd_upload)

    images = verbs.add_parser("images", help="list images, filtered (R7)")
    server_options(images)
    images.add_argument("--type", type=int)
    images.add_argument("--device-type")
    images.add_argument("--tag", action="append", default=[])
    images.set_defaults(run=cmd_images)

    deploy = verbs.add_parser("deploy", help="push an image to devices (R8)")
    server_options(deploy)
    deploy.add_argument("image", help="image id, or TYPE/VERSION_NUMBER")
    deploy.add_argument("--device", action="append", required=True)
    deploy.set_defaults(run=cmd_deploy)

    status = verbs.add_parser("status", help="deployments and their history")
    server_options(status)
    status.add_argument("deployment", nargs="?")
    status.add_argument("--device")
    status.set_defaults(run=cmd_status)
