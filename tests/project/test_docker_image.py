"""The image the compose services run: what the Dockerfile prepares, parsed (no Docker engine here)."""

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined, as Docker reads them."""
    lines = [
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = (line.strip().partition(" ") for line in text.splitlines() if line.strip())
    return [(word.upper(), rest.strip()) for word, _, rest in pairs]


def _prepared_for_the_runtime_user() -> tuple[str, set[str], set[str]]:
    """The last USER, and the directories RUN creates and chowns to that user before switching to it."""
    instructions = _dockerfile()
    user_at = max(i for i, (word, _) in enumerate(instructions) if word == "USER")
    user = instructions[user_at][1].split(":")[0]
    created: set[str] = set()
    owned: set[str] = set()
    for word, arguments in instructions[:user_at]:
        if word != "RUN":
            continue
        for command in re.split(r"&&|\|\||;", arguments):
            argv = shlex.split(command)
            operands = [arg for arg in argv[1:] if not arg.startswith("-")]
            if argv[:1] == ["mkdir"]:
                created.update(operands)
            elif argv[:1] == ["chown"] and operands and operands[0].split(":")[0] == user:
                owned.update(operands[1:])
    return user, created, owned


def _named_volume_targets(service: dict, named: set[str]) -> set[str]:
    targets = set()
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            source, _, rest = entry.partition(":")
            target = rest.split(":")[0]
        else:
            source, target = entry.get("source", ""), entry["target"]
        if source in named:
            targets.add(target)
    return targets


def test_every_named_volume_of_the_app_services_is_a_directory_the_runtime_user_owns():
    # Docker copies the image's mount point, owner included, into a new named volume; a mount
    # point missing from the image becomes a root-owned directory the app cannot write to.
    compose = _compose()
    named = set(compose.get("volumes") or {})
    apps = [service for service in compose["services"].values() if service.get("build") == "."]
    targets = set().union(*(_named_volume_targets(service, named) for service in apps))
    assert apps[0]["environment"]["ARTIFACTS_DIR"] in targets

    user, created, owned = _prepared_for_the_runtime_user()

    assert user not in {"root", "0"}
    assert sorted(targets - created) == [], "mount points the Dockerfile does not create"
    assert sorted(targets - owned) == [], f"mount points not chowned to {user} before USER"


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception, regex) per .dockerignore line, with Docker's syntax: `**` any depth."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        rules.append((negated, re.compile(regex + r"\Z")))
    return rules


def _ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    # As Docker does: a rule matching a parent directory covers everything under it; the last
    # matching rule wins.
    parts = path.split("/")
    paths = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for negated, regex in rules:
        if any(regex.match(candidate) for candidate in paths):
            ignored = not negated
    return ignored


def test_dev_data_secrets_and_the_venv_stay_out_of_the_build_context():
    rules = _dockerignore_rules()
    for path in (
        "var/db.sqlite3",
        "var/secret_key",
        "var/artifacts/BTCUSDT/v1.onnx",
        ".env",
        ".env.production",
        ".venv/bin/python",
        ".git/config",
        "markets/__pycache__/models.cpython-311.pyc",
        "__pycache__/x.pyc",
        ".pytest_cache/v/cache/nodeids",
    ):
        assert _ignored(path, rules), f"{path} would be copied into the image"


def test_what_the_image_needs_is_still_copied():
    rules = _dockerignore_rules()
    for path in (
        "manage.py",
        "requirements.txt",
        "makeusrich/settings.py",
        "templates/base.html",
        "static/css/site.css",
        "markets/data/btcusdt_1h_2021-03-06_2022-03-06.csv.gz",  # the optional seed in OPERATIONS.md
    ):
        assert (ROOT / path).exists(), path
        assert not _ignored(path, rules), f"{path} is needed in the image"
