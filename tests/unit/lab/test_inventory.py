"""boards.yaml: every mistake is reported with its file, line and field path."""

from pathlib import Path

import pytest

from rig.cli.main import main as rig_main
from rig.lab import inventory

ROOT = Path(__file__).resolve().parents[3]
BROKEN = ROOT / "fixtures" / "boards" / "broken"

# file -> the problems it must produce: (line, field path, words the message must contain)
CASES = {
    "bad_syntax.yaml": [(6, "(yaml)", "expected ',' or ']'")],
    "unknown_key.yaml": [(5, "boards.emulated.powr", "did you mean 'power'?")],
    "misspelt_nested_key.yaml": [(7, "boards.bench-1.power.chanel", "did you mean 'channel'?")],
    "wrong_type.yaml": [(7, "boards.bench-1.power.channel", "expected a whole number, got 'two'")],
    "missing_device_type.yaml": [(4, "boards.emulated.device_type", "required field")],
    "duplicate_board.yaml": [(6, "boards.bench-1", "'bench-1' (first defined at line 2)")],
    "bad_visa_resource.yaml": [(7, "boards.bench-1.power.resource", "not a VISA resource")],
    "unknown_power_model.yaml": [(7, "boards.bench-1.power.model", "did you mean 'rigol-dp832'?")],
    "bad_tag.yaml": [(5, "boards.emulated.tags[1]", "'night ly' may hold only letters")],
    "real_board_without_console.yaml": [(2, "boards.bench-1.console.port", "required for a real")],
    "bad_baud.yaml": [(6, "boards.bench-1.console.baud", "11520 is not a standard baud rate")],
    "out_of_range.yaml": [(7, "boards.bench-1.power.volts", "greater than 0, got -3.3")],
    "bad_link_speed.yaml": [(5, "boards.emulated.link.speed", "'warp' is not one of fast, paced")],
    "no_boards.yaml": [(3, "boards", "no boards")],
    "not_a_mapping.yaml": [(1, "(top level)", "expected a mapping with a 'boards:' section")],
    "remote_ota_without_token.yaml": [(1, "ota.token_env", "environment variable")],
    "remote_ota_partial_signin.yaml": [(1, "ota.password_env", "needs all of client_id_env")],
    "ota_bad_env_name.yaml": [(7, "ota.password_env", "not an environment variable name")],
    "emulated_with_port.yaml": [(5, "boards.emulated.console.port", "comes from the double")],
    "asr_on_real_board.yaml": [(6, "boards.bench-1.asr", "use it on a kind: emulated board")],
    "bad_console_words.yaml": [
        (6, "boards.bench-1.console.banner", "matches empty text"),
        (7, "boards.bench-1.console.version_command", "must be one non-empty line"),
        (8, "boards.bench-1.console.version_pattern", "has no (?P<version>...) group"),
    ],
    "several_mistakes.yaml": [
        (3, "boards.emulated.kind", "not one of real, emulated (did you mean 'emulated'?)"),
        (5, "boards.bench-1.device_type", "required field"),
        (6, "boards.bench-1.device_typ", "did you mean 'device_type'?"),
        (7, "boards.bench-1.console.banner", "not a valid regular expression"),
        (8, "boards.bench-1.power.amps", "expected a number, got 'lots'"),
    ],
}  # fmt: skip


def test_every_broken_sample_has_expectations():
    assert sorted(p.name for p in BROKEN.glob("*.yaml")) == sorted(CASES)
    assert len(CASES) >= 12


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_inventory_names_file_line_and_field(name):
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(BROKEN / name)
    got = [(p.line, p.path, p.message) for p in caught.value.problems]
    assert len(got) == len(CASES[name]), f"expected {len(CASES[name])} problems, got {got}"
    for (line, path, words), (got_line, got_path, got_message) in zip(
        CASES[name], got, strict=True
    ):
        assert (got_line, got_path) == (line, path), got
        assert words in got_message
    first = str(caught.value).splitlines()[0]
    assert first.startswith(f"{BROKEN / name}:{CASES[name][0][0]}: {CASES[name][0][1]}: ")


def test_check_command_prints_every_mistake_and_exits_1(capsys):
    sample = BROKEN / "several_mistakes.yaml"
    assert rig_main(["boards", "--check", "-f", str(sample)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5
    assert all(line.startswith(f"{sample}:") for line in err)
    assert "Traceback" not in "\n".join(err)


def test_check_command_passes_on_the_shipped_inventory(capsys):
    assert rig_main(["boards", "--check", "-f", str(ROOT / "boards.yaml")]) == 0
    assert "no problems" in capsys.readouterr().out


def test_boards_lists_the_inventory(capsys):
    assert rig_main(["boards", "-f", str(ROOT / "boards.yaml")]) == 0
    out = capsys.readouterr().out
    assert "emulated" in out and "blinky" in out and "ci,nightly" in out


def test_missing_file_says_how_to_point_at_one(tmp_path, capsys):
    assert rig_main(["boards", "--check", "-f", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert "no such file" in err and "--boards-file" in err


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "boards.yaml"
    evil.write_text("boards: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(evil)
    assert "not valid YAML" in str(caught.value)


@pytest.fixture
def lab_inventory(tmp_path):
    path = tmp_path / "boards.yaml"
    path.write_text(
        "boards:\n"
        "  emulated: {kind: emulated, device_type: blinky, tags: [ci]}\n"
        "  bench-1:\n"
        "    device_type: blinky\n"
        "    console: {port: /dev/ttyUSB0}\n"
        "    power: {resource: 'TCPIP0::psu-1.lab::5025::SOCKET', model: rigol-dp832}\n"
        "    tags: [nightly, ci]\n"
    )
    return inventory.load(path)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("all", ["emulated", "bench-1"]),
        ("tag:ci", ["emulated", "bench-1"]),
        ("tag:nightly", ["bench-1"]),
        ("bench-1, emulated", ["bench-1", "emulated"]),
        ("emulated,emulated", ["emulated"]),
    ],
)
def test_selectors(lab_inventory, selector, expected):
    assert lab_inventory.select(selector) == expected


@pytest.mark.parametrize(
    ("selector", "words"),
    [
        ("emulatd", "no board named 'emulatd'"),
        ("bench-2", "did you mean 'bench-1'?"),
        ("tag:nigthly", "did you mean 'nightly'?"),
        ("tag:", "names no tag"),
        (" , ", "--board is empty"),
    ],
)
def test_bad_selectors_say_what_to_do(lab_inventory, selector, words):
    with pytest.raises(inventory.InventoryError) as caught:
        lab_inventory.select(selector)
    assert words in str(caught.value)


def test_capabilities_follow_the_inventory(lab_inventory):
    assert {"power", "console", "tap", "faults"} <= lab_inventory.boards["emulated"].capabilities
    bench = lab_inventory.boards["bench-1"].capabilities
    assert "power" in bench and "tap" not in bench and "faults" not in bench


def test_an_emulated_asr_in_front_of_a_real_mcu_reaches_the_double(tmp_path):
    from rig.lab.double_process import spec_for

    path = tmp_path / "boards.yaml"
    path.write_text(
        "boards:\n  ext:\n    kind: emulated\n    device_type: blinky\n"
        "    link: {baud: 38400}\n    asr: {emulated: true, uart: /dev/ttyUSB2}\n"
    )
    board = inventory.load(path).boards["ext"]
    assert "external_mcu" in board.capabilities and "console" not in board.capabilities
    spec = spec_for("ext", board)
    assert (spec.external_mcu, spec.link_baud) == ("/dev/ttyUSB2", 38400)


# -- ota: how rig proves who it is to the OTA server -------------------------------------------

SIGN_IN = """
  client_id_env: LAB_OTA_CLIENT_ID
  client_secret_env: LAB_OTA_CLIENT_SECRET
  username_env: LAB_OTA_USERNAME
  password_env: LAB_OTA_PASSWORD
"""
BOARD = "boards:\n  e: {kind: emulated, device_type: blinky}\n"


def _ota_problems(tmp_path, ota: str) -> list[tuple[int, str, str]]:
    path = tmp_path / "boards.yaml"
    path.write_text(f"ota:{ota}{BOARD}")
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(path)
    return [(p.line, p.path, p.message) for p in caught.value.problems]


def test_a_remote_server_may_be_signed_in_to_instead_of_a_token(tmp_path):
    path = tmp_path / "boards.yaml"
    path.write_text(f"ota:\n  service: https://api.example.io\n  partner: lab{SIGN_IN}{BOARD}")
    ota = inventory.load(path).ota
    assert (ota.client_id_env, ota.password_env) == ("LAB_OTA_CLIENT_ID", "LAB_OTA_PASSWORD")
    assert ota.token_env is None


def test_a_token_and_a_sign_in_together_are_one_mistake(tmp_path):
    ota = f"\n  service: https://api.example.io\n  token_env: LAB_OTA_TOKEN{SIGN_IN}"
    [(line, field, message)] = _ota_problems(tmp_path, ota)
    assert (line, field) == (3, "ota.token_env")
    assert "either token_env" in message and "not both" in message


def test_sign_in_keys_for_the_local_service_are_refused_each_at_its_line(tmp_path):
    problems = _ota_problems(tmp_path, f"\n  service: local{SIGN_IN}")
    assert [(line, field) for line, field, _ in problems] == [
        (3, "ota.client_id_env"), (4, "ota.client_secret_env"),
        (5, "ota.username_env"), (6, "ota.password_env"),
    ]  # fmt: skip
    assert all("makes its own credentials" in message for _, _, message in problems)
