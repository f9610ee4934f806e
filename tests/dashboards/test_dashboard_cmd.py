"""`dmo dashboard`: refuses bad options, serves the app and optuna-dashboard on one database,
and stops both on Ctrl-C."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from dashboard_process import HOST, free_port_pair, listening, running_dashboard
from typer.testing import CliRunner

from dmo.cli import dashboard_cmd
from dmo.errors import StoreError
from storage import Store


def test_a_missing_store_is_refused_and_not_created(tmp_path):
    result = CliRunner().invoke(
        dashboard_cmd.app,
        ["--config", "configs/tiny.yaml", "--store-url", f"sqlite:///{tmp_path}/typo/x.sqlite"],
    )
    assert isinstance(result.exception, StoreError)  # --store-url wins over the config's store
    assert "no store here" in str(result.exception)
    assert not (tmp_path / "typo").exists()


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path):
    Store.open(f"sqlite:///{tmp_path}/x.sqlite").dispose()
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = CliRunner().invoke(
            dashboard_cmd.app, ["--port", str(port), "--store-url", f"sqlite:///{tmp_path}/x.sqlite"]
        )
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 is in use" in result.output


@pytest.mark.timeout(120)
def test_dashboard_and_optuna_dashboard_share_the_store_and_stop_on_ctrl_c(tmp_path):
    url = f"sqlite:///{tmp_path / 'dmo.sqlite'}"
    with Store.open(url) as store:  # our tables, and a study in Optuna's beside them
        optuna.create_study(storage=store.url, study_name="dmo-side-by-side")
    port = free_port_pair()
    optuna_url = f"http://{HOST}:{port + 1}"
    with running_dashboard(url, port, "--optuna", also_wait_for=(optuna_url,)) as dashboard:
        with urllib.request.urlopen(f"{dashboard.url}/_stcore/health", timeout=5) as reply:
            assert reply.read().decode() == "ok"
        with urllib.request.urlopen(f"{optuna_url}/api/studies", timeout=10) as reply:
            studies = json.loads(reply.read())["study_summaries"]
        assert [s["study_name"] for s in studies] == ["dmo-side-by-side"]
        # read-only: the database refuses optuna-dashboard's writes, so nothing is deleted
        delete = urllib.request.Request(f"{optuna_url}/api/studies/{studies[0]['study_id']}", method="DELETE")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(delete, timeout=10)
        assert refused.value.code >= 400
        assert optuna.get_all_study_names(storage=url) == ["dmo-side-by-side"]
        # the store URL travels in the children's environment, never on a command line ps shows
        children = [cmd for cmd in _command_lines() if "optuna_server" in cmd or "streamlit" in cmd]
        assert len(children) == 2 and not [cmd for cmd in children if str(tmp_path) in cmd]
    assert f"dmo dashboard: http://127.0.0.1:{port}" in dashboard.output
    assert f"optuna-dashboard: http://127.0.0.1:{port + 1}" in dashboard.output
    assert not listening(port) and not listening(port + 1)  # both stopped


def _command_lines() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        try:
            lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return lines


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_optuna_dashboard_s_connection_reads_and_never_writes(tmp_path, backend):
    """What dashboards/optuna_server.py hands optuna-dashboard, on both stores (the process test above
    covers SQLite through HTTP)."""
    from contextlib import ExitStack

    from pg_support import fresh_database

    from dashboards.optuna_server import read_only

    with ExitStack() as stack:
        url = (f"sqlite:///{tmp_path / 'store.sqlite'}" if backend == "sqlite"
               else stack.enter_context(fresh_database("dmo_readonly")))
        optuna.create_study(study_name="s", storage=url).optimize(lambda trial: trial.suggest_float("x", 0, 1), 2)
        ro_url, engine_kwargs = read_only(url)
        storage = optuna.storages.RDBStorage(ro_url, engine_kwargs=engine_kwargs, skip_table_creation=True)
        try:
            (study,) = storage.get_all_studies()
            assert study.study_name == "s" and len(storage.get_all_trials(study._study_id)) == 2
            with pytest.raises(optuna.exceptions.StorageInternalError) as caught:
                storage.delete_study(study._study_id)
            assert re.search("read-only|readonly", str(caught.value.__cause__)), caught.value.__cause__
            assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["s"]  # still there
        finally:
            storage.remove_session()
            storage.engine.dispose()
