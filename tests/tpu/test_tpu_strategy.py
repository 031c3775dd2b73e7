"""`--tpu` reaches TPUClusterResolver as the user gave it: exactly "local" on a TPU VM (its only
directly-attached path), a TPU name otherwise, with zone and project; a TPU that cannot be found is
one line naming --tpu."""

import pytest
import tensorflow as tf

from bert_pretrain import strategy as strategy_lib
from bert_pretrain.data.errors import DataError


@pytest.fixture(name="recorded")
def fake_tpu_runtime(monkeypatch):
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


def test_a_name_is_resolved_and_its_hosts_connected(recorded):
    strategy_lib.make_strategy(tpu="bert-v4-128")
    assert recorded == [("resolver", "bert-v4-128", None, None), ("connect", "Resolver"),
                        ("initialize", "Resolver")]


def test_a_name_with_zone_and_project(recorded):
    strategy_lib.make_strategy(tpu="bert-v4-128", zone="us-central2-b", project="lamb-project")
    assert recorded[0] == ("resolver", "bert-v4-128", "us-central2-b", "lamb-project")


def test_no_tpu_here_is_one_line_naming_the_flag():
    """The real resolver on this TPU-less machine: --tpu=local fails at initialisation."""
    with pytest.raises(DataError) as error:
        strategy_lib.make_strategy(tpu="local")
    message = str(error.value)
    assert message.startswith("--tpu: no TPU is attached to this machine (")
    assert "\n" not in message and "use --tpu=local on a TPU VM" in message


def test_an_unreachable_name_is_one_line_naming_the_flag(monkeypatch):
    """The real resolver: with no Google credentials here, the Cloud TPU API lookup fails."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("TPU_NAME", "")
    with pytest.raises(DataError) as error:
        strategy_lib.make_strategy(tpu="bert-v4-128", zone="us-central2-b", project="lamb-project")
    assert str(error.value).startswith("--tpu: TPU 'bert-v4-128' could not be reached (")
    assert "\n" not in str(error.value)
