"""terraform/ against the repo's other sources of truth: queue.yaml, firestore.indexes.json,
functions/main.py and the settings class. The google provider cannot be downloaded here, so the
conversions run in modules/config (no provider) with the real `terraform` binary, and the rest is
read with python-hcl2."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from pydantic_settings import BaseSettings

from lote.settings import Settings
from lote_local import queue_yaml
from lote_local.config import REPO_ROOT

TERRAFORM = REPO_ROOT / "terraform"


@cache
def tf() -> dict[str, list[Any]]:
    """Every top-level block of terraform/*.tf, merged by kind."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            for kind, blocks in hcl2.load(handle).items():
                merged.setdefault(kind, []).extend(blocks)
    return merged


def unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted; expressions are `${...}`."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def resources(kind: str) -> dict[str, dict[str, Any]]:
    """Resources of one type by name."""
    found = {}
    for block in tf().get("resource", []):
        for rtype, named in block.items():
            if unquote(rtype) == kind:
                found.update({unquote(name): body for name, body in named.items()})
    return found


def local(name: str) -> Any:
    """A local value."""
    for block in tf()["locals"]:
        if name in block:
            return block[name]
    raise KeyError(name)


@cache
def config_outputs(queue_file: Path, indexes_file: Path) -> dict[str, Any]:
    """modules/config evaluated by terraform itself, offline (it uses no provider)."""
    terraform = shutil.which("terraform")
    assert terraform, "terraform is required (see README prerequisites)"
    work = Path(subprocess.check_output(["mktemp", "-d"], text=True).strip())
    shutil.copytree(TERRAFORM / "modules" / "config", work, dirs_exist_ok=True)
    (work / "terraform.tfvars.json").write_text(
        json.dumps({"queue_yaml": queue_file.read_text(), "indexes_json": indexes_file.read_text()})
    )
    for command in (["init", "-backend=false", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        subprocess.run([terraform, f"-chdir={work}", *command], check=True, capture_output=True, timeout=120)
    out = subprocess.run([terraform, f"-chdir={work}", "output", "-json"], check=True, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    shutil.rmtree(work)
    return {name: value["value"] for name, value in json.loads(out.stdout).items()}


@pytest.mark.parametrize(
    "queue_file", [REPO_ROOT / "queue.yaml", REPO_ROOT / "tests" / "fixtures" / "queue.yaml"]
)
def test_every_queue_becomes_a_cloud_tasks_queue_with_the_same_settings(queue_file: Path):
    converted = config_outputs(queue_file, REPO_ROOT / "firestore.indexes.json")["queues"]
    specs = {spec.name: spec for spec in queue_yaml.load(queue_file)}
    assert set(converted) == set(specs)
    for name, spec in specs.items():
        got = converted[name]
        assert got["max_dispatches_per_second"] == pytest.approx(spec.rate_per_s)
        assert got["max_concurrent_dispatches"] == spec.max_concurrent
        assert got["max_attempts"] == spec.max_attempts
        assert got["max_retry_duration_s"] == pytest.approx(spec.max_retry_duration_s)
        assert got["min_backoff_s"] == pytest.approx(spec.min_backoff_s)
        assert got["max_backoff_s"] == pytest.approx(spec.max_backoff_s)
        assert got["max_doublings"] == spec.max_doublings


def test_the_queue_resource_takes_every_setting_from_the_conversion():
    queue = resources("google_cloud_tasks_queue")["q"]
    assert queue["for_each"] == "${local.queues}" and local("queues") == "${module.config.queues}"
    assert queue["rate_limits"][0] == {
        "max_dispatches_per_second": "${each.value.max_dispatches_per_second}",
        "max_concurrent_dispatches": "${each.value.max_concurrent_dispatches}",
        "__is_block__": True,
    }
    retry = queue["retry_config"][0]
    assert retry["max_attempts"] == "${each.value.max_attempts}"
    assert retry["max_doublings"] == "${each.value.max_doublings}"
    for field, source in (("max_retry_duration", "max_retry_duration_s"), ("min_backoff", "min_backoff_s"),
                          ("max_backoff", "max_backoff_s")):  # fmt: skip
        assert unquote(retry[field]) == "${each.value." + source + "}s"
    assert queue["lifecycle"][0]["prevent_destroy"] is True
    module = next(m for block in tf()["module"] for name, m in block.items() if unquote(name) == "config")
    assert "../queue.yaml" in module["queue_yaml"] and "../firestore.indexes.json" in module["indexes_json"]


def test_every_index_and_ttl_field_is_deployed():
    outputs = config_outputs(REPO_ROOT / "queue.yaml", REPO_ROOT / "firestore.indexes.json")
    document = json.loads((REPO_ROOT / "firestore.indexes.json").read_text())
    assert len(outputs["indexes"]) == len(document["indexes"])
    for index in document["indexes"]:
        fields = [{"path": f["fieldPath"], "order": f["order"]} for f in index["fields"]]
        assert {"collection": index["collectionGroup"], "fields": fields} in outputs["indexes"].values()
    ttl = {(o["collectionGroup"], o["fieldPath"]) for o in document["fieldOverrides"] if o.get("ttl")}
    assert {(v["collection"], v["field"]) for v in outputs["ttl_fields"].values()} == ttl
    assert resources("google_firestore_index")["composite"]["for_each"] == "${module.config.indexes}"
    assert resources("google_firestore_field")["ttl"]["for_each"] == "${module.config.ttl_fields}"


def entry_points() -> set[str]:
    """Functions in functions/main.py decorated with functions_framework.http."""
    tree = ast.parse((REPO_ROOT / "functions" / "main.py").read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("functions_framework" in ast.unparse(d) for d in node.decorator_list)
    }


def test_every_entry_point_is_deployed_with_its_own_account_and_scaling():
    deployed = {unquote(f["entry_point"]) for f in local("function_settings").values()}
    assert deployed == entry_points() == {"api", "worker", "stripe_webhook"}
    function = resources("google_cloudfunctions2_function")["fn"]
    assert function["for_each"] == "${local.function_settings}"
    service = function["service_config"][0]
    assert service["service_account_email"] == "${google_service_account.fn[each.key].email}"
    assert "THREADS = tostring(var.functions[each.key].concurrency)" in service["environment_variables"]
    assert service["max_instance_request_concurrency"] == "${var.functions[each.key].concurrency}"
    scaling = next(v for block in tf()["variable"] for n, v in block.items() if unquote(n) == "functions")
    assert set(scaling["default"]) == entry_points()
    assert all(f["concurrency"] > 1 for f in scaling["default"].values())
    accounts = local("accounts")
    assert entry_points() | {"invoker"} == set(accounts)


def test_the_worker_is_private_and_outlasts_its_dispatch_deadlines():
    settings = local("function_settings")
    assert unquote(settings["worker"]["ingress"]) == "ALLOW_INTERNAL_ONLY"
    assert settings["worker"]["timeout_s"] == "${var.task_dispatch_deadline_s + 60}"
    # Webhook tasks: the delivery handler's deadline (timeout + 30 s) is far below the worker's.
    assert Settings().webhook_timeout_s + 30 < 60
    public = resources("google_cloud_run_service_iam_member")["public"]
    assert "worker" not in public["for_each"] and unquote(public["member"]) == "allUsers"
    invoker = resources("google_cloud_run_service_iam_member")["worker_invoker"]
    assert invoker["member"] == '${google_service_account.fn["invoker"].member}'
    assert unquote(invoker["role"]) == "roles/run.invoker"


def env_name(settings: type[BaseSettings], field: str) -> str:
    """The (first) environment variable of a settings field."""
    alias = settings.model_fields[field].validation_alias
    if isinstance(alias, str):
        return alias
    if alias is not None:
        return str(alias.choices[0])  # type: ignore[union-attr]
    return f"LOTE_{field}".upper()


def all_env_names() -> set[str]:
    names = set()
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", [alias] if alias else [f"LOTE_{field}".upper()])
        names.update(str(c) for c in choices)
    return names


def test_every_setting_a_deployment_needs_is_provided_and_nothing_unknown_is_set():
    common = set(local("common_env"))
    # model_secret is a conditional expression; its literal names the variable.
    model_secret = set(re.findall(r'env = \\?"([A-Z_]+)', str(local("model_secret"))))
    assert model_secret == {"GEMINI_API_KEY"}
    secret_envs = {unquote(s["env"]) for s in local("secrets").values()} | model_secret
    needed = {env_name(Settings, f) for f, info in Settings.model_fields.items() if info.json_schema_extra}
    assert needed, "settings.DEPLOY marks nothing"
    model_access = {"GEMINI_API_KEY", "LOTE_USE_VERTEXAI"} & (common | secret_envs)
    assert model_access == {"GEMINI_API_KEY", "LOTE_USE_VERTEXAI"}
    assert needed - common - secret_envs == set()
    assert common - all_env_names() == set(), "Terraform sets variables no setting reads"
    assert common & secret_envs == set()


# Which function reads which secret: the api checks out (Stripe key) and guards admin routes; the
# webhook verifies signatures and looks payments up at Stripe; the worker calls Gemini; the api
# signs and verifies client tokens.
READERS = {
    "LOTE_STRIPE_SECRET_KEY": {"api", "stripe_webhook"},
    "LOTE_ADMIN_TOKEN": {"api"},
    "LOTE_CLIENT_TOKEN_KEYS": {"api"},
    "LOTE_STRIPE_WEBHOOK_SECRET": {"stripe_webhook"},
}


def test_every_secret_is_wired_to_the_functions_that_read_it():
    secrets = local("secrets")
    wired = {unquote(s["env"]): {unquote(fn) for fn in s["fns"]} for s in secrets.values()}
    assert wired == READERS
    assert all(env in all_env_names() for env in wired)
    assert 'env = "GEMINI_API_KEY", fns = ["worker"]' in local("model_secret")
    assert resources("google_secret_manager_secret")["s"]["for_each"] == "${local.all_secrets}"
    reader = resources("google_secret_manager_secret_iam_member")["reader"]
    assert reader["for_each"] == "${local.secret_readers}"
    assert reader["member"] == "${google_service_account.fn[each.value.fn].member}"
    dynamic = resources("google_cloudfunctions2_function")["fn"]["service_config"][0]["dynamic"][0]
    wiring = dynamic['"secret_environment_variables"']
    assert wiring["for_each"] == "${{for k, s in local.all_secrets : k => s if contains(s.fns, each.key)}}"
    assert wiring["content"][0]["key"] == "${secret_environment_variables.value.env}"


def test_buckets_are_private_uniform_and_expire():
    for name, bucket in resources("google_storage_bucket").items():
        assert bucket["uniform_bucket_level_access"] is True, name
        assert unquote(bucket["public_access_prevention"]) == "enforced", name
        assert bucket["lifecycle_rule"][0]["action"][0]["type"] == '"Delete"', name
    archive = next(d for block in tf()["data"] for t, d in block.items() if unquote(t) == "archive_file")
    assert "output_sha256" in resources("google_storage_bucket_object")["functions"]["name"]
    assert unquote(archive['"functions"']["source_dir"]) == "${path.module}/../functions"


def test_variables_are_typed_and_described_and_versions_bounded():
    for block in tf()["variable"]:
        for name, variable in block.items():
            assert "type" in variable and unquote(variable.get("description", "")), name
    for block in tf()["output"]:
        for name, output in block.items():
            assert unquote(output.get("description", "")), name
    settings = tf()["terraform"][0]
    assert "<" in unquote(settings["required_version"])
    for provider in settings["required_providers"][0].values():
        if isinstance(provider, dict):
            assert "<" in unquote(provider["version"])
    assert settings["backend"][0] == {'"gcs"': {"__is_block__": True}}


def _conditions(filter_text: str) -> dict[str, set[str]]:
    """A metric filter's conditions on the structured payload: field → the values (`=`, one or a
    parenthesised OR of several) or the `>0` it asks."""
    found = re.findall(r'jsonPayload\.(\w+)\s*(=|>)\s*(\([^()]*\)|\\?"?[\w.]+)', filter_text)
    conditions: dict[str, set[str]] = {}
    for field, op, value in found:
        values = set(re.findall(r"[\w.]+", value)) - {"OR"}
        conditions.setdefault(field, set()).update(values if op == "=" else {f">{v}" for v in values})
    return conditions


EVENT_PREFIXES = ("job", "webhook", "audit", "dispatch", "stripe", "firestore")


def _emits() -> dict[str, str]:
    """The events the functions' code names where it calls `logs.emit`: event → those modules' text."""
    found: dict[str, str] = {}
    pattern = r'"((?:' + "|".join(EVENT_PREFIXES) + r')\.[a-z_]+)"'
    for path in (REPO_ROOT / "functions" / "lote").rglob("*.py"):
        text = path.read_text()
        if "logs.emit(" in text:
            for event in re.findall(pattern, text):
                found[event] = found.get(event, "") + text
    return found


def _code_text() -> str:
    return "\n".join(path.read_text() for path in (REPO_ROOT / "functions" / "lote").rglob("*.py"))


def _filter_of(metric: dict[str, Any]) -> str:
    metrics = resources("google_logging_metric")
    succeeded = unquote(metrics["succeeded"]["filter"])
    return unquote(metric["filter"]).replace("${google_logging_metric.succeeded.filter}", succeeded)


def _extracted(metric: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The payload fields a metric extracts: its value's, and its labels' (label → field)."""
    value = str(metric.get("value_extractor", ""))
    if "${each.key}" in value:  # one metric per field of its for_each map
        values = set(local(metric["for_each"].removeprefix("${local.").removesuffix("}")))
    else:
        values = set(re.findall(r"EXTRACT\(jsonPayload\.(\w+)\)", value))
    extractors = metric.get("label_extractors", {})
    if isinstance(extractors, str):  # {for key in ["a", "b"] : key => "EXTRACT(jsonPayload.${key})"}
        keys = re.search(r"for key in \[([^\]]*)\]", extractors)
        assert keys and "EXTRACT(jsonPayload.${key})" in extractors, extractors
        labels = set(re.findall(r'"(\w+)"', keys.group(1)))
    else:
        labels = {
            key
            for key, v in extractors.items()
            if re.fullmatch(r'"?EXTRACT\(jsonPayload\.' + key + r'\)"?', v)
        }
        assert labels == set(extractors), f"a label from another field: {extractors}"
    return values, labels


def _descriptor_labels(metric: dict[str, Any]) -> set[str]:
    """The label keys a metric's descriptor declares (literal blocks or a dynamic block's list)."""
    descriptor = metric["metric_descriptor"][0]
    keys = {unquote(block["key"]) for block in descriptor.get("labels", [])}
    for dynamic in descriptor.get("dynamic", []):
        keys.update(unquote(key) for key in dynamic['"labels"']["for_each"])
    return keys


def test_log_based_metrics_count_events_the_code_emits_with_the_fields_they_filter_on():
    metrics = resources("google_logging_metric")
    emitted, code = _emits(), _code_text()
    for name, metric in metrics.items():
        conditions = _conditions(_filter_of(metric))
        events = conditions.pop("event", set())
        assert events, f"{name} counts no event"
        values, labels = _extracted(metric)
        for event in events:
            assert event in emitted, f"{name} counts {event!r}, which no module emits"
            # a keyword of its emit() call, or a key of the fields it passes (a literal's, or set)
            for field in set(conditions) | values | labels:
                assert re.search(rf'\b{field}=|"{field}"(?::|\] =)', emitted[event]), (
                    f"{name} reads {field}: not in {event}"
                )
        for field, wanted in conditions.items():  # a literal it asks for is one the code writes
            for value in wanted - {"true", "false"}:
                assert value.startswith(">") or f'"{value}"' in code, (
                    f"{name}: {field}={value} is never written"
                )
        assert labels == _descriptor_labels(metric), f"{name}: labels extracted and declared differ"
    # The metrics tell these apart by the fields, not by the wording of the message.
    breaker = [_conditions(unquote(metrics[m]["filter"])) for m in ("breaker_opened", "model_blocked")]
    assert breaker[0]["state"] == {"open"} and breaker[1]["state"] == {"blocked"}
    assert unquote(metrics["model_latency"]["value_extractor"]) == "EXTRACT(jsonPayload.model_ms)"
    on_time, late = (_conditions(unquote(metrics[m]["filter"])) for m in ("images_on_time", "images_late"))
    assert on_time["within_target"] == {"true"} and late["within_target"] == {"false"}
    assert late["event"] == {"job.succeeded", "job.failed"}


def _tf_text() -> str:
    return "\n".join(path.read_text() for path in sorted(TERRAFORM.glob("*.tf")))


def _promql_keys() -> dict[str, str]:
    """local.promql's keys → the log-based metric each names (the tick's `tick_FIELD` per field)."""
    text = local("promql")
    keys = dict(re.findall(r"(\w+) = google_logging_metric\.(\w+)\.name", text))
    assert "google_logging_metric.tick :" in text and '"tick_${field}"' in text
    keys.update({f"tick_{field}": "tick" for field in local("tick_fields")})
    return keys


def test_every_log_metric_the_dashboard_slos_and_alerts_name_exists():
    metrics = resources("google_logging_metric")
    referenced = set(re.findall(r"google_logging_metric\.(\w+)", _tf_text()))
    assert referenced - set(metrics) == set(), "a reference to a metric that is not defined"
    keys = _promql_keys()
    assert set(keys.values()) <= set(metrics)
    used = set(re.findall(r"local\.(?:q|promql)\.(\w+)", _tf_text()))
    assert used - set(keys) == set(), "a query names a metric local.promql does not map"
    assert local("q") == "${local.promql}"
    for field in local("tick_fields"):
        assert f"tick_{field}" in keys
    # The SLOs' filters (local.metric): each key names the log-based metric of the same name.
    slo_metrics = dict(re.findall(r"(\w+) = google_logging_metric\.(\w+)\b", str(local("metric"))))
    assert (
        slo_metrics
        and all(key == name for key, name in slo_metrics.items())
        and set(slo_metrics) <= set(metrics)
    )
    assert 'metric.type=\\"logging.googleapis.com/user/${metric.name}\\"' in str(local("metric"))
    used_by_slos = set(re.findall(r"local\.metric\.(\w+)", str(local("slos"))))
    assert used_by_slos == set(slo_metrics)


def _tiles() -> list[tuple[str, str]]:
    """Each dashboard tile: its title and its queries, a tick mean written as the metric it reads."""
    tiles = []
    for tile in local("dashboard_tiles"):
        queries = " ; ".join(unquote(q) for q in tile["queries"])
        queries = re.sub(
            r"\$\{local\.mean\.(\w+)\}", r"${local.q.tick_\1}_sum / ${local.q.tick_\1}_count", queries
        )
        tiles.append((unquote(tile["title"]), queries))
    return tiles


# What the dashboard must show (issue 27): a tile whose queries hold every fragment of one entry.
DASHBOARD = {
    "images/min by tier, succeeded": ["by (tier)", "local.q.succeeded}", "* 60"],
    "images/min by tier, failed": ["by (tier)", "local.q.failed}", "* 60"],
    "model quota share": ["local.q.tick_pace_share}", "local.q.tick_quota_error_share}"],
    "model 429s": ["local.q.model_throttled}"],
    "breaker state": ["local.q.tick_breaker_level}"],
    "backlog": ["local.q.tick_in_queue}", "local.q.tick_lanes_economy}", "cloudtasks_googleapis_com:queue_depth"],
    "oldest held work per tier": ["local.q.waited}_bucket", "tier"],
    "accept to done, singles p50/p95": ['kind=\\"single\\"', "histogram_quantile(0.5,", "histogram_quantile(0.95,"],
    "accept to done, items p50/p95": ['kind=\\"item\\"', "by (le, tier)", "histogram_quantile(0.5,",
                                      "histogram_quantile(0.95,"],
    "failures by code": ["by (code)", "local.q.failed}"],
    "webhook success": ["local.q.webhook_lag}_count", "local.q.webhooks_failed}"],
    "webhook lag": ["local.q.webhook_lag}_bucket", "histogram_quantile(0.95,"],
    "Firestore contention": ["local.q.firestore_contended}"],
    "model spend": ["local.q.model_spend}_sum"],
    "Cloud Run requests": ["run_googleapis_com:request_count"],
}  # fmt: skip


def test_the_dashboard_has_a_tile_for_each_figure_issue_27_asks_for():
    tiles = _tiles()
    for figure, fragments in DASHBOARD.items():
        assert any(all(f in queries for f in fragments) for _, queries in tiles), f"no tile shows {figure}"
    titles = [title for title, _ in tiles]
    assert len(titles) == len(set(titles))
    dashboard = resources("google_monitoring_dashboard")["lote"]["dashboard_json"]
    assert "jsonencode(" in dashboard and "mosaicLayout" in dashboard and "local.dashboard_tiles" in dashboard
    assert "prometheusQuery = query" in dashboard
    # A label a query groups or selects by is one the metric extracts (or Cloud Tasks', Cloud Run's own).
    metrics = resources("google_logging_metric")
    keys = _promql_keys()
    for title, queries in tiles:
        for query in queries.split(" ; "):
            names = re.findall(r"local\.q\.(\w+)\}", query)
            grouped = set(re.findall(r"by \(([^)]*)\)", query))
            asked = {x.strip() for g in grouped for x in g.split(",")} | set(re.findall(r"\{(\w+)=", query))
            asked -= {"le", "queue_id", "service_name", "response_code_class", "monitored_resource"}
            for name in names:
                labels = _extracted(metrics[keys[name]])[1]
                assert asked <= labels, f"{title}: {query} asks {asked - labels} of {name}"


def _variable(name: str) -> dict[str, Any]:
    return next(v for block in tf()["variable"] for n, v in block.items() if unquote(n) == name)


def test_each_slo_has_a_goal_between_0_and_1_good_and_bad_counts_and_fast_and_slow_burn_alerts():
    from lote.dispatch.share import Tier
    from lote.jobs.worker import TARGET_S

    assert set(TARGET_S) == set(Tier)  # every tier has the target its `within_target` is judged by
    slos, goals = local("slos"), _variable("slo_goals")["default"]
    assert set(slos) == {"singles", "items", "webhooks"} == set(goals)
    assert all(0 < goal < 1 for goal in goals.values())
    metric_filters = str(local("metric"))
    for name, slo in slos.items():
        assert slo["goal"] == "${var.slo_goals." + name + "}"
        good, bad = unquote(slo["good"]), unquote(slo["bad"])
        assert "_on_time}" in good and "_late}" in bad, name
        for label in re.findall(r"metric\.labels\.(\w+)", good + bad):
            for metric in re.findall(r"local\.metric\.(\w+)", good + bad):
                assert label in _extracted(resources("google_logging_metric")[metric])[1], (name, label)
    assert "resource.type=" in metric_filters and "logging.googleapis.com/user/" in metric_filters
    resource = resources("google_monitoring_slo")["slo"]
    assert resource["for_each"] == "${local.slos}" and resource["goal"] == "${each.value.goal}"
    assert 1 <= resource["rolling_period_days"] <= 30
    ratio = resource["request_based_sli"][0]["good_total_ratio"][0]
    assert set(ratio) - {"__is_block__"} == {"good_service_filter", "bad_service_filter"}
    assert resource["service"] == "${google_monitoring_custom_service.lote.service_id}"
    # Every SLO gets each window: the SRE workbook's 2% of a 30-day budget in 1 h (14.4x) and 5% in 6 h (6x).
    windows = local("burn_windows")
    assert {(unquote(w["long"]), w["rate"]) for w in windows.values()} == {("60m", 14.4), ("360m", 6)}
    assert "setproduct(keys(local.slos), keys(local.burn_windows))" in local("burn_alerts")
    burn = resources("google_monitoring_alert_policy")["burn"]
    assert burn["for_each"] == "${local.burn_alerts}" and unquote(burn["combiner"]) == "AND"
    condition = burn["dynamic"][0]['"conditions"']["content"][0]["condition_threshold"][0]
    assert (
        "select_slo_burn_rate(" in condition["filter"]
        and "google_monitoring_slo.slo[each.value.slo].name" in (condition["filter"])
    )
    assert condition["threshold_value"] == "${each.value.window.rate}"
    assert burn["notification_channels"] == ["${google_monitoring_notification_channel.email.id}"]


def test_the_budget_has_thresholds_and_exists_only_with_a_billing_account():
    budget = resources("google_billing_budget")["lote"]
    assert budget["count"] == '${var.billing_account == "" ? 0 : 1}'
    assert _variable("billing_account")["default"] == '""'
    assert "monthly_budget_usd" in str(budget["amount"][0]["specified_amount"][0]["units"])
    rules = {(r["threshold_percent"], unquote(r["spend_basis"])) for r in budget["threshold_rules"]}
    assert rules == {(0.5, "CURRENT_SPEND"), (0.9, "CURRENT_SPEND"), (1.0, "CURRENT_SPEND"),
                     (1.0, "FORECASTED_SPEND")}  # fmt: skip
    assert budget["budget_filter"][0]["projects"] == ['"projects/${data.google_project.this.number}"']
    channels = budget["all_updates_rule"][0]["monitoring_notification_channels"]
    assert channels == ["${google_monitoring_notification_channel.email.id}"]
    assert '"billingbudgets.googleapis.com"' in local("apis")


def test_alert_queries_name_log_metrics_the_way_promql_maps_them_and_survive_empty_series():
    # Cloud Monitoring maps "logging.googleapis.com/user/NAME" to PromQL with every special
    # character but the first / replaced by _, and a sum over a metric with no series is empty.
    text = (Path(__file__).parents[2] / "terraform" / "monitoring.tf").read_text()
    assert "user_${google_logging_metric" not in text  # a raw name may hold the prefix's hyphens
    assert 'replace(name, "/[^A-Za-z0-9_]/", "_")' in text
    queries = re.findall(r'query\s*=\s*"([^"]*)"', text)
    assert queries and all(q.count("sum(") == 1 for q in queries)  # one metric per condition


def test_the_functions_run_with_the_allocator_settings_the_local_stack_measures():
    from lote_local.stack import MALLOC_ENV

    assert {k: unquote(v) for k, v in local("malloc_env").items()} == MALLOC_ENV
    service = resources("google_cloudfunctions2_function")["fn"]["service_config"][0]
    assert "local.malloc_env" in service["environment_variables"]
