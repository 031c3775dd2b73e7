"""`--tpu` reaches TPUClusterResolver as the user gave it: exactly "local" on a TPU VM (its only
directly-attached path), a TPU name otherwise, with zone and project; a named TPU's state is asked of
the Cloud TPU API through the real cloud-tpu-client (its `service=` hook answered by a fake API); a
TPU that cannot be found, is preempted or never becomes healthy is one line naming the flag."""

import copy
import functools

import cloud_tpu_client
import pytest
import tensorflow as tf

from bert_pretrain import strategy as strategy_lib
from bert_pretrain.errors import UsageError


NODE = "projects/lamb-project/locations/us-central2-b/nodes/bert-v4-128"
HEALTHY = {"state": "READY", "health": "HEALTHY", "symptoms": []}


class FakeTpuApi:
    """The Cloud TPU v1 API as cloud_tpu_client calls it: projects().locations().nodes().get(name).execute().
    Each get answers the next node record of `records[name]` (the last one repeats)."""

    def __init__(self, records):
        self.records, self.names = records, []

    def projects(self):
        return self

    def locations(self):
        return self

    def nodes(self):
        return self

    def get(self, name):
        self.names.append(name)
        records = self.records[name]   # an unknown TPU: KeyError, which the client reports as ValueError
        record = records.pop(0) if len(records) > 1 else records[0]
        return type("Request", (), {"execute": lambda _: copy.deepcopy(record)})()


@pytest.fixture(name="api")
def fake_api(monkeypatch):
    """The real cloud_tpu_client.Client, its API calls answered by a FakeTpuApi (set api.records)."""
    api = FakeTpuApi({NODE: [HEALTHY]})
    monkeypatch.setattr(cloud_tpu_client, "Client", functools.partial(cloud_tpu_client.Client, service=api))
    monkeypatch.setattr(strategy_lib, "HEALTH_INTERVAL_S", 0.01)
    return api


@pytest.fixture(name="recorded")
def fake_tpu_runtime(monkeypatch, api):  # pylint: disable=unused-argument
    """Replaces the resolver, cluster connection, TPU initialisation and TPUStrategy with recorders."""
    calls = []

    class Resolver:
        def __init__(self, tpu=None, zone=None, project=None):
            calls.append(("resolver", tpu, zone, project))

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", Resolver)
    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster",
                        lambda resolver: calls.append(("connect", type(resolver).__name__)))
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system",
                        lambda resolver: calls.append(("initialize", type(resolver).__name__)))
    monkeypatch.setattr(tf.distribute, "TPUStrategy", lambda resolver: ("TPUStrategy", type(resolver).__name__))
    return calls


def test_local_reaches_the_resolver_as_local_and_connects_to_no_cluster(recorded):
    assert strategy_lib.make_strategy("mirrored", tpu="local") == ("TPUStrategy", "Resolver")
    assert recorded == [("resolver", "local", None, None), ("initialize", "Resolver")]


def test_a_name_is_checked_resolved_and_its_hosts_connected(recorded, api):
    strategy_lib.make_strategy(tpu="bert-v4-128", zone="us-central2-b", project="lamb-project")
    assert recorded == [("resolver", "bert-v4-128", "us-central2-b", "lamb-project"), ("connect", "Resolver"),
                        ("initialize", "Resolver")]
    assert api.names and set(api.names) == {NODE}


def test_a_slice_coming_up_is_waited_for(recorded, api):
    api.records[NODE] = [{"state": "CREATING"}, {"state": "READY", "health": "UNHEALTHY_MAINTENANCE"},
                       {"state": "READY", "health": "UNKNOWN"}, HEALTHY]
    strategy_lib.make_strategy(tpu="bert-v4-128", zone="us-central2-b", project="lamb-project")
    assert len(api.names) >= 4 and recorded[0][0] == "resolver"


def test_ready_without_a_health_field_counts_as_healthy(recorded, api, monkeypatch):
    monkeypatch.setattr(strategy_lib, "HEALTH_TIMEOUT_S", 0.5)   # waiting for a field never filled would fail
    api.records[NODE] = [{"state": "READY", "symptoms": []}, {"state": "READY", "health": "UNHEALTHY_MAINTENANCE"}]
    strategy_lib.make_strategy(tpu="bert-v4-128", zone="us-central2-b", project="lamb-project")
    assert recorded[0][0] == "resolver"
    assert api.records[NODE] == [{"state": "READY", "health": "UNHEALTHY_MAINTENANCE"}]   # never asked again


@pytest.mark.parametrize("state", ["PREEMPTED", "TERMINATED"])
def test_a_preempted_slice_is_one_line_and_nothing_connects(recorded, api, state):
    api.records[NODE] = [{"state": state, "health": "UNHEALTHY_TENSORFLOW"}]
    with pytest.raises(UsageError, match=f"^--tpu: TPU 'bert-v4-128' is {state}; recreate it "
                                        r"\(python scripts/tpu.py recover ...\)"):
        strategy_lib.make_strategy(tpu="bert-v4-128", zone="us-central2-b", project="lamb-project")
    assert recorded == []


def test_a_slice_that_never_gets_healthy_is_one_line(recorded, api, monkeypatch):
    monkeypatch.setattr(strategy_lib, "HEALTH_TIMEOUT_S", 0.05)
    api.records[NODE] = [{"state": "READY", "health": "UNHEALTHY_MAINTENANCE"}]
    with pytest.raises(UsageError) as error:
        strategy_lib.make_strategy(tpu="bert-v4-128", zone="us-central2-b", project="lamb-project")
    assert str(error.value).startswith("--tpu: TPU 'bert-v4-128' could not be reached (RuntimeError: ")
    assert recorded == []


def test_an_unknown_name_is_one_line(recorded):
    with pytest.raises(UsageError, match="^--tpu: TPU 'other' could not be reached \\(ValueError: "):
        strategy_lib.make_strategy(tpu="other", zone="us-central2-b", project="lamb-project")
    assert recorded == []


@pytest.mark.parametrize("missing", ["tpu_zone", "tpu_project"])
def test_a_name_needs_zone_and_project(recorded, missing):
    where = {"zone": "us-central2-b", "project": "lamb-project"}
    del where[missing[4:]]
    with pytest.raises(UsageError, match=f"^--{missing}: is required with --tpu=bert-v4-128;"):
        strategy_lib.make_strategy(tpu="bert-v4-128", **where)
    assert recorded == []


def test_grpc_addresses_skip_the_api(recorded, api):
    strategy_lib.make_strategy(tpu="grpc://10.0.0.2:8470,grpc://10.0.0.3:8470")
    assert recorded[0] == ("resolver", "grpc://10.0.0.2:8470,grpc://10.0.0.3:8470", None, None)
    assert api.names == []


def test_no_tpu_here_is_one_line_naming_the_flag():
    """The real resolver on this TPU-less machine: --tpu=local fails at initialisation."""
    with pytest.raises(UsageError) as error:
        strategy_lib.make_strategy(tpu="local")
    message = str(error.value)
    assert message.startswith("--tpu: no TPU is attached to this machine (")
    assert "\n" not in message and "use --tpu=local on a one-host TPU VM" in message


def test_an_unreachable_name_is_one_line_naming_the_flag(monkeypatch):
    """The real client and resolver: with no Google credentials here, the Cloud TPU API lookup fails."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("TPU_NAME", "")
    with pytest.raises(UsageError) as error:
        strategy_lib.make_strategy(tpu="bert-v4-128", zone="us-central2-b", project="lamb-project")
    assert str(error.value).startswith("--tpu: TPU 'bert-v4-128' could not be reached (")
    assert "\n" not in str(error.value)
