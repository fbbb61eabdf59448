"""The command line generated from Config's metadata: every field has its flag, help and parser, a
parsed command line reads back into the Config it names, and bad values are refused by argparse."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from nst_jax.transfer.config import FIELDS, Config, flag_of, with_preset
from nst_jax.transfer.options import add_common_arguments, add_run_arguments, config_from_args, parse_floats, parse_ints


def _parser():
    p = argparse.ArgumentParser()
    add_run_arguments(p)
    return p


def test_every_field_is_an_option_with_help():
    p = _parser()
    spelled = {a.dest: a for a in p._actions}
    for name, f in FIELDS.items():
        assert name in spelled, name
        assert spelled[name].help and f.metadata["help"] in spelled[name].help
        if not f.metadata["positional"]:
            assert flag_of(name) in spelled[name].option_strings


def test_a_command_line_reads_back_into_its_config():
    args = _parser().parse_args(["c.png", "s.png", "--size", "64", "--style-weight", "5",
                                 "--style-layers", "relu1_1,relu2_1", "--scales", "32,64", "--keep-checkpoint"])
    cfg = config_from_args(args)
    assert cfg == with_preset("default", content="c.png", styles=("s.png",), size=64, style_weight=5.0,
                              style_layers=("relu1_1", "relu2_1"), scales=(32, 64), keep_checkpoint=True)
    untouched = {f.name for f in dataclasses.fields(Config)} - {"content", "styles", "size", "style_weight",
                                                                 "style_layers", "scales", "keep_checkpoint"}
    default = with_preset("default", content="c.png", styles=("s.png",))
    assert all(getattr(cfg, n) == getattr(default, n) for n in untouched)


def test_list_values_are_parsed_or_refused():
    assert parse_floats("1, 2.5,") == (1.0, 2.5) and parse_ints("3,4") == (3, 4)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_ints("3,x")
    with pytest.raises(SystemExit):
        _parser().parse_args(["c.png", "s.png", "--scales", "a,b"])


def test_the_common_flags_of_the_other_tools():
    p = argparse.ArgumentParser()
    add_common_arguments(p, size=96, iterations=7)
    args = p.parse_args([])
    assert (args.size, args.iterations, args.seed) == (96, 7, 0) and len(args.styles) == 1
