"""``evaluate`` and ``mine`` take the same OpenSearch options and turn them into the same backend options."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from sparse_tune.cli.__main__ import build_parser, main
from sparse_tune.cli.opensearch_args import GROUP_TITLE, backend_options
from sparse_tune.index.opensearch_config import OpenSearchConfig

TINY = Path(__file__).resolve().parent / "data" / "tiny_beir"
REQUIRED = {"evaluate": ["--model", "m", "--dataset", "d"], "mine": ["--dataset", "d", "--output", "o.jsonl"]}
ALL_OPTIONS = [
    "--backend", "opensearch",
    "--opensearch-url", "https://os.example:9200",
    "--opensearch-user", "alice",
    "--opensearch-password", "pw",
    "--opensearch-ca-certs", "/etc/ca.pem",
    "--insecure",
    "--sparse-query", "neural_sparse",
    "--overwrite-index",
    "--reindex",
]  # fmt: skip


def _parse(verb: str, options: list[str]) -> argparse.Namespace:
    return build_parser().parse_args([verb, *REQUIRED[verb], *options])


def _subparser(verb: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[verb]


@pytest.mark.parametrize("verb", ["evaluate", "mine"])
def test_every_opensearch_option_reaches_the_backend(verb):
    args = _parse(verb, ALL_OPTIONS)
    assert backend_options(args) == {
        "url": "https://os.example:9200",
        "user": "alice",
        "password": "pw",
        "ca_certs": "/etc/ca.pem",
        "verify_certs": False,
        "sparse_query": "neural_sparse",
        "overwrite_index": True,
    }
    assert args.reindex is True
    config = OpenSearchConfig.from_options(**backend_options(args))
    assert (config.user, config.password, config.ca_certs, config.sparse_query, config.overwrite_index) == (
        "alice", "pw", "/etc/ca.pem", "neural_sparse", True,
    )  # fmt: skip


def test_both_verbs_define_the_same_group_and_defaults():
    def group(verb: str) -> dict[str, object]:
        [g] = [g for g in _subparser(verb)._action_groups if g.title == GROUP_TITLE]
        return {a.option_strings[0]: (a.default, a.choices) for a in g._group_actions}

    assert group("evaluate") == group("mine")
    assert set(group("mine")) == {
        "--opensearch-url", "--opensearch-user", "--opensearch-password", "--opensearch-ca-certs", "--insecure",
        "--overwrite-index", "--sparse-query",
    }  # fmt: skip
    for verb in ("evaluate", "mine"):
        assert _parse(verb, ["--backend", "opensearch"]).reindex is False  # reuse is the default in both
        assert backend_options(_parse(verb, ["--backend", "opensearch"])) == {"sparse_query": "rank_feature"}
        assert backend_options(_parse(verb, ALL_OPTIONS[2:])) == {}  # embedded: no server options


def test_mine_reuse_index_is_a_deprecated_no_op(tmp_path, caplog):
    out = tmp_path / "mined.jsonl"
    args = ["mine", "--dataset", str(TINY), "--split", "test", "--negatives", "1", "--range", "1-5"]
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--output", str(out), "--reuse-index"]) == 0
    assert [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()] == [
        "--reuse-index is deprecated: a complete index is reused by default; --reindex rebuilds it"
    ]
    assert out.read_text() and "--reuse-index" not in _subparser("mine").format_help()


def test_export_takes_ann_parameters_but_not_search_modes(capsys):
    from sparse_tune.cli.__main__ import build_parser

    parser = build_parser()
    base = ["export", "--model", "m", "--format", "opensearch", "--output", "o"]
    args = parser.parse_args([*base, "--seismic-n-postings", "4000", "--two-phase-prune-ratio", "0.4"])
    assert (args.seismic_n_postings, args.two_phase_prune_ratio) == (4000, 0.4)
    for flag in (
        "--two-phase",
        "--compare-exact",
        "--sparse-index=seismic",
        "--sparse-embedding-format=WORD",
    ):
        with pytest.raises(SystemExit) as exc:  # chooses how a search runs: nothing to export
            parser.parse_args([*base, flag])
        assert exc.value.code == 2
        err = capsys.readouterr().err  # "unrecognized arguments" (or "ambiguous option" for a prefix)
        assert "error:" in err and flag.split("=")[0] in err
