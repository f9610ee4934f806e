from __future__ import annotations

import pytest

from dmo.search.pool import LocalPool
from dmo.search.proxy import ProxyEvaluator
from dmo.search.searches import create_search, proxy_source, search_config


@pytest.fixture(scope="session")
def finished_search(tiny_config, tiny_store, tiny_models, tiny_data):
    from dmo.search.driver import run_search

    base, experts = tiny_models
    search = create_search(tiny_store, tiny_config, base=base, experts=experts, trials=3)
    config = search_config(search)
    evaluator = ProxyEvaluator(proxy_source(tiny_store, search, config), data=tiny_data)
    run_search(tiny_store, search, config, LocalPool(evaluator), show_progress=False)
    return search, evaluator


