"""The one command line, `nst-jax COMMAND …` (`python -m nst_jax COMMAND …`): `--help` lists every
command, each command's own `--help` works, a first argument that names no command is a run's content
image, and `run --help` reads as sections."""

import os
import subprocess
import sys

import pytest

from conftest import CONTENT, STYLE, call_main, one_error_line, python_env
from nst_jax.__main__ import COMMANDS, main, usage


@pytest.fixture(autouse=True)
def keep_argv(monkeypatch):
    """`main` names the command in sys.argv[0] (for argparse's usage); the test process's is kept."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))


def test_the_ten_commands_of_the_issue_each_with_a_module_and_a_line():
    assert set(COMMANDS) == {"run", "video", "sweep", "studio", "paper", "dissect", "tune", "convert", "report",
                             "gallery"}
    assert all(module.startswith("nst_jax.") and what for module, what in COMMANDS.values())


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["help"]])
def test_help_lists_every_command_with_what_it_does(argv, capsys):
    code, out, err = call_main(main, argv, capsys)
    assert code == 0 and err == []
    assert out.strip() == usage()
    lines = out.splitlines()
    for name, (_, what) in COMMANDS.items():
        assert any(line.split()[:1] == [name] and line.endswith(what) for line in lines), name
    assert "nst-jax CONTENT STYLE" in out and "nst-jax COMMAND --help" in out


def test_no_arguments_shows_the_commands_and_fails(capsys):
    code, out, _ = call_main(main, [], capsys)
    assert code == 2 and "nst-jax COMMAND" in out


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_shows_its_own_help(command, capsys):
    code, out, err = call_main(main, [command, "--help"], capsys)
    assert code == 0, err
    assert out.startswith("usage: ") and "-h, --help" in out


def test_a_command_is_shown_under_the_name_it_was_called_by(capsys):
    _, out, _ = call_main(main, ["tune", "--help"], capsys)
    assert out.startswith("usage: nst-jax tune")


def test_a_first_argument_that_names_no_command_is_a_runs_content_image(capsys, tmp_path):
    line = one_error_line(main, ["missing.png", STYLE, "--size", "32", "-o", tmp_path / "out.png"], capsys)
    assert "missing.png" in line and "not found" in line
    assert not (tmp_path / "out.png").exists()


def test_run_and_a_bare_content_image_parse_the_same(capsys, tmp_path):
    """`nst-jax run A B …` and `nst-jax A B …` reach the same run: both plan it (--plan) the same way."""
    argv = [CONTENT, STYLE, "--size", "32", "--style-layers", "relu1_1", "--content-layers", "relu1_1",
            "--plan", "1x1GB", "-o", tmp_path / "out.png"]
    bare = call_main(main, argv, capsys)
    named = call_main(main, ["run", *argv], capsys)
    assert bare[0] == named[0] == 0
    assert bare[1] == named[1] and "memory plan" in bare[1]


def test_an_unknown_option_of_a_command_is_one_error_line(capsys):
    line = one_error_line(main, ["tune", "--no-such-option"], capsys)
    assert "--no-such-option" in line


def test_run_help_reads_as_sections():
    done = subprocess.run([sys.executable, "-m", "nst_jax.run", "--help"], capture_output=True, text=True,
                          env=python_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    titles = [line[:-1] for line in done.stdout.splitlines() if line.endswith(":") and not line.startswith(" ")]
    for section in ("images and layers", "weights", "optimiser", "output and resume", "memory and devices", "speed"):
        assert section in titles, (section, titles)
    # each section holds options: the line after its title is an option
    lines = done.stdout.splitlines()
    for section in ("weights", "speed"):
        assert lines[lines.index(section + ":") + 1].lstrip().startswith("--")


def test_a_clone_named_nst_jax_in_the_working_folder_does_not_shadow_the_package(tmp_path):
    """`git clone` names the folder nst_jax: from its parent, `python -m nst_jax.run` must still import the
    installed package, not the clone's root as a namespace package (its `weights/` once shadowed a module)."""
    clone = tmp_path / "nst_jax"
    for name in ("nst_jax", "weights", "docs", "bench", "tests"):
        (clone / name).mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = "import nst_jax, nst_jax.run; print(nst_jax.__file__, nst_jax.__version__)"
    installed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                               cwd="/", timeout=120)
    if installed.returncode != 0:
        pytest.skip("nst_jax is not installed in this Python (pip install -e . puts it there)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == installed.stdout and not done.stdout.startswith("None")
    run_help = subprocess.run([sys.executable, "-m", "nst_jax.run", "--help"], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)
    assert run_help.returncode == 0 and run_help.stdout.startswith("usage: nst-jax run"), run_help.stderr
