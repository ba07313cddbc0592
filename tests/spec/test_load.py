"""Spec validation: every kind of bad input is refused with the file, the field path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from mor.spec import SpecError, TrainJobSpec, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
kind: train
name: quick
base_model: {builtin: tiny-llama}
data:
  sources: [{synthetic: {tools: 12, trajectories: 100, seed: 3}}]
mor:
  rank: 8
  roles:
    reasoner: {routed: 4, top_k: 3}
    executor: {routed: 4, top_k: 3}
    summarizer: {routed: 3, top_k: 2}
train: {epochs: 1, workers: 2}
register: {model_name: mor-agent, alias: candidate}
eval: {suites: [synthetic]}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_good_spec_parses_with_values(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, GOOD))
    assert isinstance(spec, TrainJobSpec)
    assert spec.mor.rank == 8
    assert list(spec.mor.roles) == ["reasoner", "executor", "summarizer"]
    assert spec.mor.roles["summarizer"].top_k == 2
    assert spec.register_ is not None and spec.register_.model_name == "mor-agent"
    assert spec.data.sources[0].synthetic.seed == 3


def test_defaults_are_the_paper_setting() -> None:
    spec = parse_spec("kind: train\nname: a\nbase_model: {hub: org/model}\ndata: {sources: [{synthetic: {}}]}\n")
    assert spec.mor.rank == 16
    assert spec.mor.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert {name: (r.routed, r.top_k, r.shared) for name, r in spec.mor.roles.items()} == {
        "reasoner": (4, 3, True),
        "executor": (4, 3, True),
        "summarizer": (3, 2, True),
    }
    assert spec.train.lr == pytest.approx(5e-5)


def test_every_spec_under_jobs_is_valid() -> None:
    specs = sorted((REPO / "jobs").glob("[!.]*.yaml"))
    assert specs, "jobs/ holds example specs"
    for path in specs:
        load_spec(path)
        assert path.read_text().startswith("#"), f"{path.name} starts with a comment giving its command"


@pytest.mark.parametrize(
    ("replace", "by", "pattern"),
    [
        (
            "executor: {routed: 4, top_k: 3}",
            "executor: {routed: 4, top_k: 6}",
            r"spec\.yaml: mor\.roles\.executor\.top_k: got 6, must be ≤ routed \(4\)",
        ),
        ("workers: 2", "workers: 0", r"train\.workers: got 0: input should be greater than or equal to 1"),
        ("epochs: 1", "lerning_rate: 1", r"train\.lerning_rate: unknown key 'lerning_rate'"),
        ("rank: 8", "rank: eight", r"mor\.rank: got 'eight': input should be a valid integer"),
        ("rank: 8", "rank: 0", r"mor\.rank: got 0, must be > 0; e.g. rank: 16"),
        ("name: quick\n", "", r"name: missing; this field is required"),
        ("{builtin: tiny-llama}", "{path: ./no/such/dir}", r"base_model\.path: got 'no/such/dir', no such directory"),
        ("{builtin: tiny-llama}", "{builtin: gpt-5}", r"base_model\.builtin: got 'gpt-5'"),
        ("{builtin: tiny-llama}", "{weights: x}", r"base_model: got \{'weights': 'x'\}; give exactly one of"),
        ("suites: [synthetic]", "suites: [nope]", r"eval\.suites: got \['nope'\]; known suites"),
        (
            "suites: [synthetic]",
            "suites: [synthetic], batch_size: 0",
            r"eval\.batch_size: got 0: input should be greater than or equal to 1",
        ),
        ("kind: train", "kind: trian", r"kind: got 'trian'; must be one of train, data"),
    ],
)
def test_bad_values_name_file_and_field(tmp_path: Path, replace: str, by: str, pattern: str) -> None:
    assert replace in GOOD
    with pytest.raises(SpecError, match=pattern) as info:
        load_spec(_write(tmp_path, GOOD.replace(replace, by)))
    assert all(line.startswith(str(tmp_path / "spec.yaml")) for line in str(info.value).splitlines())


def test_all_problems_listed_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("rank: 8", "rank: -1").replace("workers: 2", "workers: 0").replace("epochs: 1", "epoks: 1")
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, text))
    fields = sorted(problem.split(":")[0] for problem in info.value.problems)
    assert fields == ["mor.rank", "train.epoks", "train.workers"]


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"spec\.yaml: line 4, column 1: YAML syntax error: expected"):
        load_spec(_write(tmp_path, "kind: train\nname: a\nbase_model: {builtin: tiny-llama\n"))


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="a job spec is a YAML mapping"):
        load_spec(_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "absent.yaml")


def test_relative_base_path_resolves_against_spec_dir(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    spec = load_spec(_write(tmp_path, GOOD.replace("{builtin: tiny-llama}", "{path: ./ckpt}")))
    assert spec.base_model.path == (tmp_path / "ckpt").resolve()


def test_roles_are_data() -> None:
    text = GOOD.replace(
        "    reasoner: {routed: 4, top_k: 3}\n"
        "    executor: {routed: 4, top_k: 3}\n"
        "    summarizer: {routed: 3, top_k: 2}\n",
        "    planner: {routed: 2, top_k: 1}\n    caller: {routed: 0, top_k: 0}\n",
    )
    spec = parse_spec(text)
    assert list(spec.mor.roles) == ["planner", "caller"]
    with pytest.raises(SpecError, match=r"mor\.roles\.caller: routed is 0 and shared is false, so the role has no"):
        parse_spec(text.replace("caller: {routed: 0, top_k: 0}", "caller: {routed: 0, top_k: 0, shared: false}"))


def test_field_reference_is_current() -> None:
    from mor.spec.reference import field_reference

    assert (REPO / "jobs" / "README.md").read_text() == field_reference(), (
        "jobs/README.md is stale: run `python -m mor.spec.reference > jobs/README.md`"
    )
