"""Every view on a seeded database: widgets interact, the figures shown are the database's."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from tests.helpers import sql_rows
from tests.seeded import (
    API_VARIANT,
    BASE,
    CORRECT,
    DATA_MIX,
    GOLD,
    PRETRAINED,
    QA_TASK,
    STEPS,
    SUM_TASK,
    api_run_usage,
)

LATEST = """SELECT v.name, m.value, m.ci_low, m.ci_high FROM metrics m
JOIN eval_runs r ON r.id = m.eval_run_id JOIN model_variants v ON v.id = r.variant_id
JOIN tasks t ON t.id = r.task_id
WHERE m.name = :metric AND t.name = :task AND r.id IN (
  SELECT max(id) FROM eval_runs WHERE status = 'completed' GROUP BY variant_id, task_id)"""


def latest(url: str, metric: str, task: str) -> dict[str, tuple[float, float, float]]:
    return {name: rest for name, *rest in sql_rows(url, LATEST, metric=metric, task=task)}


class Trace:
    """A plotly trace as sent to the browser, with numeric arrays unpacked from base64."""

    def __init__(self, trace: dict):
        self.trace = trace

    def __getattr__(self, name: str):
        value = self.trace[name]
        if isinstance(value, dict) and "bdata" in value:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            return array.tolist()
        return Trace(value) if isinstance(value, dict) else value


def traces(app) -> list[Trace]:
    """The first trace of every plotly chart on the page."""
    return [Trace(json.loads(chart.proto.spec)["data"][0]) for chart in app.get("plotly_chart")]


def errors(app) -> list[str]:
    return [element.value for element in app.error]


def test_leaderboard_shows_the_latest_measured_and_the_published(seeded, open_app):
    _, url = seeded
    app = open_app(url)
    assert not errors(app)
    pivot = app.dataframe[0].value
    measured = pivot[pivot["source"] == "measured"].set_index("variant")[QA_TASK]
    expected = latest(url, "acc", QA_TASK)
    assert measured.to_dict() == {name: values[0] for name, values in expected.items()}
    assert measured[BASE] == pytest.approx(5 / 12)  # the latest base run, not the older 3/12
    published = pivot[pivot["source"] == "published"]
    assert published["reference"].str.len().min() > 10  # each cites its paper or card
    reference_count = sql_rows(url, "SELECT count(*) FROM reference_results WHERE metric='acc'")
    assert len(published) > 0
    long = app.dataframe[1].value
    assert (long["source"] != "measured").sum() == reference_count[0][0]
    rows = long[long["source"] == "measured"].set_index("variant")
    for name, (value, low, high) in expected.items():
        assert (rows.loc[name, "value"], rows.loc[name, "ci_low"], rows.loc[name, "ci_high"]) == (
            value,
            low,
            high,
        )


def test_leaderboard_filters_and_metric(seeded, open_app):
    _, url = seeded
    app = open_app(url)
    app.multiselect(key="lb_family").select("tiny-medical-ckpt").run()
    assert set(app.dataframe[1].value["variant"]) == {PRETRAINED}
    app.multiselect(key="lb_family").unselect("tiny-medical-ckpt").run()
    app.checkbox(key="lb_published").uncheck().run()
    assert set(app.dataframe[1].value["source"]) == {"measured"}
    assert set(app.dataframe[1].value["variant"]) == {BASE, PRETRAINED}
    app.selectbox(key="lb_metric").select("rouge_l").run()
    pivot = app.dataframe[0].value.set_index("variant")
    expected = latest(url, "rouge_l", SUM_TASK)
    assert pivot[SUM_TASK].to_dict() == {name: values[0] for name, values in expected.items()}


def test_leaderboard_size_filter(seeded, open_app):
    _, url = seeded
    app = open_app(url)
    size = app.select_slider(key="lb_size")
    sizes = sorted(float(option) for option in size.options)
    size.set_range(sizes[1], sizes[-1]).run()  # everything but the tiny models
    long = app.dataframe[1].value
    assert not long.empty and long["params_b"].min() == sizes[1]
    assert not set(long["variant"]) & {BASE, PRETRAINED}


def test_task_view_bars_and_items(seeded, open_app):
    _, url = seeded
    app = open_app(url, "task.py")
    app.selectbox(key="task_task").select(QA_TASK).run()
    bar = traces(app)[0]
    expected = latest(url, "acc", QA_TASK)
    values = dict(zip(bar.x, bar.y, strict=True))
    assert values == {f"{name} (loglik, 0-shot)": v[0] for name, v in expected.items()}
    errors_up = dict(zip(bar.x, bar.error_y.array, strict=True))
    value, _, high = expected[BASE]
    assert errors_up[f"{BASE} (loglik, 0-shot)"] == pytest.approx(high - value)
    run = app.selectbox(key="task_run")
    run.select(next(o for o in run.options if o.startswith(PRETRAINED))).run()
    items = app.dataframe[1].value
    assert list(items["gold"]) == GOLD
    assert list(items["correct"].astype(bool)) == [bool(c) for c in CORRECT[PRETRAINED]]


def test_task_view_summarization_defaults_to_rouge_l(seeded, open_app):
    _, url = seeded
    app = open_app(url, "task.py")
    app.selectbox(key="task_task").select(SUM_TASK).run()
    assert app.selectbox(key=f"task_metric_{SUM_TASK}").value == "rouge_l"
    scores = app.dataframe[0].value.set_index("variant")["value"].to_dict()
    assert scores == {name: v[0] for name, v in latest(url, "rouge_l", SUM_TASK).items()}


def test_head_to_head_paired_figures_and_differing_items(seeded, open_app):
    _, url = seeded
    app = open_app(url, "head_to_head.py")
    app.selectbox(key="h2h_task").select(QA_TASK).run()
    app.selectbox(key="h2h_a").select(PRETRAINED).run()
    app.selectbox(key="h2h_b").select(BASE).run()
    shown = {metric.label: metric.value for metric in app.metric}
    assert shown[f"A: {PRETRAINED}"] == f"{8 / 12:.4f}"
    assert shown[f"B: {BASE}"] == f"{5 / 12:.4f}"
    assert shown["A wins / B wins / ties"] == "5 / 2 / 5"
    assert shown["p (exact McNemar)"] == "0.4531"  # 2 * (1 + 7 + 21) / 2^7
    differing = app.dataframe[0].value
    assert list(differing["item_id"]) == ["q03", "q04", "q05", "q06", "q07", "q08", "q10"]
    assert list(differing["A acc"]) == [0, 1, 1, 1, 1, 1, 0]


def test_head_to_head_summarization_scores(seeded, open_app):
    _, url = seeded
    app = open_app(url, "head_to_head.py")
    app.selectbox(key="h2h_task").select(SUM_TASK).run()
    metric = app.selectbox(key=f"h2h_metric_{SUM_TASK}")
    assert metric.options == ["rouge_l", "bertscore_f1"]
    metric.select("bertscore_f1").run()
    shown = {m.label: m.value for m in app.metric}
    assert shown["p (exact sign test)"] == "0.625"  # 2 * (1 + 4) / 2^4
    assert shown[f"A: {BASE}"] == "0.8050"  # base is first by name; mean of its four F1s
    assert shown["A wins / B wins / ties"] == "1 / 3 / 0"


def test_training_view_curves_mix_and_lineage(seeded, open_app):
    _, url = seeded
    app = open_app(url, "training.py")
    assert not errors(app)
    loss, lr, speed = traces(app)
    assert list(loss.x) == [step.step for step in STEPS]
    assert list(loss.y) == [step.loss for step in STEPS]
    assert list(lr.y) == [step.lr for step in STEPS]
    assert list(speed.y) == [step.tokens_per_s for step in STEPS]
    mix = app.dataframe[1].value.set_index("source")
    assert mix["share"].to_dict() == {name: share["share"] for name, share in DATA_MIX.items()}
    tree = app.dataframe[2].value
    assert list(tree["depth"]) == [0, 1]
    assert list(tree["node"]) == [BASE, f"└── {PRETRAINED}"]
    assert tree["produced_by"].iloc[1] == "pretrain tiny-demo (training run 1)"
    scores = latest(url, "acc", QA_TASK)
    column = f"{QA_TASK} (loglik, 0-shot)"
    assert list(tree[column]) == [scores[BASE][0], scores[PRETRAINED][0]]


def test_history_over_time_and_checkpoints(seeded, open_app):
    _, url = seeded
    app = open_app(url, "history.py")
    app.selectbox(key="hist_task").select(QA_TASK).run()
    app.selectbox(key="hist_variant").select(BASE).run()
    runs = app.dataframe[0].value
    stored = sql_rows(
        url,
        "SELECT m.value FROM metrics m JOIN eval_runs r ON r.id = m.eval_run_id "
        "JOIN model_variants v ON v.id = r.variant_id JOIN tasks t ON t.id = r.task_id "
        "WHERE v.name = :v AND t.name = :t AND m.name = 'acc' ORDER BY r.id",
        v=BASE,
        t=QA_TASK,
    )
    assert list(runs["value"]) == [row[0] for row in stored] == [3 / 12, 5 / 12]
    checkpoints = app.dataframe[1].value
    assert list(checkpoints[f"{QA_TASK} (loglik, 0-shot)"]) == [5 / 12, 8 / 12]


def test_sql_view_runs_an_example_and_offers_csv(seeded, open_app):
    _, url = seeded
    app = open_app(url, "sql.py")
    example = app.selectbox(key="sql_example")
    title = next(option for option in example.options if option.startswith("Leaderboard"))
    example.select(title).run()
    app.button(key="sql_run").click().run()
    assert not errors(app)
    result = app.dataframe[0].value
    assert sorted(zip(result["variant"], result["acc"], strict=True)) == sorted(
        (name, round(v[0], 4)) for name, v in latest(url, "acc", QA_TASK).items()
    )
    assert app.get("download_button")


def test_sql_view_refuses_writes(seeded, open_app):
    _, url = seeded
    before = sql_rows(url, "SELECT count(*) FROM metrics")
    app = open_app(url, "sql.py")
    app.selectbox(key="sql_example").select("(your own query)").run()
    app.text_area(key="sql_(your own query)").input("DELETE FROM metrics").run()
    app.button(key="sql_run").click().run()
    assert errors(app) and errors(app)[0].startswith("Refused: DELETE statements are refused")
    assert sql_rows(url, "SELECT count(*) FROM metrics") == before


def test_registry_view(seeded, open_app):
    _, url = seeded
    app = open_app(url, "registry.py")
    families, variants, recipes, templates = (frame.value for frame in app.dataframe)
    assert len(families) == sql_rows(url, "SELECT count(*) FROM model_families")[0][0]
    assert len(variants) == sql_rows(url, "SELECT count(*) FROM model_variants")[0][0]
    assert variants.set_index("variant").loc[PRETRAINED, "parent"] == BASE
    used = sql_rows(url, "SELECT count(DISTINCT chat_template) FROM model_variants")[0][0]
    assert len(templates) == used
    trained = "SELECT count(*) FROM model_variants WHERE json_array_length(spec, '$.recipes') > 0"
    assert len(recipes) == sql_rows(url, trained)[0][0] > 0


def test_refresh_shows_new_results(seeded, tmp_path, open_app):
    import shutil

    from medarena.store import Store
    from tests.seeded import add_qa_run

    root, _ = seeded
    shutil.copy(root / "seeded.db", tmp_path / "copy.db")
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    app = open_app(url)

    def shown() -> float:
        pivot = app.dataframe[0].value
        return pivot[pivot["source"] == "measured"].set_index("variant").loc[BASE, QA_TASK]

    assert shown() == pytest.approx(5 / 12)
    with Store(url) as store:
        add_qa_run(store, BASE, [1] * 12)  # a newer run of base: every item right
    app.run()
    assert shown() == pytest.approx(5 / 12)  # cached until asked
    app.button(key="refresh").click().run()
    assert shown() == 1.0


def test_head_to_head_on_different_item_sets_says_so(seeded, tmp_path, open_app):
    import shutil

    from medarena.store import Store
    from tests.seeded import add_qa_run

    root, _ = seeded
    shutil.copy(root / "seeded.db", tmp_path / "copy.db")
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    with Store(url) as store:
        add_qa_run(store, PRETRAINED, CORRECT[PRETRAINED][:10])  # a newer run on 10 items
    app = open_app(url, "head_to_head.py")
    app.selectbox(key="h2h_task").select(QA_TASK).run()
    (warning,) = [w.value for w in app.warning]
    # A is base (first by name, 12 items), B the pretrained model's new 10-item run
    assert warning.startswith("Compared on the 10 items both runs scored: 2 only in A's run")
    assert ", 0 only in B's run" in warning
    assert {m.label: m.value for m in app.metric}["Items compared"] == "10"


def test_head_to_head_splits_clean_and_contaminated_items(seeded, tmp_path, open_app):
    import shutil

    from medarena.results import ContaminationCheck, ItemContamination
    from medarena.store import Store

    root, _ = seeded
    shutil.copy(root / "seeded.db", tmp_path / "copy.db")
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    flagged = {"q04", "q05", "q06", "q07"}
    check = ContaminationCheck(
        None, "k" * 64, PRETRAINED, [PRETRAINED], QA_TASK, "d" * 64, [], "word-ngram-overlap-1",
        13, 0.0, "test", 12, 4, 1,
    )  # fmt: skip
    items = [
        ItemContamination(f"q{i:02d}", 20, 5, 17, f"q{i:02d}" in flagged, []) for i in range(12)
    ]
    with Store(url) as store:
        store.add_contamination_check(check, items)
    app = open_app(url, "head_to_head.py")
    app.selectbox(key="h2h_task").select(QA_TASK).run()
    app.selectbox(key="h2h_a").select(PRETRAINED).run()
    app.selectbox(key="h2h_b").select(BASE).run()
    split = app.dataframe[0].value  # before the differing items
    assert list(split["items"]) == ["clean", "contaminated"] and list(split["n"]) == [8, 4]
    assert list(split["A"]) == [4 / 8, 1.0] and list(split["B"]) == [5 / 8, 0.0]
    caption = " ".join(c.value for c in app.caption)
    assert f"{PRETRAINED}: check 1" in caption and f"{BASE}: not checked" in caption
    assert "p 1 (exact McNemar)" in caption  # clean items: 1 win, 2 losses
    task = open_app(url, "task.py")
    task.selectbox(key="task_task").select(QA_TASK).run()
    scores = task.dataframe[0].value.set_index("variant")["contaminated"]
    assert scores[PRETRAINED] == pytest.approx(4 / 12) and scores.isna()[BASE]


def test_reproductions_view_shows_each_verdict_and_its_mismatches(seeded, open_app):
    _, url = seeded
    app = open_app(url, "reproductions.py")
    assert not errors(app)
    counts = {metric.label: metric.value for metric in app.metric}
    assert counts == {"reproduced": "1", "not reproduced": "1", "not comparable": "1"}
    table = app.dataframe[0].value
    assert len(table) == sql_rows(url, "SELECT count(*) FROM reproductions")[0][0] == 3
    row = table.set_index("source").loc["card C"]
    assert row["verdict"] == "not comparable"
    assert row["mismatches"] == "items: the test split has 1273, measured on 12"


def test_leaderboard_puts_published_beside_measured_only_under_the_same_protocol(seeded, open_app):
    _, url = seeded
    app = open_app(url)
    assert not errors(app)
    long = app.dataframe[1].value.set_index("reference")
    (base,) = latest(url, "acc", QA_TASK)[BASE][:1]
    assert long.loc["fixture-same", "beside_measured"].startswith(
        f"same protocol: measured {base:.3f}"
    )
    assert long.loc["fixture-other", "beside_measured"] == (
        "not comparable: published under me-llama-zeroshot (generate 0-shot); "
        "measured loglik 0-shot"
    )
    # the chart: measured as bars with CI bars, published as labelled diamonds
    (chart,) = app.get("plotly_chart")
    shown = [Trace(trace) for trace in json.loads(chart.proto.spec)["data"]]
    assert {t.type for t in shown} == {"bar", "scatter"}
    names = {t.name for t in shown if t.type == "scatter"}
    assert f"{BASE} (published, lm-eval)" in names
    assert all(t.error_y.type == "data" for t in shown if t.type == "bar")


def test_leaderboard_cells_without_a_result_are_blank(seeded, open_app):
    import pyarrow as pa

    _, url = seeded
    app = open_app(url)
    pivot = app.dataframe[0]
    frame = pivot.value
    # what the browser shows: the Styler's display values
    shown = pa.ipc.open_stream(pivot.proto.arrow_data.styler.display_values).read_all()
    shown = shown.to_pandas()
    missing = frame[QA_TASK].isna()  # published rows of other tasks have no QA_TASK value
    assert missing.any() and (~missing).any()
    assert set(shown.loc[missing.to_numpy(), QA_TASK]) == {""}  # blank, never "None"
    value = frame.loc[~missing, QA_TASK].iloc[0]
    assert shown.loc[(~missing).to_numpy(), QA_TASK].iloc[0] == f"{value:.4f}"


def test_leaderboard_shows_api_usage_and_cost(seeded_api, open_app):
    """The seeded GPT-4 run: its tokens in / out and dollars at the catalogue's prices; its
    undisclosed size keeps it in every size range."""
    _, url = seeded_api
    app = open_app(url)
    usage = app.dataframe[2].value.set_index("variant")
    tokens_in, tokens_out, cost = api_run_usage()
    row = usage.loc[API_VARIANT]
    assert (row["task"], row["tokens_in"], row["tokens_out"]) == (QA_TASK, tokens_in, tokens_out)
    assert row["cost_usd"] == pytest.approx(cost)
    assert any(f"Total: ${cost:,.4f}" in caption.value for caption in app.caption)
    size = app.select_slider(key="lb_size")
    sizes = sorted(float(option) for option in size.options)
    size.set_range(sizes[-1], sizes[-1]).run()
    assert API_VARIANT in set(app.dataframe[1].value["variant"])


def test_leaderboard_without_api_runs_shows_no_usage(seeded, open_app):
    _, url = seeded
    app = open_app(url)
    assert len(app.dataframe) == 2 and not [h for h in app.subheader if "API" in h.value]


def test_sweeps_view_shows_running_expired_and_failed_cells(seeded, tmp_path, open_app):
    import shutil
    from datetime import timedelta

    from medarena.store import Store
    from medarena.store.claims import Holder
    from medarena.store.models import utcnow

    root, _ = seeded
    shutil.copy(root / "seeded.db", tmp_path / "copy.db")
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    app = open_app(url, "sweeps.py")
    assert "No sweep cell is running or failed" in app.info[0].value
    worker = Holder("w-1", "node-7", 4242, "981_3")
    with Store(url) as store:
        for key, cell in (("k1", "a / pubmedqa / zero-shot / seed 0"), ("k2", "a / medmcqa")):
            assert store.claim_cell(key, sweep="grid", cell=cell, holder=worker, lease_s=600)
        store.release_claim("k2", "w-1", error="EngineError: out of memory")
        assert store.claim_cell("k3", sweep="other", cell="b / hoc", holder=worker, lease_s=-1)
    app.button(key="refresh").click().run()
    assert [s.value for s in app.subheader] == ["grid", "other"]
    grid, other = (frame.value for frame in app.dataframe)
    assert grid.set_index("cell")["state"].to_dict() == {
        "a / pubmedqa / zero-shot / seed 0": "running",
        "a / medmcqa": "failed",
    }
    assert grid.set_index("cell").loc["a / medmcqa", "error"] == "EngineError: out of memory"
    assert set(grid["slurm_job"]) == {"981_3"} and set(grid["host"]) == {"node-7"}
    assert other["state"].tolist() == ["lease expired"]
    assert [m.label for m in app.metric] == ["running", "lease expired", "failed"] * 2
    assert [m.value for m in app.metric] == ["1", "0", "1", "0", "1", "0"]
    assert utcnow() - timedelta(minutes=5) < grid["claimed_at"].min()
