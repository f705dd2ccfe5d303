"""The command line as a tree, walked: an option several commands share is one declaration (same help, type
and default wherever it appears), the node has the Model and backend section `infer` has, and no hidden
alias is left while bcdeploy has no outside users (CHANGELOG.md)."""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner

from bcdeploy.cli import cli
from bcdeploy.cli._options import backend_option_names, flag

# Options whose meaning is the same in every runtime command that has them; each must be declared once.
# (export, build-engine, predict and test have their own --precision and --device: of the build, of torch.)
RUNTIME_COMMANDS = {"infer", "serve", "gateway", "dicom info", "dicom list"}
SHARED = {"--max-pixels", "--connect-timeout", "--replicas", "--cpus-per-replica", "--gpus-per-replica", "--model",
          "--frame", "--stow", "--modalities", "--batch-size", *(flag(name) for name in backend_option_names())}


def _commands(command: click.Command = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), command


def _declarations() -> dict[str, dict[tuple, list[str]]]:
    """Option spelling -> (help, type, default, hidden) -> the commands declaring it so."""
    found: dict[str, dict[tuple, list[str]]] = {}
    for name, command in _commands():
        if name not in RUNTIME_COMMANDS:
            continue
        for param in command.params:
            if isinstance(param, click.Option):
                for spelling in param.opts:
                    key = (param.help, repr(sorted(param.type.to_info_dict().items())), repr(param.default), param.hidden)
                    found.setdefault(spelling, {}).setdefault(key, []).append(name)
    return found


def test_the_walk_sees_every_command() -> None:
    names = {name for name, _ in _commands()}
    assert {"infer", "predict", "serve", "gateway", "export", "dicom info", "bench parity"} | RUNTIME_COMMANDS <= names


def test_an_option_shared_by_commands_is_declared_once() -> None:
    declarations = _declarations()
    assert "--max-pixels" in declarations and len(sum(declarations["--max-pixels"].values(), [])) >= 4
    differing = {spelling: sorted(map(tuple, kinds.values())) for spelling, kinds in declarations.items()
                 if spelling in SHARED and len(kinds) > 1}
    assert differing == {}, f"declared more than once, differently: {differing}"


def test_no_hidden_alias_is_left() -> None:
    hidden = [f"{name} {spelling}" for name, command in _commands() for param in command.params
              if isinstance(param, click.Option) and param.hidden for spelling in param.opts]
    assert hidden == []


def test_the_node_has_the_model_and_backend_section() -> None:
    text = CliRunner().invoke(cli, ["gateway", "--help"], terminal_width=200).output
    section = text.split("Model and backend:")[1].split("\n\n")[0]
    assert "--model, --engine" in section and "--threads" in section and "--hint" in section, text


def test_a_backend_option_the_node_model_does_not_take_is_one_line(tmp_path) -> None:
    model = tmp_path / "model.trt"
    model.write_bytes(b"not an engine")
    result = CliRunner().invoke(cli, ["gateway", "--model", str(model), "--out", str(tmp_path / "node"),
                                      "--send-to", "PACS@127.0.0.1:104", "--threads", "2"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and "--threads" in result.output and result.output.count("\n") == 1


def test_every_option_of_infer_serve_gateway_and_predict_is_parsed_by_one_section_class() -> None:
    """One class per help section declares and parses (cli/_sections.py): an option outside every class
    would be a flat parameter again (the body also refuses leftovers: _sections.parsed_all)."""
    from bcdeploy.cli._sections import option_groups

    owners: dict[str, list[str]] = {}
    for group in option_groups():
        for name in group.names():
            owners.setdefault(name, []).append(group.__name__)
    for path, command in _commands():
        if path not in {"infer", "serve", "gateway", "predict"}:
            continue
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.name in owners, f"{path} {param.opts}: no section class owns it"
